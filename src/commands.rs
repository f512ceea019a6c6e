//! The AWS-facing subcommands (plan, up, status, down): connect both sides, then hand over to discover, provision,
//! status or teardown, and print through `Output`.

use crate::aws::{self, DryRunLog, SideAws, SideTarget};
use crate::cli::{DownArgs, NameArg, PlanArgs, UpArgs};
use crate::discover::{self, SideFacts};
use crate::error::{Error, Result};
use crate::link::LinkPlan;
use crate::output::{table, Output};
use crate::plan::{self, PlanRequest};
use crate::provision::{self, Connected};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};
use crate::{status, teardown};
use serde::Serialize;

/// Connect both sides at once.
pub async fn connect(
    targets: PerSide<SideTarget>,
    dry: Option<DryRunLog>,
) -> Result<PerSide<SideAws>> {
    let (east, west) = crate::side::both(
        aws::connect(&targets.east, dry.clone()),
        aws::connect(&targets.west, dry),
    )
    .await;
    // Report both sides' problems at once when both fail; each keeps its kind (Error::exit_code chooses).
    let (e, w) = Error::both(east.map_err(Error::from), west.map_err(Error::from))?;
    Ok(PerSide::new(e, w))
}

fn targets(a: &PlanArgs) -> PerSide<SideTarget> {
    let p = &a.profiles;
    PerSide::new(
        SideTarget {
            side: Side::East,
            profile: p.east.clone(),
            region: p.east_region.clone(),
        },
        SideTarget {
            side: Side::West,
            profile: p.west.clone(),
            region: p.west_region.clone(),
        },
    )
}

/// Connect, discover both VPCs and plan the link; an existing link's plan is kept (its mapped ranges are in use).
pub async fn connect_and_plan(
    a: &PlanArgs,
    files: &StateFiles,
    dry: Option<DryRunLog>,
) -> Result<Connected> {
    let existing = existing_state(files)?;
    let aws = connect(targets(a), dry).await?;
    plan_connected(a, existing, aws, None).await
}

fn existing_state(files: &StateFiles) -> Result<Option<LinkState>> {
    Ok(if files.exists() {
        Some(files.load()?)
    } else {
        None
    })
}

/// Discover both connected sides (and survey them for `up`) and plan the link.
async fn plan_connected(
    a: &PlanArgs,
    existing: Option<LinkState>,
    aws: PerSide<SideAws>,
    survey: Option<&provision::survey::SurveyRequest>,
) -> Result<Connected> {
    let requested = PerSide::new(a.east_vpc.clone(), a.west_vpc.clone());

    if let Some(state) = &existing {
        for side in Side::BOTH {
            let map = if side == Side::East {
                &a.east_map
            } else {
                &a.west_map
            };
            let mapped = &state.plan.side(side).mapped;
            if !map.is_empty() && map != mapped {
                let list: Vec<String> = mapped.iter().map(|m| m.to_string()).collect();
                return Err(Error::Input(format!(
                    "link '{}' maps the {side} VPC at {}; mapped ranges cannot change while the link exists. Drop --{side}-map, or `vpclink down --name {}` first",
                    state.name,
                    list.join(" "),
                    state.name
                )));
            }
        }
        for side in Side::BOTH {
            let was = state.plan.side(side);
            let asked = requested.get(side).as_deref();
            let now = aws.get(side);
            if asked.is_some_and(|v| v != was.vpc_id)
                || now.account != was.account
                || now.region != was.region
            {
                return Err(Error::Input(format!(
                    "link '{}' already links {side} VPC {} in account {} ({}); this run asks for {} in account {} ({}). Use another --name, or `vpclink down --name {}` first",
                    state.name, was.vpc_id, was.account, was.region, asked.unwrap_or(&was.vpc_id), now.account, now.region, state.name
                )));
            }
        }
    }

    let choice = |side: Side| match &existing {
        Some(s) => discover::VpcChoice::Known(&s.plan.side(side).vpc_id),
        None => discover::VpcChoice::Pick(requested.get(side).as_deref()),
    };
    // `up` surveys each side beside its discovery (provision::survey); the other commands only discover.
    let aws_ref = &aws;
    let side_facts = |side: Side| async move {
        let aws = aws_ref.get(side);
        match survey {
            Some(req) => provision::survey::discover_and_survey(aws, choice(side), req)
                .await
                .map(|(f, s)| (f, Some(s))),
            None => Ok((discover::discover(aws, choice(side)).await?, None)),
        }
    };
    let (east, west) = crate::side::both(side_facts(Side::East), side_facts(Side::West)).await;
    // Both sides' errors together, each keeping its kind (a throttled read stays a run-time failure).
    let ((east, east_survey), (west, west_survey)) = Error::both(east, west)?;
    let mut facts = PerSide::new(east, west);
    let mut survey = east_survey
        .zip(west_survey)
        .map(|(e, w)| PerSide::new(e, w));
    // The hosts' subnets: in a zone that offers the instance type (known to `up`'s survey), or as asked.
    for side in Side::BOTH {
        let requested = match side {
            Side::East => a.east_subnet.as_deref(),
            Side::West => a.west_subnet.as_deref(),
        };
        let offered = survey
            .as_ref()
            .and_then(|s| s.get(side).offered_zones.clone());
        if let Err(p) = facts
            .get_mut(side)
            .choose_subnets(requested, offered.as_ref())
        {
            let problem = format!("{side} side: {p}");
            match survey.as_mut() {
                Some(s) => s.get_mut(side).problems.push(problem.into()),
                None => return Err(Error::Input(problem)),
            }
        }
    }

    let plan = match &existing {
        Some(state) => refreshed(&state.plan, &facts),
        None => new_plan(a, &aws, &facts)?,
    };
    Ok(Connected {
        aws,
        facts,
        survey,
        plan,
        existing,
    })
}

/// An existing plan with today's route tables (a table added since the last run gets the routes too).
fn refreshed(old: &LinkPlan, facts: &PerSide<SideFacts>) -> LinkPlan {
    let mut plan = old.clone();
    for side in Side::BOTH {
        let p = plan.side_mut(side);
        p.route_tables = facts.get(side).table_ids();
        let f = facts.get(side);
        p.skipped_tables = f.gateway_tables.clone();
        if !p
            .public_subnet
            .as_ref()
            .is_some_and(|s| f.public_subnets.contains(s))
        {
            p.public_subnet = f.public_subnet().map(str::to_string);
        }
    }
    plan
}

fn new_plan(a: &PlanArgs, aws: &PerSide<SideAws>, facts: &PerSide<SideFacts>) -> Result<LinkPlan> {
    let vpcs = facts.map(|_, f| f.addresses());
    let overlapping = plan::vpcs_overlap(&vpcs);
    if !overlapping && !a.allow_disjoint {
        let list = |s: Side| {
            facts
                .get(s)
                .vpc
                .cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(Error::Input(format!(
            "the VPCs do not overlap (east {} {}, west {} {}): plain VPC peering or a transit gateway links them without address mapping. To link them with vpclink anyway, pass --allow-disjoint",
            facts.east.vpc.id,
            list(Side::East),
            facts.west.vpc.id,
            list(Side::West)
        )));
    }
    let req = PlanRequest {
        vpcs,
        overrides: PerSide::new(a.east_map.clone(), a.west_map.clone()),
        owned_routes: Vec::new(),
    };
    let mapped = plan::plan(&req)?;
    let side_plan = |side: Side| {
        let mut p = facts.get(side).side_plan(aws.get(side));
        p.mapped = mapped.get(side).iter().map(|m| m.mapped).collect();
        p
    };
    Ok(LinkPlan {
        name: a.name.name.clone(),
        overlapping,
        east: side_plan(Side::East),
        west: side_plan(Side::West),
    })
}

pub fn plan_human(plan: &LinkPlan) -> String {
    let mut rows = Vec::new();
    for side in Side::BOTH {
        let p = plan.side(side);
        for (i, (c, m)) in p.cidrs.iter().zip(&p.mapped).enumerate() {
            let first = i == 0;
            let cell = |s: String| if first { s } else { String::new() };
            rows.push(vec![
                cell(side.to_string()),
                cell(p.profile.clone()),
                cell(format!("{} {}", p.account, p.region)),
                cell(p.vpc_id.clone()),
                c.to_string(),
                format!("{} reaches it at {m}", side.peer()),
            ]);
        }
    }
    let mut s = table(
        &["side", "profile", "account/region", "vpc", "cidr", "mapped"],
        &rows,
    );
    for side in Side::BOTH {
        let p = plan.side(side);
        s.push_str(&format!(
            "{side}: routes to the {} side's mapped ranges go into {} route table(s): {}; tunnel host subnet {}\n",
            side.peer(),
            p.route_tables.len(),
            p.route_tables.join(" "),
            p.public_subnet.as_deref().unwrap_or("(none: no public subnet)")
        ));
        for t in &p.skipped_tables {
            s.push_str(&format!("{side}: skipped: {t}\n"));
        }
    }
    s
}

pub async fn plan(a: PlanArgs, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name.name)?;
    let c = connect_and_plan(&a, &files, None).await?;
    out.emit(&c.plan, || plan_human(&c.plan));
    Ok(())
}

pub async fn up(a: UpArgs, out: &Output) -> Result<()> {
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
    let connected = plan_connected(&a.plan, existing, aws?, Some(&survey)).await?;
    let report = provision::up(&a, &files, connected, (key, key_is_new), dry, out.json).await?;
    if !out.json {
        print!("{}", up_human(&report));
    }
    if a.no_configure || a.dry_run {
        out.emit(&report, String::new);
        return Ok(());
    }
    if let Err(e) = refuse_loopback_ssh(&report.state) {
        out.emit(&report, String::new); // what was provisioned, for --json readers
        return Err(e);
    }

    let (configured, state) = crate::run::configure_link(&files, out).await?;
    if !out.json {
        print!("{}", crate::configure::human(&configured));
    }
    let verified = crate::run::verify_link(&files, state, out).await?;

    #[derive(Serialize)]
    struct Full<'a> {
        #[serde(flatten)]
        up: &'a provision::UpReport,
        configure: &'a crate::configure::ConfigureReport,
        verify: &'a crate::verify::VerifyReport,
    }
    let full = Full {
        up: &report,
        configure: &configured,
        verify: &verified,
    };
    out.emit(&full, || crate::verify::human(&verified));
    verified.outcome()
}

/// The profile and region each side of an existing link was made with.
fn targets_of(state: &LinkState) -> PerSide<SideTarget> {
    PerSide::new(Side::East, Side::West).map(|_, &side| SideTarget {
        side,
        profile: state.plan.side(side).profile.clone(),
        region: Some(state.plan.side(side).region.clone()),
    })
}

/// How long `up` and `configure` wait for cloud-init to print host keys on a new instance's console. cloud-init
/// prints them late (keys_to_console runs in its final stage, after the packages are installed), which takes
/// minutes on a slow mirror; past this, configure trusts the key on first use, with a warning.
const CONSOLE_KEY_BUDGET: std::time::Duration = std::time::Duration::from_secs(600);
/// How long a resource may stay listed after its delete before `down` calls it left behind.
const LEAK_CHECK_BUDGET: std::time::Duration = std::time::Duration::from_secs(45);

/// Pin the host key of every instance that has none, from its console output (see provision::host_keys). Hosts
/// without an instance id (a lab) or whose console stays silent are left to trust-on-first-use in configure.
pub async fn pin_host_keys(files: &StateFiles, out: &Output) -> Result<()> {
    use crate::provision::host_keys;
    let mut state = files.load()?;
    let wanted = PerSide::new(
        host_keys::unpinned(&state, Side::East),
        host_keys::unpinned(&state, Side::West),
    );
    if wanted.east.is_empty() && wanted.west.is_empty() {
        return Ok(());
    }
    let targets = targets_of(&state);
    let aws = connect(targets, None).await?;
    let pb = out.spinner("reading SSH host keys from the instances' consoles");
    let (east, west) = tokio::join!(
        host_keys::read_keys(&aws.east, wanted.east, CONSOLE_KEY_BUDGET),
        host_keys::read_keys(&aws.west, wanted.west, CONSOLE_KEY_BUDGET)
    );
    pb.finish_and_clear();
    for (side, found) in [(Side::East, east), (Side::West, west)] {
        for (role, key) in found {
            let s = state.side_mut(side);
            let host = match role {
                crate::state::Role::Tunnel => s.tunnel.as_mut(),
                crate::state::Role::Test => s.test.as_mut(),
            };
            if let Some(h) = host {
                h.host_key = Some(key);
            }
        }
    }
    files.save(&state)?;
    Ok(())
}

/// Emulators hand out Elastic IPs in 127.0.0.0/8: SSH to port 22 there would reach this machine's own sshd, not a
/// tunnel host. (A lab that forwards loopback ports to its guests uses other ports.)
pub fn refuse_loopback_ssh(state: &LinkState) -> Result<()> {
    if crate::settings::get().allow_loopback_ssh {
        return Ok(());
    }
    for side in Side::BOTH {
        let target = state
            .side(side)
            .tunnel
            .as_ref()
            .and_then(|h| h.ssh.as_ref())
            .filter(|t| t.port == 22)
            .map(|t| t.host.clone());
        if let Some(ip) = target
            .and_then(|h| h.parse::<std::net::Ipv4Addr>().ok())
            .filter(|ip| ip.is_loopback())
        {
            return Err(Error::Runtime(format!(
                "provisioned, but the {side} tunnel host's address {ip} is a loopback address (an emulator such as LocalStack?); configure would SSH to this machine. Use `up --no-configure` there, or set VPCLINK_ALLOW_LOOPBACK_SSH=1 if a lab forwards it"
            )));
        }
    }
    Ok(())
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

pub fn resources_table(state: &LinkState) -> String {
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
    }
    table(&["side", "resource", "id", "detail"], &rows)
}

pub async fn status(a: NameArg, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name)?;
    let state = files.load()?;
    let targets = targets_of(&state);
    let aws = connect(targets, None).await?;
    let (east, west) = tokio::join!(
        status::side_status(&aws.east, &state),
        status::side_status(&aws.west, &state)
    );
    let items: Vec<status::Item> = east?.into_iter().chain(west?).collect();
    let report = status::StatusReport {
        name: state.name.clone(),
        ok: items.iter().all(|i| i.ok),
        items,
    };
    out.emit(&report, || status::human(&report));
    // Drift is a finding, like a failed verify check: scripts can act on the exit code.
    let drifted = report.items.iter().filter(|i| !i.ok).count();
    if drifted > 0 {
        return Err(Error::ChecksFailed {
            failed: drifted,
            total: report.items.len(),
        });
    }
    Ok(())
}

#[derive(Serialize)]
struct DownReport {
    name: String,
    dry_run: bool,
    deleted: Vec<teardown::Inventory>,
    /// Resources with the link's tags still there afterwards (should be none).
    left: usize,
}

pub async fn down(a: DownArgs, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name.name)?;
    let _lock = crate::lock::acquire(&files).await?;
    let state = if files.exists() {
        Some(files.load()?)
    } else {
        None
    };
    let target =
        |side: Side, profile: &Option<String>, region: &Option<String>| -> Result<SideTarget> {
            match (profile, &state) {
                (Some(p), _) => Ok(SideTarget {
                    side,
                    profile: p.clone(),
                    region: region.clone(),
                }),
                (None, Some(s)) => Ok(SideTarget {
                    side,
                    profile: s.plan.side(side).profile.clone(),
                    region: region.clone().or(Some(s.plan.side(side).region.clone())),
                }),
                (None, None) => Err(crate::state::StateError::Missing {
                    name: a.name.name.clone(),
                    path: files.state_path(),
                }
                .into()),
            }
        };
    let targets = PerSide::new(
        target(Side::East, &a.east, &a.east_region)?,
        target(Side::West, &a.west, &a.west_region)?,
    );
    let aws = connect(targets, None).await?;
    let link = &a.name.name;
    let (e, w) = crate::side::both(
        teardown::collect(
            &aws.east,
            link,
            state.as_ref(),
            teardown::Purpose::Inventory,
        ),
        teardown::collect(
            &aws.west,
            link,
            state.as_ref(),
            teardown::Purpose::Inventory,
        ),
    )
    .await;
    let inventory = PerSide::new(e?, w?);

    let listing = |inv: &PerSide<teardown::Inventory>| {
        let rows: Vec<Vec<String>> = inv.east.rows().into_iter().chain(inv.west.rows()).collect();
        table(&["side", "resource", "id"], &rows)
    };
    if !out.json {
        eprint!("{}", listing(&inventory));
    }
    if a.dry_run {
        let r = DownReport {
            name: link.clone(),
            dry_run: true,
            left: inventory.east.count() + inventory.west.count(),
            deleted: vec![inventory.east, inventory.west],
        };
        out.emit(&r, || {
            format!("--dry-run: {} resource(s) above would be deleted\n", r.left)
        });
        return Ok(());
    }

    let bar = out.spinner(format!("deleting link '{link}' on both sides"));
    let (de, dw) = crate::side::both(
        teardown::delete(&aws.east, &inventory.east),
        teardown::delete(&aws.west, &inventory.west),
    )
    .await;
    bar.finish_and_clear();
    de?;
    dw?;

    // Leak check: collect again; nothing may be left. Describe calls are eventually consistent (AWS: "Eventual
    // consistency in the Amazon EC2 API", https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html):
    // a group deleted a moment ago may still be listed, so only what stays listed for LEAK_CHECK_BUDGET is left.
    let left = teardown::leak_check(&aws, link, LEAK_CHECK_BUDGET).await?;
    if left > 0 {
        return Err(Error::Runtime(format!(
            "{left} resource(s) with the link's tags are still there {} s after deleting; run `vpclink down --name {link}` again",
            LEAK_CHECK_BUDGET.as_secs()
        )));
    }
    files.remove()?;
    let r = DownReport {
        name: link.clone(),
        dry_run: false,
        deleted: vec![inventory.east, inventory.west],
        left,
    };
    out.emit(&r, || {
        format!(
            "link '{link}' is down: {} resource(s) deleted, none left\n",
            r.deleted.iter().map(|i| i.count()).sum::<usize>()
        )
    });
    Ok(())
}
