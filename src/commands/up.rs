//! `vpclink up`: plan with a survey, provision both sides, then configure and verify.

use super::configure::{configure_link, refuse_loopback_ssh};
use super::plan::{plan_connected, plan_human, targets};
use super::verify::verify_link;
use super::{connect, existing_state};
use crate::aws::DryRunLog;
use crate::cli::UpArgs;
use crate::error::{Error, Result};
use crate::output::{table, Output};
use crate::provision;
use crate::side::Side;
use crate::state::{LinkState, StateFiles};
use serde::Serialize;

pub(super) async fn up(a: UpArgs, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.plan.name.name)?;
    let _lock = crate::lock::acquire(&files).await?;
    let dry = a.dry_run.then(DryRunLog::default);
    let existing = existing_state(&files)?;
    // The link's key (made here the first time: ~12 ms unoptimised) while both sides connect.
    let key_files = files.clone();
    let key = tokio::task::spawn_blocking(move || provision::key_pair::load_or_make(&key_files));
    let (aws, key) = tokio::join!(connect(targets(&a.plan), dry.clone()), key);
    let (key, key_is_new) =
        key.map_err(|e| Error::Runtime(format!("making the link's SSH key: {e}")))??;
    let survey = provision::survey::SurveyRequest {
        link: a.plan.name.name.clone(),
        os: a.os,
        instance_type: a.instance_type.clone(),
        public_key: provision::key_pair::public_line(&key)?,
    };
    let aws = aws?;
    let names_aws = aws.clone();
    let connected = plan_connected(&a.plan, existing, aws, Some(&survey)).await?;
    let mut report = provision::up(
        &a,
        &files,
        connected,
        (key, key_is_new),
        dry.clone(),
        out.json,
    )
    .await?;
    // Names (issue 13): after provisioning, so that the zones name the hosts just made.
    let names = match crate::names::wanted(a.dns, a.no_dns, &report.state) {
        true => Some(up_names(&files, &mut report, &names_aws, dry.as_ref()).await?),
        false => {
            skip_names(&files, &mut report, dry.is_some())?;
            None
        }
    };
    if !out.json {
        print!("{}", up_human(&report));
        if let (Some(n), None) = (&names, &report.dry_run) {
            print!("\n{}", crate::names::sync::human(n));
        }
    }
    if a.no_configure || a.dry_run {
        #[derive(Serialize)]
        struct Provisioned<'a> {
            #[serde(flatten)]
            up: &'a provision::UpReport,
            #[serde(skip_serializing_if = "Option::is_none")]
            names: Option<&'a crate::side::PerSide<crate::names::sync::SideNames>>,
        }
        let r = Provisioned {
            up: &report,
            names: names.as_ref(),
        };
        out.emit(&r, String::new);
        return Ok(());
    }
    if let Err(e) = refuse_loopback_ssh(&report.state) {
        out.emit(&report, String::new); // what was provisioned, for --json readers
        return Err(e);
    }

    let (configured, state) = configure_link(&files, out).await?;
    if !out.json {
        print!("{}", crate::configure::human(&configured));
    }
    let verified = verify_link(&files, state, out).await?;

    #[derive(Serialize)]
    struct Full<'a> {
        #[serde(flatten)]
        up: &'a provision::UpReport,
        configure: &'a crate::configure::ConfigureReport,
        verify: &'a crate::verify::VerifyReport,
        #[serde(skip_serializing_if = "Option::is_none")]
        names: Option<&'a crate::side::PerSide<crate::names::sync::SideNames>>,
    }
    let full = Full {
        names: names.as_ref(),
        up: &report,
        configure: &configured,
        verify: &verified,
    };
    out.emit(&full, || crate::verify::human(&verified));
    verified.outcome()
}

/// `--no-dns` (asked now or remembered): record the choice so that a later `up` keeps it; an existing zone stays
/// (`down` removes it).
fn skip_names(files: &StateFiles, report: &mut provision::UpReport, dry: bool) -> Result<()> {
    let mut state = if dry {
        report.state.clone()
    } else {
        files.load()?
    };
    for side in Side::BOTH {
        state.side_mut(side).no_names = true;
    }
    if !dry {
        files.save(&state)?;
    }
    report.state = state;
    Ok(())
}

/// Make both names zones and their records (under `--dry-run`, only list the calls: they join the report's). The
/// state is read back from its file, which holds what provisioning recorded, and saved after each step.
async fn up_names(
    files: &StateFiles,
    report: &mut provision::UpReport,
    aws: &crate::side::PerSide<crate::aws::SideAws>,
    dry: Option<&DryRunLog>,
) -> Result<crate::side::PerSide<crate::names::sync::SideNames>> {
    let mut state = match dry {
        Some(_) => report.state.clone(),
        None => files.load()?,
    };
    for side in Side::BOTH {
        state.side_mut(side).no_names = false;
    }
    let names =
        crate::names::sync::sync_link(dry.is_none().then_some(files), &mut state, aws).await?;
    report.state = state;
    if let Some(d) = dry {
        report.dry_run = Some(d.calls());
    }
    Ok(names)
}

fn up_human(r: &provision::UpReport) -> String {
    if let Some(calls) = &r.dry_run {
        let rows: Vec<Vec<String>> = calls
            .iter()
            .map(|c| vec![c.side.to_string(), c.action.to_string(), c.detail.clone()])
            .collect();
        return format!(
            "{}\n--dry-run: the {} calls above would be made (reads were made; nothing was changed)\n",
            table(&["side", "call", "parameters"], &rows),
            calls.len()
        );
    }
    let mut s = plan_human(&r.plan);
    s.push('\n');
    s.push_str(&resources_table(&r.state));
    s
}

pub(super) fn resources_table(state: &LinkState) -> String {
    let mut rows = Vec::new();
    for side in Side::BOTH {
        let s = state.side(side);
        let mut row = |what: &str, id: Option<String>, detail: String| {
            if let Some(id) = id {
                rows.push(vec![side.to_string(), what.to_string(), id, detail]);
            }
        };
        row("key-pair", s.key_pair_id.clone(), String::new());
        row("tunnel-sg", s.tunnel_sg.clone(), String::new());
        row("test-sg", s.test_sg.clone(), String::new());
        if let Some(h) = &s.tunnel {
            row(
                "tunnel-host",
                h.instance_id.clone(),
                format!("{} {}", h.private_ip, h.eni_id.clone().unwrap_or_default()),
            );
        }
        if let Some(e) = &s.eip {
            row(
                "elastic-ip",
                Some(e.allocation_id.clone()),
                e.public_ip.to_string(),
            );
        }
        if let Some(h) = &s.test {
            row("test-host", h.instance_id.clone(), h.private_ip.to_string());
        }
        for r in &s.routes {
            row(
                "route",
                Some(r.route_table_id.clone()),
                r.destination.to_string(),
            );
        }
        if let Some(m) = &s.metrics {
            row(
                "instance-profile",
                m.instance_profile.clone(),
                format!("role {}", m.role.clone().unwrap_or_default()),
            );
            row(
                "alarm",
                m.alarm.clone(),
                m.alarm_topic.clone().unwrap_or_default(),
            );
        }
    }
    table(&["side", "resource", "id", "detail"], &rows)
}
