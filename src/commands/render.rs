//! `vpclink render`: write every file and command each tunnel host gets, offline, for review, and each host's
//! first-boot user-data.

use super::load;
use crate::cli::RenderArgs;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::render::{self, cloud_init, TunnelFacts, TunnelView};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, Os, Role};
use serde::Serialize;
use std::path::Path;

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
    let recorded = host
        .libreswan
        .as_deref()
        .and_then(render::Libreswan::parse_version);
    let (libreswan, assumed) = render::Libreswan::reported_or_expected(recorded, host.os);
    if let Some(note) = assumed {
        notes.push(format!("{side}: {note} (configure asks the host)"));
    }
    Ok((
        TunnelFacts {
            private_ip: host.private_ip,
            public_ip,
            uplink,
            os: host.os,
            rsa_pubkey,
            libreswan,
        },
        notes,
    ))
}

pub(super) fn render_cmd(a: &RenderArgs, out: &Output) -> Result<()> {
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
        written.push(write_user_data(&dir, Role::Tunnel, facts.get(side).os)?);
        if let Some(os) = test_host_os(&state, side) {
            let dir = a.out.join(format!("{side}-test"));
            written.push(write_user_data(&dir, Role::Test, os)?);
        }
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

/// The OS of this side's test host, when the link has one (recorded, or asked for when the link was made).
fn test_host_os(state: &LinkState, side: Side) -> Option<Os> {
    match &state.side(side).test {
        Some(h) => Some(h.os),
        None => state.options.test_hosts.then_some(state.options.os),
    }
}

fn write_error(p: &Path, e: std::io::Error) -> Error {
    Error::Runtime(format!("cannot write {}: {e}; check --out", p.display()))
}

/// `DIR/user-data`: the host's first-boot user-data, the very bytes `up` sends as RunInstances' UserData (both call
/// `cloud_init::user_data`), for a lab that boots the host through cloud-init's NoCloud data source. It holds no
/// secret (packages only), hence 0644.
fn write_user_data(dir: &Path, role: Role, os: Os) -> Result<String> {
    let p = dir.join("user-data");
    crate::state::write_atomic(&p, cloud_init::user_data(role, os).as_bytes(), 0o644)
        .map_err(|e| write_error(&p, e))?;
    Ok(p.display().to_string())
}

/// One folder per host: files under their absolute paths, plus prepare.sh and apply.sh (the commands, in order).
fn write_host_dir(dir: &Path, cfg: &render::HostConfig) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut put = |rel: &str, content: &str, mode: u32| -> Result<()> {
        let p = dir.join(rel.trim_start_matches('/'));
        crate::state::write_atomic(&p, content.as_bytes(), mode).map_err(|e| write_error(&p, e))?;
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
