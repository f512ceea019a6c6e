//! The pure half of verify: from what the hosts answered (exit statuses, output, elapsed times), decide every check
//! and its evidence. Nothing here talks to a host. The tests feed it outputs captured from a healthy link and from a
//! dead one (west's IPsec gone, east retrying IKE_SA_INIT), as `route::plan_routes` is fed tables.

use super::{
    Check, BUDGET, DF_OVER_WINDOW, DF_WINDOW, GRE_WINDOW, IKE_QUIET, IKE_SETTLE, PING_WINDOW, POLL,
    TCP_WINDOW,
};
use crate::render::{mtu, GRE_IF};
use crate::side::{PerSide, Side};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// What one remote command gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Its exit status; [`Probe::NO_ANSWER`] when it could not be run (the SSH error is in `output`).
    pub status: i32,
    /// stdout, then stderr.
    pub output: String,
    pub elapsed: Duration,
}

impl Probe {
    pub const NO_ANSWER: i32 = -1;

    pub fn new(status: i32, output: impl Into<String>, elapsed: Duration) -> Probe {
        Probe {
            status,
            output: output.into(),
            elapsed,
        }
    }

    fn ok(&self) -> bool {
        self.status == 0
    }

    /// `timeout` ended it (124: TERM, 137: KILL after `-k`).
    fn killed(&self) -> bool {
        self.status == 124 || self.status == 137
    }
}

/// Every probe verify runs, per side. The order is the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `ipsec whack --showstates`, the last of the settle polls; `elapsed` is the whole settle.
    Ike,
    /// `ip xfrm state`.
    Xfrm,
    /// The firewall's counting rules for cleartext GRE.
    Counters,
    /// Echo across the GRE device to the peer's inner address, until one returns.
    Gre,
    /// Ping from this side's source host (test host, else tunnel host) to the far side's, through the mapping.
    PingSrc,
    /// Ping from the tunnel host too, when the source host is a test host.
    PingTunnel,
    /// Starting the listener for this side's TCP check, on the far side's source host. Not a check of its own.
    Listen,
    /// The TCP connection from this side's source host to the listener.
    Tcp,
    /// A DF ping whose packet is exactly the tunnel MTU.
    DfAt,
    /// A DF ping one byte over the tunnel MTU.
    DfOver,
    /// Resolving one of the far side's names through the VPC's resolver, then pinging what it answered (issue 13).
    Name,
}

/// The name check of one side: what to resolve and where the answer must lie, or why there is nothing to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTarget {
    /// Reported as skipped with this reason, never as passed.
    Skip(String),
    Resolve {
        /// A fully qualified name in this side's zone (the far side's source host's `ip-` name).
        name: String,
        /// The far side's mapped ranges: a right answer lies in one of them.
        ranges: Vec<ipnet::Ipv4Net>,
    },
}

/// What the judge must know about one side besides the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideFacts {
    pub side: Side,
    /// The libreswan connection, `vpclink-NAME`.
    pub conn_name: String,
    /// The far end's inner GRE address.
    pub peer_gre: Ipv4Addr,
    /// The far side's source host, at its mapped address; None when no host address is inside a mapped range.
    pub target: Option<Ipv4Addr>,
    /// This side's source host at its mapped address: what the far end must see as the TCP source.
    pub expected_src: Option<Ipv4Addr>,
    /// Whether this side's source host is a test host (else the tunnel host is the source).
    pub test_host: bool,
    pub port: u16,
    /// What this run's listener answers with, so that a listener left from an earlier run is not taken for it.
    pub token: String,
    pub name: NameTarget,
}

impl SideFacts {
    fn src_name(&self) -> &'static str {
        if self.test_host {
            "test host"
        } else {
            "tunnel host"
        }
    }
}

/// The probes that landed for one side, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideRaw(pub BTreeMap<Kind, Probe>);

impl SideRaw {
    pub fn set(&mut self, kind: Kind, probe: Probe) {
        self.0.insert(kind, probe);
    }
    fn get(&self, kind: Kind) -> Option<&Probe> {
        self.0.get(&kind)
    }
}

/// The probes of the tunnel itself, then the traffic probes, per side, in report order.
const TUNNEL_KINDS: [Kind; 4] = [Kind::Ike, Kind::Xfrm, Kind::Gre, Kind::Counters];
const TRAFFIC_KINDS: [Kind; 5] = [
    Kind::PingSrc,
    Kind::PingTunnel,
    Kind::Tcp,
    Kind::DfAt,
    Kind::DfOver,
];

/// Every check, in report order: both sides' tunnel checks, then both sides' traffic checks. A probe that never
/// landed (its host did not answer within the budget) is a failed check that says so.
pub fn judge(facts: &PerSide<SideFacts>, raw: &PerSide<SideRaw>) -> Vec<Check> {
    let mut v = Vec::new();
    for side in Side::BOTH {
        v.extend(
            TUNNEL_KINDS
                .iter()
                .filter_map(|&k| judge_kind(facts.get(side), raw.get(side), k)),
        );
    }
    for side in Side::BOTH {
        let f = facts.get(side);
        if f.target.is_none() {
            v.push(check(
                "ping",
                side,
                false,
                "no peer host address inside a mapped range",
            ));
            continue;
        }
        v.extend(
            TRAFFIC_KINDS
                .iter()
                .filter_map(|&k| judge_kind(f, raw.get(side), k)),
        );
    }
    for side in Side::BOTH {
        let f = facts.get(side);
        v.push(match &f.name {
            NameTarget::Skip(why) => skipped(NAME_CHECK, side, why.clone()),
            NameTarget::Resolve { .. } => {
                judge_kind(f, raw.get(side), Kind::Name).expect("a name to resolve")
            }
        });
    }
    v
}

/// The name check's name in the report.
pub const NAME_CHECK: &str = "names";

/// The check that probe `kind` decides, from what has landed so far (used as results land, and by [`judge`]).
/// None for a probe that decides no check of its own, or one that does not apply to this side.
pub fn judge_kind(f: &SideFacts, r: &SideRaw, kind: Kind) -> Option<Check> {
    let side = f.side;
    let missing = || {
        Probe::new(
            Probe::NO_ANSWER,
            format!(
                "no answer from the host within verify's {} s budget",
                BUDGET.as_secs()
            ),
            BUDGET,
        )
    };
    let p = r.get(kind).cloned().unwrap_or_else(missing);
    let traffic = || f.target.map(|t| (t, f.side.peer()));
    Some(match kind {
        Kind::Ike => ike_check(f, &p),
        Kind::Xfrm => esp_check(side, &p),
        Kind::Counters => counters_check(side, &p),
        Kind::Gre => gre_check(f, &p),
        Kind::PingSrc => {
            let (target, peer) = traffic()?;
            ping_check(
                &format!("ping {} -> {peer} {target}", f.src_name()),
                side,
                &p,
            )
        }
        Kind::PingTunnel => {
            let (target, peer) = traffic()?;
            if !f.test_host {
                return None;
            }
            ping_check(&format!("ping tunnel host -> {peer} {target}"), side, &p)
        }
        Kind::Listen => return None,
        Kind::Tcp => {
            let (target, peer) = traffic()?;
            tcp_check(
                &format!("tcp {} -> {peer} {target}:{}", f.src_name(), f.port),
                f,
                r.get(Kind::Listen),
                &p,
            )
        }
        Kind::DfAt => {
            traffic()?;
            df_at_check(side, &p)
        }
        Kind::DfOver => {
            traffic()?;
            let at = r.get(Kind::DfAt).cloned().unwrap_or_else(missing);
            df_over_check(side, &at, &p)
        }
        Kind::Name => match &f.name {
            NameTarget::Skip(_) => return None,
            NameTarget::Resolve { name, ranges } => name_check(side, name, ranges, &p),
        },
    })
}

/// `getent ahostsv4 NAME` (through the host's resolv.conf: the VPC's resolver), then a ping of the first address it
/// gave (see probe::names_script for the output's shape): passes when an address came back, every address lies in
/// the far side's mapped ranges, and the ping had replies.
pub fn name_check(side: Side, name: &str, ranges: &[ipnet::Ipv4Net], p: &Probe) -> Check {
    // getent ahostsv4 prints "ADDRESS STREAM|DGRAM|RAW [NAME]" lines (glibc's getent(1): "ahostsv4 ... same as
    // ahosts, but uses AF_INET"); everything else in the output is the ping's.
    let addrs: Vec<Ipv4Addr> = p
        .output
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let a = w.next()?.parse().ok()?;
            matches!(w.next(), Some("STREAM" | "DGRAM" | "RAW")).then_some(a)
        })
        .fold(Vec::new(), |mut v, a| {
            if !v.contains(&a) {
                v.push(a);
            }
            v
        });
    let title = format!("{NAME_CHECK} {name}");
    let Some(first) = addrs.first() else {
        return check(
            &title,
            side,
            false,
            format!(
                "no address for {name} from the VPC's resolver{}: {}",
                killed_note(p),
                last_lines(&p.output, 2)
            ),
        );
    };
    let outside: Vec<String> = addrs
        .iter()
        .filter(|a| !ranges.iter().any(|r| r.contains(*a)))
        .map(Ipv4Addr::to_string)
        .collect();
    if !outside.is_empty() {
        return check(
            &title,
            side,
            false,
            format!(
                "{name} resolved to {} outside the far side's mapped ranges ({}); `vpclink sync` rewrites the records",
                outside.join(" "),
                ranges.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" ")
            ),
        );
    }
    let replies = received(&p.output);
    let ok = p.ok() && replies > 0;
    check(
        &title,
        side,
        ok,
        if ok {
            format!("{name} -> {first}, {replies} ping replies")
        } else {
            format!(
                "{name} -> {first}, but no ping reply{}: {}",
                killed_note(p),
                last_lines(&p.output, 2)
            )
        },
    )
}

/// "3 packets transmitted, 3 received, ..." -> 3 (0 when absent).
fn received(ping: &str) -> u32 {
    ping.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

fn check(name: &str, side: Side, ok: bool, evidence: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        side,
        ok,
        evidence: evidence.into(),
        skipped: false,
    }
}

/// A check that did not run: neither passed nor failed; the evidence says why.
fn skipped(name: &str, side: Side, why: impl Into<String>) -> Check {
    Check {
        skipped: true,
        ..check(name, side, false, why)
    }
}

pub(super) fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A note for evidence when `timeout` had to stop the command.
fn killed_note(p: &Probe) -> &'static str {
    if p.killed() {
        " (the command was stopped by its timeout)"
    } else {
        ""
    }
}

/// What `ipsec whack --showstates` says about the link's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeView {
    /// The line of an established IKE SA.
    pub established: Option<String>,
    /// Whether an established child (IPsec) SA is listed.
    pub child: bool,
    /// Serial and state of every state of the connection, timers left out: when this stays the same, nothing is
    /// progressing (a retransmitted IKE_SA_INIT keeps its serial and state).
    pub progress: Vec<String>,
}

impl IkeView {
    pub fn settled(&self) -> bool {
        self.established.is_some() && self.child
    }
}

pub fn ike_view(showstates: &str, conn_name: &str) -> IkeView {
    let quoted = format!("\"{conn_name}\"");
    let lines: Vec<&str> = showstates.lines().filter(|l| l.contains(&quoted)).collect();
    let established = lines
        .iter()
        .find(|l| {
            l.contains("ESTABLISHED_IKE_SA") || l.contains("PARENT_I3") || l.contains("PARENT_R2")
        })
        .map(|l| l.trim().to_string());
    let child = lines
        .iter()
        .any(|l| l.contains("ESTABLISHED_CHILD_SA") || l.contains("IPsec SA established"));
    let progress = lines
        .iter()
        .map(|l| {
            let mut words = l.split_whitespace();
            let serial = words.find(|w| w.starts_with('#')).unwrap_or("");
            let state = l
                .split_whitespace()
                .find(|w| w.starts_with("STATE_"))
                .unwrap_or("(no state)");
            format!("{serial} {state}")
        })
        .collect();
    IkeView {
        established,
        child,
        progress,
    }
}

/// Whether the IKE settle goes on polling: not once both SAs are up, not past [`IKE_SETTLE`], and not once the
/// states have shown no progress for [`IKE_QUIET`] (a dead link: pluto down, or IKE_SA_INIT retransmitted to a peer
/// that does not answer). A link that is coming up changes state within a round trip.
pub fn keep_polling(view: &IkeView, unchanged_for: Duration, elapsed: Duration) -> bool {
    !view.settled() && elapsed + POLL < IKE_SETTLE && unchanged_for < IKE_QUIET
}

fn ike_check(f: &SideFacts, p: &Probe) -> Check {
    let view = ike_view(&p.output, &f.conn_name);
    match view.established {
        Some(line) => check("ike-sa", f.side, true, line),
        None => check(
            "ike-sa",
            f.side,
            false,
            format!(
                "no established IKE SA for {} after {:.0} s: {}{}",
                f.conn_name,
                p.elapsed.as_secs_f64(),
                if p.output.trim().is_empty() {
                    "no state at all for the connection".to_string()
                } else {
                    last_lines(&p.output, 3)
                },
                killed_note(p)
            ),
        ),
    }
}

fn esp_check(side: Side, p: &Probe) -> Check {
    if p.status == Probe::NO_ANSWER {
        return check("esp-sa", side, false, p.output.clone());
    }
    let esp = p.output.contains("proto esp");
    let natt = p.output.contains("espinudp");
    check(
        "esp-sa",
        side,
        esp && natt,
        if esp {
            format!(
                "ESP SA installed{}",
                if natt {
                    ", NAT-T (UDP 4500)"
                } else {
                    ", but without NAT-T encapsulation"
                }
            )
        } else if p.ok() {
            "no ESP state in the kernel (ip xfrm state is empty)".to_string()
        } else {
            format!(
                "ip xfrm state failed: {}{}",
                last_lines(&p.output, 2),
                killed_note(p)
            )
        },
    )
}

fn counters_check(side: Side, p: &Probe) -> Check {
    if p.status == Probe::NO_ANSWER {
        return check("no-cleartext-gre", side, false, p.output.clone());
    }
    let count = |needle: &str| {
        p.output
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let (cin, cout, blocked) = (
        count("cleartext GRE in"),
        count("cleartext GRE out"),
        count("cleartext GRE blocked out"),
    );
    check(
        "no-cleartext-gre",
        side,
        p.ok() && cin == Some(0) && cout == Some(0),
        match (cin, cout) {
            (Some(i), Some(o)) => format!(
                "cleartext GRE counted on the wire: {i} in, {o} out; {} stopped by the firewall while no SA covered them",
                blocked.unwrap_or(0)
            ),
            _ => "vpclink's counting rules are missing from the firewall; run `vpclink configure`".to_string(),
        },
    )
}

fn gre_check(f: &SideFacts, p: &Probe) -> Check {
    let evidence = if p.ok() {
        last_lines(&p.output, 2)
    } else if p.status == Probe::NO_ANSWER {
        p.output.clone()
    } else {
        format!(
            "no echo reply from {} on {GRE_IF} within {} s: {}{}",
            f.peer_gre,
            GRE_WINDOW,
            last_lines(&p.output, 2),
            killed_note(p)
        )
    };
    check("gre-peer", f.side, p.ok(), evidence)
}

fn ping_check(name: &str, side: Side, p: &Probe) -> Check {
    let evidence = if p.ok() || p.status == Probe::NO_ANSWER {
        last_lines(&p.output, 2)
    } else if p.output.contains(" 0 received") {
        format!(
            "no echo reply within {PING_WINDOW} s: {}{}",
            last_lines(&p.output, 2),
            killed_note(p)
        )
    } else {
        format!(
            "fewer than 3 echo replies within {PING_WINDOW} s: {}{}",
            last_lines(&p.output, 2),
            killed_note(p)
        )
    };
    check(name, side, p.ok(), evidence)
}

fn tcp_check(name: &str, f: &SideFacts, listen: Option<&Probe>, p: &Probe) -> Check {
    let expected = f
        .expected_src
        .map(|a| a.to_string())
        .unwrap_or_else(|| "this side's mapped address".into());
    let listener_note = match listen {
        Some(l) if !l.ok() => format!(
            "; the listener on the far end did not start: {}",
            last_lines(&l.output, 2)
        ),
        None => "; the far end's listener was not started in time".to_string(),
        Some(_) => String::new(),
    };
    if !p.ok() {
        let out = last_lines(&p.output, 2);
        let what = if p.status == Probe::NO_ANSWER {
            out
        } else if out.starts_with("no TCP connection") || out.starts_with("connected after") {
            format!("{out}{}", killed_note(p))
        } else {
            format!(
                "no TCP connection within {TCP_WINDOW} s: {}{}",
                if out.is_empty() { "no output" } else { &out },
                killed_note(p)
            )
        };
        return check(name, f.side, false, format!("{what}{listener_note}"));
    }
    let line = p
        .output
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut words = line.split_whitespace();
    let (token, seen) = (words.next().unwrap_or(""), words.next());
    if token != f.token {
        return check(
            name,
            f.side,
            false,
            format!(
                "connected, but the answer is not this run's listener's ({line:?}, expected the token {}): a listener left by another run?",
                f.token
            ),
        );
    }
    let ok = f.expected_src.is_some() && seen == Some(expected.as_str());
    check(
        name,
        f.side,
        ok,
        match seen {
            Some(seen) if ok => format!(
                "far end saw {seen} (expected {expected}), in {:.1} s",
                p.elapsed.as_secs_f64()
            ),
            Some(seen) => format!(
                "far end saw {seen}, expected {expected}: the source was not mapped as planned"
            ),
            None => format!("far end answered without a source address: {line:?}"),
        },
    )
}

fn df_sizes() -> (u16, u16) {
    let mtu = mtu::gre_mtu(mtu::PATH_MTU);
    (mtu, mtu::max_ping_payload(mtu))
}

/// The name of the DF check at the MTU, and of the one over it.
pub fn df_names() -> (String, String) {
    let (mtu, size) = df_sizes();
    (
        format!("df-ping {size}+28={mtu}"),
        format!("df-ping {} refused", mtu + 1),
    )
}

fn refused(out: &str) -> bool {
    out.contains("too long") || out.contains("Frag needed") || out.contains("mtu")
}

fn df_at_check(side: Side, p: &Probe) -> Check {
    let (mtu, _) = df_sizes();
    let evidence = if p.ok() || p.status == Probe::NO_ANSWER {
        last_lines(&p.output, 2)
    } else if refused(&p.output) {
        format!(
            "a {mtu}-byte DF packet was refused although the tunnel MTU is {mtu}: {}",
            last_lines(&p.output, 2)
        )
    } else {
        format!(
            "no {mtu}-byte DF echo within {DF_WINDOW} s: {}{}",
            last_lines(&p.output, 2),
            killed_note(p)
        )
    };
    check(&df_names().0, side, p.ok(), evidence)
}

/// One byte over the MTU must be refused with an error (a local "message too long" or an ICMP "frag needed"), never
/// lost in silence. Only judged once a packet of exactly the MTU got through: on a link that carries nothing, the
/// tunnel host refuses the big packet all the same (the GRE device's MTU is local), which would prove nothing.
fn df_over_check(side: Side, at: &Probe, p: &Probe) -> Check {
    let (mtu, _) = df_sizes();
    let name = df_names().1;
    if !at.ok() {
        return check(
            &name,
            side,
            false,
            format!(
                "not judged: nothing crosses the link (the {mtu}-byte DF ping failed), so a refusal at {} bytes proves nothing",
                mtu + 1
            ),
        );
    }
    if p.status == Probe::NO_ANSWER {
        return check(&name, side, false, p.output.clone());
    }
    let ok = !p.ok() && refused(&p.output);
    let evidence = if ok {
        last_lines(&p.output, 2)
    } else if p.ok() {
        format!(
            "a {}-byte DF packet got through a tunnel whose MTU is {mtu}: {}",
            mtu + 1,
            last_lines(&p.output, 2)
        )
    } else {
        format!(
            "a {}-byte DF packet was lost in silence within {DF_OVER_WINDOW} s (no \"message too long\", no ICMP \"frag needed\"): {}{}",
            mtu + 1,
            last_lines(&p.output, 2),
            killed_note(p)
        )
    };
    check(&name, side, ok, evidence)
}

#[cfg(test)]
mod tests;
