//! Push the rendered configuration to both tunnel hosts over SSH and apply it. Idempotent: files are compared by
//! hash first, and a run that finds everything in place changes nothing and says so.

use crate::output::Output;
use crate::render::{self, TunnelFacts, TunnelView};
use crate::side::{PerSide, Side};
use crate::ssh::{Conn, FileWrite, HostKeyPolicy, SshError};
use crate::state::{Host, LinkState, StateFiles};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("the {side} {role} host is not in the state yet (no address to reach it); run `vpclink up` first")]
    NoHost { side: Side, role: &'static str },
    #[error("the {side} tunnel host has no Elastic IP in the state; run `vpclink up` to finish provisioning")]
    NoEip { side: Side },
    #[error("{side} tunnel host: {what}")]
    Facts { side: Side, what: String },
    #[error("the link's SSH key {0} is missing; it was made by `vpclink up` on the machine that created the link")]
    NoKey(std::path::PathBuf),
}

/// What configure did on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub side: Side,
    pub host: String,
    pub files_changed: Vec<String>,
    pub applied: bool,
    /// Why the apply commands ran (or did not).
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigureReport {
    pub name: String,
    pub changed: bool,
    pub hosts: Vec<HostReport>,
    /// Seconds from the end of the apply until both ends showed the ESP SA; None when nothing was applied or
    /// the SA did not come up within the wait (verify then says why).
    pub sa_up_after_s: Option<u64>,
    /// Where the time went, in seconds, phase by phase.
    pub timings: Timings,
}

/// configure's phases, in seconds (one decimal). Both sides run each phase at once, so a phase takes as long as
/// its slower side.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// SSH to both tunnel hosts and host preparation (packages checked, modules, the RSA key made or read).
    pub prepare_s: f64,
    /// Comparing, writing and applying the files (services restarted).
    pub push_apply_s: f64,
    /// From the apply until both ends have the ESP SA and a GRE echo through it.
    pub settle_s: f64,
    /// Reaching the test hosts (pins their host keys for verify), while the link settles.
    pub test_hosts_s: f64,
    pub total_s: f64,
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// How long configure waits for the SA and a GRE echo after applying, so that an immediate verify tests a settled
/// link.
const SA_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The link carries traffic from this side: the ESP SA is up and the GRE peer answers through it. After an apply
/// the first packets can be lost while both ends settle on one pair of SAs (measured in the lab: up to ~10 s after
/// a restart of one side), so "SA up" alone does not mean the link works yet.
fn sa_up(conn: &Conn, conn_name: &str, side: Side) -> bool {
    let esp = conn
        .run("ipsec whack --trafficstatus 2>/dev/null")
        .map(|o| {
            o.stdout
                .lines()
                .any(|l| l.contains(&format!("\"{conn_name}\"")) && l.contains("type=ESP"))
        })
        .unwrap_or(false);
    let (_, peer_inner) = render::gre_inner(side);
    esp && conn
        .run(&format!(
            "ping -n -c 1 -W 1 -I {} {peer_inner} >/dev/null 2>&1",
            render::GRE_IF
        ))
        .is_ok_and(|o| o.status == 0)
}

/// How long `connect` keeps trying a host whose sshd is not accepting connections yet: a fresh instance starts
/// sshd late in its boot, and `up` reaches this point as soon as the instance runs.
pub const SSH_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// After `attempt` failed tries (0 for the first) and `elapsed` since the first: how long to wait before trying
/// again (2, 4, 8, then every 15 s), or None when that would pass `wait`.
pub fn ssh_retry_delay(
    attempt: u32,
    elapsed: std::time::Duration,
    wait: std::time::Duration,
) -> Option<std::time::Duration> {
    let delay = std::time::Duration::from_secs((2u64 << attempt.min(3)).min(15));
    (elapsed + delay <= wait).then_some(delay)
}

/// Run `open` until it succeeds, fails for a reason other than "sshd not up yet", or `wait` is spent.
fn retry_while_not_up<T>(
    label: &str,
    wait: std::time::Duration,
    mut open: impl FnMut() -> Result<T, SshError>,
) -> Result<T, SshError> {
    let start = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        match open() {
            Err(e) if e.is_not_up_yet() => {
                let Some(delay) = ssh_retry_delay(attempt, start.elapsed(), wait) else {
                    tracing::warn!(
                        "{label}: SSH still not reachable after {} s; giving up",
                        start.elapsed().as_secs()
                    );
                    return Err(e);
                };
                tracing::info!(
                    "{label}: sshd not reachable yet ({e}); trying again in {} s",
                    delay.as_secs()
                );
                std::thread::sleep(delay);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Open SSH to a host recorded in the state, pinning its key on first use. A host whose sshd is not up yet is
/// tried again, with backoff, for up to `wait` (configure: [`SSH_WAIT`]; verify reports at once instead).
pub fn connect(
    state: &LinkState,
    side: Side,
    host: &Host,
    label: &str,
    key: &Path,

    wait: std::time::Duration,
) -> Result<(Conn, Option<String>), crate::Error> {
    let target = host.ssh.as_ref().ok_or(ConfigureError::NoHost {
        side,
        role: "reachable",
    })?;
    let policy = policy(host);
    let jump = if target.via_tunnel {
        let tunnel = state
            .side(side)
            .tunnel
            .as_ref()
            .ok_or(ConfigureError::NoHost {
                side,
                role: "tunnel",
            })?;
        let via = tunnel.ssh.as_ref().ok_or(ConfigureError::NoHost {
            side,
            role: "tunnel",
        })?;
        Some((via, self::policy(tunnel)))
    } else {
        None
    };
    let (conn, offered) = retry_while_not_up(label, wait, || match &jump {
        Some((via, via_policy)) => Conn::open_via(
            label,
            &format!("{side} tunnel host"),
            via,
            via_policy,
            target,
            key,
            &policy,
        ),
        None => Conn::open(label, target, key, &policy),
    })?;
    let newly_pinned = match policy {
        HostKeyPolicy::FirstUse => {
            tracing::warn!(
                "{label}: no host key was pinned from the console (it showed none in time, or there is no instance \
                 console to read); trusted the key offered on first use and pinned it: {offered}"
            );
            Some(offered)
        }
        HostKeyPolicy::Pinned(_) => {
            tracing::debug!("{label}: host key matches the pinned one");
            None
        }
    };
    Ok((conn, newly_pinned))
}

fn policy(host: &Host) -> HostKeyPolicy {
    match &host.host_key {
        Some(k) => HostKeyPolicy::Pinned(k.clone()),
        None => HostKeyPolicy::FirstUse,
    }
}

pub fn key_path(files: &StateFiles) -> Result<std::path::PathBuf, ConfigureError> {
    let key = files.key_path();
    if key.exists() {
        Ok(key)
    } else {
        Err(ConfigureError::NoKey(key))
    }
}

/// Facts that only the host can tell: its RSA key, its uplink interface, its private address as it sees it.
struct Prepared {
    conn: Conn,
    facts: TunnelFacts,
    pinned: Option<String>,
}

fn prepare(state: &LinkState, side: Side, key: &Path) -> Result<Prepared, crate::Error> {
    let host = state
        .side(side)
        .tunnel
        .as_ref()
        .ok_or(ConfigureError::NoHost {
            side,
            role: "tunnel",
        })?;
    let public_ip = host.public_ip.ok_or(ConfigureError::NoEip { side })?;
    let peer_eip = state
        .side(side.peer())
        .tunnel
        .as_ref()
        .and_then(|h| h.public_ip)
        .ok_or(ConfigureError::NoEip { side: side.peer() })?;
    let label = format!("{side} tunnel host");
    let (conn, pinned) = connect(state, side, host, &label, key, SSH_WAIT)?;
    let out = conn.check(&render::prepare_tunnel_host())?;
    let rsa_pubkey = render::parse_rsasigkey(&out).ok_or_else(|| ConfigureError::Facts {
        side,
        what: format!("no RSA key in `ipsec showhostkey` output: {out}"),
    })?;
    // A route lookup only: nothing is sent.
    let route = conn.check(&format!("ip -o -4 route get {peer_eip}"))?;
    let (uplink, src) = parse_route_get(&route).ok_or_else(|| ConfigureError::Facts {
        side,
        what: format!("cannot tell the uplink from `ip route get {peer_eip}`: {route}"),
    })?;
    if src != host.private_ip {
        return Err(ConfigureError::Facts {
            side,
            what: format!(
                "traffic to the peer would leave from {src}, but the state says this host's private address is {}; fix the state or the host's routing",
                host.private_ip
            ),
        }
        .into());
    }
    let (libreswan, assumed) =
        render::Libreswan::reported_or_expected(render::parse_libreswan(&out), host.os);
    if let Some(note) = assumed {
        tracing::warn!("{label}: `ipsec --version` did not say which libreswan runs: {note}");
    }
    Ok(Prepared {
        conn,
        facts: TunnelFacts {
            private_ip: host.private_ip,
            public_ip,
            uplink,
            os: host.os,
            rsa_pubkey,
            libreswan,
        },
        pinned,
    })
}

/// `ip -o route get` -> (dev, src).
pub fn parse_route_get(s: &str) -> Option<(String, std::net::Ipv4Addr)> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    Some((after("dev")?.to_string(), after("src")?.parse().ok()?))
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a host must have applied: one hash over every file (path, mode, content) and every apply command. Written
/// on the host as the last apply step (see [`stamp_path`]), so matching files alone never pass for an applied
/// configuration (a run that died between writing and applying left matching files behind).
pub fn stamp(cfg: &render::HostConfig) -> String {
    let mut text = String::new();
    for f in &cfg.files {
        text.push_str(&format!("{}\0{:o}\0{}\0", f.path, f.mode, f.content));
    }
    for c in &cfg.apply {
        text.push_str(c);
        text.push('\0');
    }
    sha256_hex(&text)
}

/// Where the host keeps the stamp of what it applied last.
pub fn stamp_path(dir: &str) -> String {
    format!("{dir}/applied")
}

/// Why the apply commands must run, or None when the host has applied exactly this configuration and runs it.
pub fn apply_reason(changed: usize, stamp_matches: bool, active: bool) -> Option<String> {
    if changed > 0 {
        Some(format!("{changed} file(s) changed"))
    } else if !stamp_matches {
        Some(
            "files in place but never applied (an earlier configure stopped before applying)"
                .to_string(),
        )
    } else if !active {
        Some("files in place but the services were not running".to_string())
    } else {
        None
    }
}

/// Push and apply one host's configuration; returns what changed.
fn push(
    conn: &Conn,
    side: Side,
    cfg: &render::HostConfig,
    unit: &str,
    dir: &str,
) -> Result<HostReport, SshError> {
    let paths: Vec<String> = cfg
        .files
        .iter()
        .map(|f| crate::ssh::quote(&f.path))
        .collect();
    // What the host has, in one command: the files' checksums, whether the link's services run, the stamp of what
    // was last applied (writing the files below changes none of the last two).
    let stamp_file = stamp_path(dir);
    let seen = conn.run(&format!(
        "sha256sum {} 2>/dev/null\n\
         if systemctl is-active --quiet {unit} && systemctl is-active --quiet ipsec.service; then echo 'vpclink-active: yes'; else echo 'vpclink-active: no'; fi\n\
         echo \"vpclink-stamp: $(cat {} 2>/dev/null)\"",
        paths.join(" "),
        crate::ssh::quote(&stamp_file)
    ))?;
    let remote: BTreeMap<&str, &str> = seen
        .stdout
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(h, p)| (p.trim(), h.trim())))
        .collect();
    let active = seen
        .stdout
        .lines()
        .any(|l| l.trim() == "vpclink-active: yes");
    let have_stamp = seen
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("vpclink-stamp:"))
        .unwrap_or("")
        .trim()
        .to_string();
    let mut changed = Vec::new();
    for f in &cfg.files {
        if remote.get(f.path.as_str()) != Some(&sha256_hex(&f.content).as_str()) {
            changed.push(f.path.clone());
        }
    }
    // Stage everything before applying anything, so a dropped connection leaves the old config in force.
    let staged: Vec<FileWrite> = cfg
        .files
        .iter()
        .filter(|f| changed.contains(&f.path))
        .map(|f| FileWrite {
            path: &f.path,
            mode: f.mode,
            content: &f.content,
        })
        .collect();
    conn.write_files(&staged)?;
    // Tests only (scripts/lab): stop here, as a run whose connection dropped between writing and applying would.
    if !changed.is_empty() && std::env::var_os("VPCLINK_STOP_BEFORE_APPLY").is_some() {
        return Err(SshError::Command {
            host: conn.label.clone(),
            command: "apply".into(),
            status: 1,
            stderr:
                "stopped after writing, before applying (VPCLINK_STOP_BEFORE_APPLY, tests only)"
                    .into(),
        });
    }
    let want = stamp(cfg);
    let reason = apply_reason(changed.len(), have_stamp == want, active);
    let applied = reason.is_some();
    if applied {
        conn.check(&apply_script(&cfg.apply, &stamp_file, &want))?;
    }
    Ok(HostReport {
        side,
        host: conn.label.clone(),
        files_changed: changed,
        applied,
        reason: reason.unwrap_or_else(|| "already configured".to_string()),
    })
}

/// The apply as one command: the stamp goes out of date first (a run that stops in the middle is applied again),
/// then each command in order, the first failure named and fatal, then everything the apply wrote (unit symlinks,
/// libreswan's state) to disk before the stamp, written durably, says "applied".
pub fn apply_script(apply: &[String], stamp_file: &str, stamp: &str) -> String {
    let mut s = format!("rm -f {}\n", crate::ssh::quote(stamp_file));
    for cmd in apply {
        s.push_str(&format!(
            "{cmd} || {{ rc=$?; echo {} >&2; exit $rc; }}\n",
            crate::ssh::quote(&format!("vpclink: apply step failed: {cmd}"))
        ));
    }
    s.push_str("sync\n");
    s.push_str(&crate::ssh::durable_write_script(&[FileWrite {
        path: stamp_file,
        mode: 0o644,
        content: &format!("{stamp}\n"),
    }]));
    s
}

/// Configure both tunnel hosts. Host keys seen for the first time and the collected facts are recorded in `state`.
pub fn configure(
    files: &StateFiles,
    state: &mut LinkState,
    out: &Output,
) -> Result<ConfigureReport, crate::Error> {
    let key = key_path(files)?;
    let t0 = std::time::Instant::now();
    let mut timings = Timings::default();
    let pb = out.spinner("configure: connecting to both tunnel hosts, preparing IPsec keys");
    let prepared = both(|side| prepare(state, side, &key))?;
    timings.prepare_s = secs(t0.elapsed());
    for side in Side::BOTH {
        let p = prepared.get(side);
        if let Some(h) = state.side_mut(side).tunnel.as_mut() {
            if let Some(k) = &p.pinned {
                h.host_key = Some(k.clone());
            }
            h.uplink = Some(p.facts.uplink.clone());
            h.ipsec_pubkey = Some(p.facts.rsa_pubkey.clone());
            h.libreswan = Some(p.facts.libreswan.to_string());
        }
    }
    files.save(state)?;

    pb.set_message("configure: pushing and applying host configuration");
    let t1 = std::time::Instant::now();
    let link = &state.plan;
    let reports = both(|side| {
        let p = prepared.get(side);
        let view = TunnelView {
            link,
            side,
            local: &p.facts,
            peer: &prepared.get(side.peer()).facts,
        };
        let cfg = render::tunnel_host(&view);
        push(&p.conn, side, &cfg, &view.unit_name(), &view.dir()).map_err(crate::Error::from)
    })?;
    let applied = reports.east.applied || reports.west.applied;
    timings.push_apply_s = secs(t1.elapsed());
    // Waiting for the link to settle and reaching the test hosts (which pins their host keys for verify; nothing is
    // pushed to them) are independent: the test hosts are reached through the tunnel hosts' SSH, not the tunnel.
    let key_path = &key;
    let settled_state: &LinkState = state;
    let (sa_up_after_s, tested) = std::thread::scope(|sc| {
        let tests = sc.spawn(move || {
            let t3 = std::time::Instant::now();
            let pinned = both(|side| {
                let Some(host) = settled_state.side(side).test.clone() else {
                    return Ok(None);
                };
                let label = format!("{side} test host");
                let (_, pinned) = connect(settled_state, side, &host, &label, key_path, SSH_WAIT)?;
                Ok(pinned)
            });
            (pinned, secs(t3.elapsed()))
        });
        let t2 = std::time::Instant::now();
        let sa = if applied {
            pb.set_message("configure: waiting for the IPsec SA and traffic through GRE");
            let conn_name = format!("vpclink-{}", settled_state.name);
            loop {
                let up = both(|side| Ok(sa_up(&prepared.get(side).conn, &conn_name, side)))
                    .is_ok_and(|b| b.east && b.west);
                if up {
                    break Some(t2.elapsed().as_secs());
                }
                if t2.elapsed() >= SA_WAIT {
                    break None;
                }
                // Each check is two SSH round trips per side already; a short pause keeps the reported time close.
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        } else {
            None
        };
        let settle_s = secs(t2.elapsed());
        (
            (sa, settle_s),
            tests.join().expect("test host thread panicked"),
        )
    });
    let (sa_up_after_s, settle_s) = sa_up_after_s;
    timings.settle_s = settle_s;
    let (pinned, test_hosts_s) = tested;
    timings.test_hosts_s = test_hosts_s;
    pb.finish_and_clear();
    let pinned = pinned?;
    for side in Side::BOTH {
        if let (Some(k), Some(h)) = (pinned.get(side).clone(), state.side_mut(side).test.as_mut()) {
            h.host_key = Some(k);
        }
    }
    files.save(state)?;
    timings.total_s = secs(t0.elapsed());

    let hosts = vec![reports.east, reports.west];
    Ok(ConfigureReport {
        name: state.name.clone(),
        changed: hosts.iter().any(|h| h.applied),
        hosts,
        sa_up_after_s,
        timings,
    })
}

/// Run `f` for both sides at once (one thread each) and return both results, or the first error.
pub fn both<T: Send>(
    f: impl Fn(Side) -> Result<T, crate::Error> + Sync,
) -> Result<PerSide<T>, crate::Error> {
    let (e, w) = std::thread::scope(|s| {
        let e = s.spawn(|| f(Side::East));
        let w = s.spawn(|| f(Side::West));
        (
            e.join().expect("east thread panicked"),
            w.join().expect("west thread panicked"),
        )
    });
    Ok(PerSide::new(e?, w?))
}

pub fn human(r: &ConfigureReport) -> String {
    let rows: Vec<Vec<String>> = r
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                if h.applied { "applied" } else { "unchanged" }.to_string(),
                h.reason.clone(),
                h.files_changed.join(" "),
            ]
        })
        .collect();
    let mut s = crate::output::table(&["host", "result", "why", "files changed"], &rows);
    match (r.changed, r.sa_up_after_s) {
        (false, _) => s.push_str("configure: no change; everything was already in place\n"),
        (true, Some(t)) => s.push_str(&format!(
            "configure: changes applied; IPsec SA up and GRE answering {t} s later\n"
        )),
        (true, None) => s.push_str(&format!(
            "configure: changes applied, but the link did not carry traffic (ESP SA and a GRE echo) within {} s; `vpclink verify` shows why\n",
            SA_WAIT.as_secs()
        )),
    }
    let t = &r.timings;
    s.push_str(&format!(
        "configure took {} s: prepare {} s, push and apply {} s, IPsec and GRE settling {} s (test hosts reached meanwhile in {} s)\n",
        t.total_s, t.prepare_s, t.push_apply_s, t.settle_s, t.test_hosts_s
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_files_are_not_enough_without_the_applied_stamp() {
        assert_eq!(apply_reason(0, true, true), None);
        assert!(apply_reason(0, false, true)
            .unwrap()
            .contains("never applied"));
        assert!(apply_reason(0, true, false)
            .unwrap()
            .contains("not running"));
        assert!(apply_reason(2, true, true)
            .unwrap()
            .contains("2 file(s) changed"));
        let file = |c: &str| render::FileSpec {
            path: "/etc/x".into(),
            mode: 0o644,
            content: c.into(),
        };
        let cfg = |c: &str, cmd: &str| render::HostConfig {
            files: vec![file(c)],
            apply: vec![cmd.into()],
        };
        // The stamp covers contents, modes and commands alike.
        assert_eq!(stamp(&cfg("a", "x")), stamp(&cfg("a", "x")));
        assert_ne!(stamp(&cfg("a", "x")), stamp(&cfg("b", "x")));
        assert_ne!(stamp(&cfg("a", "x")), stamp(&cfg("a", "y")));
        let mut other_mode = cfg("a", "x");
        other_mode.files[0].mode = 0o600;
        assert_ne!(stamp(&cfg("a", "x")), stamp(&other_mode));
    }

    /// Run here by this machine's sh: the first failing step is named and stops the apply before the stamp; a
    /// clean apply writes the stamp.
    #[test]
    fn apply_script_stops_at_the_first_failure_and_stamps_only_success() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("applied").to_string_lossy().into_owned();
        let marker = dir.path().join("ran-after").to_string_lossy().into_owned();
        std::fs::write(&stamp, "old\n").unwrap();
        let run = |steps: &[String]| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(apply_script(steps, &stamp, "abc"))
                .output()
                .unwrap()
        };
        let failing = [
            "true".to_string(),
            "false".to_string(),
            format!("touch {marker}"),
        ];
        let out = run(&failing);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("apply step failed: false"));
        assert!(
            !std::path::Path::new(&stamp).exists(),
            "stamp must be gone after a failed apply"
        );
        assert!(
            !std::path::Path::new(&marker).exists(),
            "no step after the failing one"
        );
        let out = run(&["true".to_string(), format!("touch {marker}")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&stamp).unwrap(), "abc\n");
        assert!(std::path::Path::new(&marker).exists());
    }

    #[test]
    fn route_get_is_parsed() {
        let s = "203.0.113.10 via 10.0.0.1 dev ens5 src 10.0.0.10 uid 0 \\    cache ";
        assert_eq!(
            parse_route_get(s),
            Some(("ens5".into(), "10.0.0.10".parse().unwrap()))
        );
        assert_eq!(parse_route_get("unreachable"), None);
    }

    #[test]
    fn ssh_retries_back_off_and_stop_within_the_wait() {
        use std::time::Duration;
        let s = Duration::from_secs;
        let delays: Vec<u64> = (0..6)
            .map(|a| ssh_retry_delay(a, s(0), SSH_WAIT).unwrap().as_secs())
            .collect();
        assert_eq!(delays, [2, 4, 8, 15, 15, 15]);
        assert_eq!(ssh_retry_delay(5, s(165), SSH_WAIT), Some(s(15)));
        assert_eq!(ssh_retry_delay(5, s(166), SSH_WAIT), None);
        // Retries never exceed the wait: the sum of delays until None stays within it.
        let (mut t, mut a) = (s(0), 0);
        while let Some(d) = ssh_retry_delay(a, t, SSH_WAIT) {
            t += d;
            a += 1;
        }
        assert!(t <= SSH_WAIT && t > SSH_WAIT - s(15), "{t:?}");
    }

    #[test]
    fn only_a_host_not_up_yet_is_retried() {
        let refused = SshError::Connect {
            host: "east tunnel host".into(),
            addr: "198.51.100.10:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(refused.is_not_up_yet());
        let mismatch = SshError::HostKeyMismatch {
            host: "h".into(),
            expected: "a".into(),
            offered: "b".into(),
        };
        assert!(!mismatch.is_not_up_yet());
        let auth = SshError::Auth {
            host: "h".into(),
            user: "ec2-user".into(),
            key: "k".into(),
        };
        assert!(!auth.is_not_up_yet());
    }

    #[test]
    fn retry_gives_up_at_once_on_other_errors() {
        let mut calls = 0;
        let r: Result<(), SshError> = retry_while_not_up("h", SSH_WAIT, || {
            calls += 1;
            Err(SshError::HostKeyMismatch {
                host: "h".into(),
                expected: "a".into(),
                offered: "b".into(),
            })
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r = retry_while_not_up("h", SSH_WAIT, || {
            calls += 1;
            if calls < 2 {
                Err(SshError::Connect {
                    host: "h".into(),
                    addr: "a:22".into(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                })
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 2, "one retry after 2 s, then success");
    }
}
