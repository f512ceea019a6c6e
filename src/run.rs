//! One function per subcommand: read state, call the pipeline, print through `Output`.

use crate::cli::{Cli, Command, MapArgs, NameArg, RenderArgs};
use crate::configure;
use crate::error::{Error, Result};
use crate::output::{table, Output};
use crate::plan::{translate, Translation};
use crate::render::{self, TunnelFacts, TunnelView};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};
use crate::verify;
use serde::Serialize;
use std::path::Path;

pub async fn run(cli: Cli) -> Result<()> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Plan(a) => crate::commands::plan(a, &out).await,
        Command::Up(a) => crate::commands::up(a, &out).await,
        Command::Status(a) => crate::commands::status(a, &out).await,
        Command::Down(a) => crate::commands::down(a, &out).await,
        Command::Configure(a) => configure_cmd(&a, &out).await,
        Command::Verify(a) => verify_cmd(&a, &out).await,
        Command::Map(a) => map_cmd(&a, &out),
        Command::Render(a) => render_cmd(&a, &out),
    }
}

fn load(name: &NameArg) -> Result<(StateFiles, LinkState)> {
    let files = StateFiles::for_link(&name.name)?;
    let state = files.load()?;
    Ok((files, state))
}

/// Pin host keys, then configure both tunnel hosts off the async workers (the SSH layer blocks). Shared by
/// `configure` and `up`; returns the report and the state as configure left it.
pub async fn configure_link(
    files: &StateFiles,
    out: &Output,
) -> Result<(configure::ConfigureReport, LinkState)> {
    crate::commands::pin_host_keys(files, out).await?;
    crate::commands::refuse_loopback_ssh(&files.load()?)?;
    let (files, out) = (files.clone(), *out);
    tokio::task::spawn_blocking(move || {
        let mut state = files.load()?;
        let report = configure::configure(&files, &mut state, &out)?;
        Ok((report, state))
    })
    .await
    .map_err(|e| Error::Runtime(format!("configure task failed: {e}")))?
}

/// Verify off the async workers. Shared by `verify` and `up`.
pub async fn verify_link(
    files: &StateFiles,
    state: LinkState,
    out: &Output,
) -> Result<verify::VerifyReport> {
    let (files, out) = (files.clone(), *out);
    tokio::task::spawn_blocking(move || verify::verify(&files, &state, &out))
        .await
        .map_err(|e| Error::Runtime(format!("verify task failed: {e}")))?
}

pub async fn configure_cmd(a: &NameArg, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name)?;
    let _lock = crate::lock::acquire(&files).await?;
    let (report, _) = configure_link(&files, out).await?;
    out.emit(&report, || configure::human(&report));
    Ok(())
}

pub async fn verify_cmd(a: &NameArg, out: &Output) -> Result<()> {
    let (files, state) = load(a)?;
    let report = verify_link(&files, state, out).await?;
    out.emit(&report, || verify::human(&report));
    report.outcome()
}

#[derive(Serialize)]
struct MapAnswer {
    address: std::net::Ipv4Addr,
    translations: Vec<Translation>,
}

fn map_cmd(a: &MapArgs, out: &Output) -> Result<()> {
    let (_, state) = load(&a.name)?;
    let plan = state.plan.mappings();
    let answers: Vec<MapAnswer> = a
        .addresses
        .iter()
        .map(|&address| MapAnswer {
            address,
            translations: translate(&plan, address),
        })
        .collect();
    out.emit(&answers, || {
        let mut rows = Vec::new();
        for ans in &answers {
            if ans.translations.is_empty() {
                rows.push(vec![
                    ans.address.to_string(),
                    "-".into(),
                    "outside every real and mapped range of this link".into(),
                ]);
            }
            for t in &ans.translations {
                rows.push(match t {
                    Translation::RealToMapped { side, mapped, .. } => vec![
                        ans.address.to_string(),
                        format!("{side} real"),
                        format!("the {} side reaches it at {mapped}", side.peer()),
                    ],
                    Translation::MappedToReal { side, real, .. } => vec![
                        ans.address.to_string(),
                        format!("{side} mapped"),
                        format!("stands for {real} in the {side} VPC"),
                    ],
                });
            }
        }
        table(&["address", "is", "meaning"], &rows)
    });
    Ok(())
}

/// Facts for rendering offline: what configure learned, or labelled placeholders where it has not run yet.
fn offline_facts(state: &LinkState, side: Side) -> Result<(TunnelFacts, Vec<String>)> {
    let mut notes = Vec::new();
    let host = state.side(side).tunnel.as_ref().ok_or_else(|| {
        Error::Input(format!(
            "the {side} tunnel host is not in the state yet; run `vpclink up` first"
        ))
    })?;
    let public_ip = host.public_ip.ok_or_else(|| {
        Error::Input(format!(
            "the {side} tunnel host has no Elastic IP in the state yet"
        ))
    })?;
    let uplink = host.uplink.clone().unwrap_or_else(|| {
        notes.push(format!(
            "{side}: uplink interface not learned yet; assumed ens5 (configure detects it)"
        ));
        "ens5".to_string()
    });
    let rsa_pubkey = host.ipsec_pubkey.clone().unwrap_or_else(|| {
        notes.push(format!(
            "{side}: RSA key not collected yet; configure fills it in"
        ));
        format!("0s<{side}-rsa-public-key-made-on-the-host-by-configure>")
    });
    Ok((
        TunnelFacts {
            private_ip: host.private_ip,
            public_ip,
            uplink,
            os: host.os,
            rsa_pubkey,
        },
        notes,
    ))
}

fn render_cmd(a: &RenderArgs, out: &Output) -> Result<()> {
    let (_, state) = load(&a.name)?;
    let e = offline_facts(&state, Side::East)?;
    let w = offline_facts(&state, Side::West)?;
    let facts = PerSide::new(e.0, w.0);
    let mut written = Vec::new();
    for side in Side::BOTH {
        let view = TunnelView {
            link: &state.plan,
            side,
            local: facts.get(side),
            peer: facts.get(side.peer()),
        };
        let cfg = render::tunnel_host(&view);
        let dir = a.out.join(format!("{side}-tunnel"));
        written.extend(write_host_dir(&dir, &cfg)?);
    }
    let notes: Vec<String> = e.1.into_iter().chain(w.1).collect();
    #[derive(Serialize)]
    struct Rendered {
        files: Vec<String>,
        notes: Vec<String>,
    }
    let r = Rendered {
        files: written,
        notes,
    };
    out.emit(&r, || {
        let mut s = r.files.join("\n") + "\n";
        for n in &r.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    });
    Ok(())
}

/// One folder per host: files under their absolute paths, plus prepare.sh and apply.sh (the commands, in order).
fn write_host_dir(dir: &Path, cfg: &render::HostConfig) -> Result<Vec<String>> {
    let io = |p: &Path, e: std::io::Error| {
        Error::Runtime(format!("cannot write {}: {e}; check --out", p.display()))
    };
    let mut written = Vec::new();
    let mut put = |rel: &str, content: &str, mode: u32| -> Result<()> {
        let p = dir.join(rel.trim_start_matches('/'));
        crate::state::write_atomic(&p, content.as_bytes(), mode).map_err(|e| io(&p, e))?;
        written.push(p.display().to_string());
        Ok(())
    };
    for f in &cfg.files {
        put(&f.path, &f.content, f.mode)?;
    }
    put("prepare.sh", &render::prepare_tunnel_host(), 0o755)?;
    let apply = format!(
        "#!/bin/sh\n# Run as root after the files above are in place.\nset -eu\n{}\n",
        cfg.apply.join("\n")
    );
    put("apply.sh", &apply, 0o755)?;
    Ok(written)
}
