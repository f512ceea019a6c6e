//! Prove the link end to end, from the hosts themselves: IKE and ESP state, the GRE peer, ping and TCP both ways
//! across the mapping, a DF probe at the tunnel MTU (and one byte over it), and the firewall's own count of
//! cleartext GRE.
//!
//! Read everything, then judge: [`probe`] runs the commands (four lanes per side, all eight at once, each on its own
//! SSH session, every command under `timeout`) and hands each result over as it lands; [`judge`] is a pure function
//! from those raw outputs to the checks and their evidence. Results are shown on stderr as they land, and the whole
//! run is bounded by [`BUDGET`] once the hosts answer, so a dead link is reported quickly rather than after every
//! wait has run out.
//!
//! Only east initiates IKE (`auto=start`); west answers (`auto=add`). A link that is just coming up is tolerated for
//! a few seconds (configure waits for the SA before it hands over to verify, and a reboot is followed by verify
//! runs until one passes); a link that shows no progress is reported at once.

mod judge;
mod probe;

use crate::configure::{connect, key_path};
use crate::output::Output;
use crate::plan::{translate, Translation};
use crate::side::{PerSide, Side};
use crate::ssh::Conn;
use crate::state::{Host, LinkState, StateFiles};
use judge::{NameTarget, SideFacts, SideRaw};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The time budget of one verify run once its SSH sessions are open, and so how long a dead link takes to be
/// reported after the hosts answered. The collector stops waiting at this point whatever the hosts do; a probe that
/// has not answered by then is a failed check that says so.
///
/// How it is spent (the critical path; the lanes run side by side, both sides at once): each lane runs its commands
/// one after the other, each bounded by its window; the longest lane on a dead link, every command running to its
/// window, is at most 10 s (`probe::lane_windows`, checked by a test):
///   state: IKE settle 4 s (given up after [`IKE_QUIET`] = 2 s without progress) + 3 reads x 2 s;
///   gre: GRE echo 3 s + a diagnostic echo 1 s + a ping 4 s; tcp: start the listener 2 s + connect 6 s;
///   icmp: ping 4 s + DF at the MTU 3 s + DF over it 1 s.
///
/// Opening the sessions comes first and has its own bound, [`CONNECT_WAIT`]: a test host is reached through its
/// tunnel host (two handshakes and a channel), which from an operator far from the region takes seconds. In the lab
/// (sessions in ~1 s) a dead link was reported in 11-13 s; a healthy link takes about 2-3 s.
pub const BUDGET: Duration = Duration::from_secs(10);
/// All SSH sessions, opened at once, before [`BUDGET`] starts; one not up by then is an error.
const CONNECT_WAIT: Duration = Duration::from_secs(15);
/// A quick read: `ipsec whack --showstates`, `ip xfrm state`, the firewall's counters, starting the listener (s).
const SHORT: u64 = 2;
/// IKE settle: poll every POLL, for at most IKE_SETTLE, and stop once the states have not changed for IKE_QUIET.
const POLL: Duration = Duration::from_secs(1);
const IKE_SETTLE: Duration = Duration::from_secs(4);
const IKE_QUIET: Duration = Duration::from_secs(2);
/// Echo probes across GRE until one returns (s).
const GRE_WINDOW: u64 = 3;
/// `ping -w`: three echo replies through the mapping within this many seconds.
const PING_WINDOW: u64 = 4;
/// The DF ping at the tunnel MTU, and the one a byte over it (refused at once on a healthy link).
const DF_WINDOW: u64 = 3;
const DF_OVER_WINDOW: u64 = 1;
/// The TCP connection, retried while refused or timing out (the listener starts at the same moment).
const TCP_WINDOW: u64 = 6;
/// The far end's listener gives up after this long, so none is left for the next run.
const LISTEN_LIFETIME: u64 = 10;
/// `getent ahostsv4` against the VPC's resolver (s); the ping of its answer then has PING_WINDOW.
const RESOLVE_WINDOW: u64 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub side: Side,
    pub ok: bool,
    pub evidence: String,
    /// Not run (e.g. the names check of a link without names): neither passed nor failed; `evidence` says why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
    /// Checks that did not run (see [`Check::skipped`]).
    #[serde(default)]
    pub skipped: usize,
    pub checks: Vec<Check>,
}

/// The address at which the other side reaches `addr`, a real address on `target_side`.
fn mapped_from(state: &LinkState, target_side: Side, addr: Ipv4Addr) -> Option<Ipv4Addr> {
    translate(&state.plan.mappings(), addr)
        .into_iter()
        .find_map(|t| match t {
            Translation::RealToMapped { side, mapped, .. } if side == target_side => Some(mapped),
            _ => None,
        })
}

/// The host a side's traffic starts from (and the far side's TCP check ends at): its test host, else its tunnel host.
fn source_host(state: &LinkState, side: Side) -> Option<&Host> {
    let s = state.side(side);
    s.test.as_ref().or(s.tunnel.as_ref())
}

fn side_facts(state: &LinkState, side: Side, token: &str) -> SideFacts {
    let peer = side.peer();
    SideFacts {
        side,
        conn_name: format!("vpclink-{}", state.name),
        peer_gre: crate::render::gre_inner(side).1,
        target: source_host(state, peer).and_then(|h| mapped_from(state, peer, h.private_ip)),
        expected_src: source_host(state, side).and_then(|h| mapped_from(state, side, h.private_ip)),
        test_host: state.side(side).test.is_some(),
        port: 47000 + (side as u16),
        token: token.to_string(),
        name: name_target(state, side),
    }
}

/// What `side`'s names check resolves: the `ip-` name of the far side's source host (every interface address has
/// one, see names::records) in this side's zone, to be found in the far side's mapped ranges. Skipped, with the
/// reason, for a link without names or whose zone was never made.
fn name_target(state: &LinkState, side: Side) -> NameTarget {
    let peer = side.peer();
    let Some(zone) = &state.side(side).names else {
        return NameTarget::Skip(
            "the link has no names (made with --no-dns, or before names existed)".into(),
        );
    };
    if zone.zone_id.is_none() {
        return NameTarget::Skip(format!(
            "zone {} was never made; `vpclink up` makes it",
            zone.zone_name
        ));
    }
    let Some(host) = source_host(state, peer) else {
        return NameTarget::Skip(format!("the {peer} side has no host to name"));
    };
    NameTarget::Resolve {
        name: format!(
            "{}.{}",
            crate::names::records::ip_label(host.private_ip),
            zone.zone_name
        ),
        ranges: state.plan.side(peer).mapped.clone(),
    }
}

/// The lanes of one side, each needing its own session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    State,
    Gre,
    Tcp,
    Icmp,
    Names,
}

/// Open every session at once, each on its own thread, and wait for them until `deadline`. A session that failed
/// is that error; one still not up by the deadline is an error that says so (its thread is left to finish alone).
fn connect_all(
    state: &LinkState,
    key: &std::path::Path,
    facts: &PerSide<SideFacts>,
    deadline: Instant,
) -> Result<Vec<(Side, LaneKind, Conn)>, crate::Error> {
    let state = Arc::new(state.clone());
    let mut jobs: Vec<(Side, LaneKind, Host, String)> = Vec::new();
    for side in Side::BOTH {
        let s = state.side(side);
        let tunnel = s
            .tunnel
            .clone()
            .ok_or(crate::configure::ConfigureError::NoHost {
                side,
                role: "tunnel",
            })?;
        let tunnel_label = format!("{side} tunnel host");
        jobs.push((side, LaneKind::State, tunnel.clone(), tunnel_label.clone()));
        jobs.push((side, LaneKind::Gre, tunnel.clone(), tunnel_label.clone()));
        if facts.get(side).target.is_some() {
            let (src, label) = match &s.test {
                Some(h) => (h.clone(), format!("{side} test host")),
                None => (tunnel, tunnel_label),
            };
            jobs.push((side, LaneKind::Tcp, src.clone(), label.clone()));
            jobs.push((side, LaneKind::Icmp, src, label));
        }
        if matches!(facts.get(side).name, NameTarget::Resolve { .. }) {
            let (src, label) = match &s.test {
                Some(h) => (h.clone(), format!("{side} test host")),
                None => (
                    s.tunnel.clone().expect("checked above"),
                    format!("{side} tunnel host"),
                ),
            };
            jobs.push((side, LaneKind::Names, src, label));
        }
    }
    let (tx, rx) = mpsc::channel();
    for (i, (side, _, host, label)) in jobs.iter().cloned().enumerate() {
        let (tx, state, key) = (tx.clone(), state.clone(), key.to_path_buf());
        std::thread::spawn(move || {
            // No waiting for sshd here: verify reports a host it cannot reach at once.
            let r = connect(&state, side, &host, &label, &key, Duration::ZERO).map(|(c, _)| c);
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    let mut conns: Vec<Option<Conn>> = jobs.iter().map(|_| None).collect();
    let mut left = jobs.len();
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((i, Ok(c))) => {
                conns[i] = Some(c);
                left -= 1;
            }
            Ok((_, Err(e))) => return Err(e),
            Err(_) => {
                let (_, _, _, label) = &jobs[conns.iter().position(Option::is_none).unwrap_or(0)];
                return Err(crate::Error::Runtime(format!(
                    "{label}: no SSH session within {} s; check that the host is running and reachable",
                    CONNECT_WAIT.as_secs()
                )));
            }
        }
    }
    Ok(jobs
        .into_iter()
        .zip(conns)
        .filter_map(|((side, lane, _, _), c)| c.map(|c| (side, lane, c)))
        .collect())
}

fn token() -> String {
    format!(
        "vpclink-{:x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u32)
                .unwrap_or(0))
    )
}

/// PASS, FAIL or SKIP.
fn verdict(c: &Check) -> &'static str {
    match (c.skipped, c.ok) {
        (true, _) => "SKIP",
        (false, true) => "PASS",
        (false, false) => "FAIL",
    }
}

fn progress_line(c: &Check) -> String {
    format!("{} {} {}: {}", verdict(c), c.side, c.name, c.evidence)
}

pub fn verify(
    files: &StateFiles,
    state: &LinkState,
    out: &Output,
) -> Result<VerifyReport, crate::Error> {
    let start = Instant::now();
    let key: PathBuf = key_path(files)?;
    let token = token();
    let facts = PerSide::new(
        side_facts(state, Side::East, &token),
        side_facts(state, Side::West, &token),
    );
    let pb = out.spinner("verify: connecting to the hosts");
    let conns = connect_all(state, &key, &facts, start + CONNECT_WAIT)?;
    let deadline = Instant::now() + BUDGET;

    let (tx, rx) = mpsc::channel();
    for (side, lane, conn) in conns {
        let (f, tx) = (facts.get(side).clone(), tx.clone());
        let peer_port = facts.get(side.peer()).port;
        std::thread::spawn(move || match lane {
            LaneKind::State => probe::state_lane(conn, f, tx),
            LaneKind::Gre => probe::gre_lane(conn, f, tx),
            LaneKind::Tcp => probe::tcp_lane(conn, f, peer_port, tx),
            LaneKind::Icmp => probe::icmp_lane(conn, f, tx),
            LaneKind::Names => probe::names_lane(conn, f, tx),
        });
    }
    drop(tx);

    let mut raw = PerSide::new(SideRaw::default(), SideRaw::default());
    let total = judge::judge(&facts, &raw).len();
    let (mut landed, mut failed) = (0, 0);
    pb.set_message(format!("verify: 0 of {total} checks in"));
    // Until every lane has finished (all senders dropped) or the budget is spent; lanes still running then are
    // left behind, and what they did not deliver is judged as no answer.
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        raw.get_mut(l.side).set(l.kind, l.probe);
        if let Some(c) = judge::judge_kind(facts.get(l.side), raw.get(l.side), l.kind) {
            landed += 1;
            failed += usize::from(!c.ok);
            pb.println(progress_line(&c));
            pb.set_message(format!(
                "verify: {landed} of {total} checks in, {failed} failed"
            ));
        }
    }
    pb.finish_and_clear();
    let checks = judge::judge(&facts, &raw);
    let skipped = checks.iter().filter(|c| c.skipped).count();
    let failed = checks.iter().filter(|c| !c.ok && !c.skipped).count();
    tracing::debug!(
        "verify: {} checks in {:.1} s",
        checks.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(VerifyReport {
        name: state.name.clone(),
        ok: failed == 0,
        passed: checks.len() - failed - skipped,
        failed,
        skipped,
        checks,
    })
}

impl VerifyReport {
    /// The exit status a verify run stands for: an error naming how many checks failed.
    pub fn outcome(&self) -> Result<(), crate::Error> {
        if self.ok {
            Ok(())
        } else {
            Err(crate::Error::ChecksFailed {
                failed: self.failed,
                total: self.checks.len(),
            })
        }
    }
}

pub fn human(r: &VerifyReport) -> String {
    let rows: Vec<Vec<String>> = r
        .checks
        .iter()
        .map(|c| {
            vec![
                c.side.to_string(),
                c.name.clone(),
                verdict(c).to_string(),
                c.evidence.clone(),
            ]
        })
        .collect();
    let mut s = crate::output::table(&["side", "check", "result", "evidence"], &rows);
    s.push_str(&format!(
        "verify: {} passed, {} failed{}\n",
        r.passed,
        r.failed,
        match r.skipped {
            0 => String::new(),
            n => format!(", {n} skipped"),
        }
    ));
    s
}
