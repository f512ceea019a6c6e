//! Prove the link end to end, from the hosts themselves: IKE and ESP state, the GRE peer, ping and TCP both ways
//! across the mapping, a DF probe at the tunnel MTU, and the firewall's own count of cleartext GRE.

use crate::configure::{both, connect, key_path};
use crate::output::Output;
use crate::plan::{translate, Translation};
use crate::render::{mtu, GRE_IF};
use crate::side::Side;
use crate::ssh::Conn;
use crate::state::{LinkState, StateFiles};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long verify waits for IKE and the child SA to come up before calling the check failed.
const IKE_SETTLE: Duration = Duration::from_secs(45);
/// One-second echo probes across GRE before the peer counts as unreachable.
const GRE_SETTLE_TRIES: u32 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub side: Side,
    pub ok: bool,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
    pub checks: Vec<Check>,
}

struct Hosts {
    tunnel: Conn,
    test: Option<Conn>,
}

/// The address at which `from` reaches `addr`, a real address on the other side.
fn mapped_from(state: &LinkState, target_side: Side, addr: Ipv4Addr) -> Option<Ipv4Addr> {
    translate(&state.plan.mappings(), addr)
        .into_iter()
        .find_map(|t| match t {
            Translation::RealToMapped { side, mapped, .. } if side == target_side => Some(mapped),
            _ => None,
        })
}

fn check(name: &str, side: Side, ok: bool, evidence: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        side,
        ok,
        evidence: evidence.into(),
    }
}

/// Run a probe; an SSH failure is a failed check with the error as evidence, not an abort.
fn probe(conn: &Conn, script: &str) -> (i32, String) {
    match conn.run(script) {
        Ok(o) => (o.status, format!("{}{}", o.stdout, o.stderr)),
        Err(e) => (-1, e.to_string()),
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn tunnel_checks(state: &LinkState, side: Side, conn: &Conn) -> Vec<Check> {
    let conn_name = format!("vpclink-{}", state.name);
    let mut v = Vec::new();

    // A link that was just configured or rebooted needs a few seconds for IKE: wait, bounded.
    let deadline = Instant::now() + IKE_SETTLE;
    let (states, ike) = loop {
        let (_, states) = probe(conn, "ipsec whack --showstates 2>&1 || ipsec status 2>&1");
        let ike: Option<String> = states
            .lines()
            .filter(|l| l.contains(&format!("\"{conn_name}\"")))
            .find(|l| {
                l.contains("ESTABLISHED_IKE_SA")
                    || l.contains("PARENT_I3")
                    || l.contains("PARENT_R2")
            })
            .map(str::to_string);
        let child =
            states.contains("ESTABLISHED_CHILD_SA") || states.contains("IPsec SA established");
        if (ike.is_some() && child) || Instant::now() >= deadline {
            break (states, ike);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    v.push(check(
        "ike-sa",
        side,
        ike.is_some(),
        ike.map(|l| l.trim().to_string()).unwrap_or_else(|| {
            format!(
                "no established IKE SA for {conn_name}: {}",
                last_lines(&states, 3)
            )
        }),
    ));

    let (_, xfrm) = probe(conn, "ip xfrm state");
    let esp = xfrm.contains("proto esp");
    let natt = xfrm.contains("espinudp");
    v.push(check(
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
        } else {
            "no ESP state in the kernel (ip xfrm state is empty)".to_string()
        },
    ));

    let (_, peer_inner) = crate::render::gre_inner(side);
    // The first packets after the SAs come up can be lost while both ends settle on one pair of SAs (both
    // initiate). Probe until one echo returns, bounded, and report how long it took.
    let settle = format!(
        "i=0; while [ $i -lt {GRE_SETTLE_TRIES} ]; do i=$((i+1)); if ping -n -c 1 -W 1 -I {GRE_IF} {peer_inner} >/dev/null 2>&1; then echo \"echo reply after $i probe(s)\"; exit 0; fi; done; ping -n -c 1 -W 1 -I {GRE_IF} {peer_inner}"
    );
    let (st, out) = probe(conn, &settle);
    v.push(check("gre-peer", side, st == 0, last_lines(&out, 2)));

    let (st, out) = probe(
        conn,
        "iptables -t raw -nvxL PREROUTING; iptables -t mangle -nvxL POSTROUTING; iptables -nvxL OUTPUT",
    );
    let count = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let (cin, cout, blocked) = (
        count("cleartext GRE in"),
        count("cleartext GRE out"),
        count("cleartext GRE blocked out"),
    );
    v.push(check(
        "no-cleartext-gre",
        side,
        st == 0 && cin == Some(0) && cout == Some(0),
        match (cin, cout) {
            (Some(i), Some(o)) => format!(
                "cleartext GRE counted on the wire: {i} in, {o} out; {} stopped by the firewall while no SA covered them",
                blocked.unwrap_or(0)
            ),
            _ => "vpclink's counting rules are missing from the firewall; run `vpclink configure`".to_string(),
        },
    ));
    v
}

/// Ping, TCP and DF probes from `side` to the other side's test host (or tunnel host) through the mapping.
fn traffic_checks(
    state: &LinkState,
    side: Side,
    hosts: &Hosts,
    peer_hosts: &Hosts,
    token: &str,
) -> Vec<Check> {
    let mut v = Vec::new();
    let peer = side.peer();
    let peer_state = state.side(peer);
    let target_real = peer_state
        .test
        .as_ref()
        .or(peer_state.tunnel.as_ref())
        .map(|h| h.private_ip);
    let Some(target) = target_real.and_then(|ip| mapped_from(state, peer, ip)) else {
        v.push(check(
            "ping",
            side,
            false,
            "no peer host address inside a mapped range",
        ));
        return v;
    };
    let src = hosts.test.as_ref().unwrap_or(&hosts.tunnel);
    let src_name = if hosts.test.is_some() {
        "test host"
    } else {
        "tunnel host"
    };

    let (st, out) = probe(src, &format!("ping -n -c 3 -i 0.3 -W 2 {target}"));
    v.push(check(
        &format!("ping {src_name} -> {peer} {target}"),
        side,
        st == 0,
        last_lines(&out, 2),
    ));
    if hosts.test.is_some() {
        let (st, out) = probe(&hosts.tunnel, &format!("ping -n -c 3 -i 0.3 -W 2 {target}"));
        v.push(check(
            &format!("ping tunnel host -> {peer} {target}"),
            side,
            st == 0,
            last_lines(&out, 2),
        ));
    }

    // TCP: the far end listens once and answers with the token and the source address it saw, which must be
    // this side's mapped address (proof that NETMAP rewrote the source).
    let listener = peer_hosts.test.as_ref().unwrap_or(&peer_hosts.tunnel);
    let port = 47000 + (side as u16);
    let listen = format!(
        "nohup timeout 20 python3 -c 'import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((\"0.0.0.0\",{port}));s.listen(1)\nc,a=s.accept();c.sendall((\"{token} \"+a[0]+\"\\n\").encode());c.close()' </dev/null >/dev/null 2>&1 &"
    );
    let expected_src = state
        .side(side)
        .test
        .as_ref()
        .or(state.side(side).tunnel.as_ref())
        .and_then(|h| mapped_from(state, side, h.private_ip));
    let tcp = match listener.run(&listen) {
        Err(e) => check("tcp", side, false, e.to_string()),
        Ok(_) => {
            // One overall deadline: a dead tunnel answers "no connection within 10 s", not a traceback.
            let connect = format!(
                "python3 -c 'import socket,sys,time\nend=time.time()+10\nwhile True:\n  try:\n    s=socket.create_connection((\"{target}\",{port}),timeout=2);break\n  except OSError as e:\n    err=e\n    if time.time()>end: print(\"no TCP connection within 10 s:\",err);sys.exit(1)\n    time.sleep(0.25)\ns.settimeout(5)\nprint(s.recv(200).decode().strip())'"
            );
            let (st, out) = probe(src, &connect);
            let line = out.trim().to_string();
            let seen = line.split_whitespace().nth(1).map(str::to_string);
            let ok = st == 0
                && line.starts_with(token)
                && seen.as_deref() == expected_src.map(|a| a.to_string()).as_deref();
            check(
                &format!("tcp {src_name} -> {peer} {target}:{port}"),
                side,
                ok,
                format!(
                    "far end saw {} (expected {})",
                    seen.unwrap_or_else(|| last_lines(&out, 2)),
                    expected_src.map(|a| a.to_string()).unwrap_or_default()
                ),
            )
        }
    };
    v.push(tcp);

    // DF probes: the largest payload the tunnel MTU allows must pass; one byte more must be refused with an
    // error (local "message too long" or an ICMP "frag needed"), never lost in silence.
    let mtu = mtu::gre_mtu(mtu::PATH_MTU);
    let size = mtu::max_ping_payload(mtu);
    let (st, out) = probe(
        src,
        &format!("ping -n -M do -s {size} -c 2 -i 0.3 -W 2 {target}"),
    );
    v.push(check(
        &format!("df-ping {size}+28={mtu}"),
        side,
        st == 0,
        last_lines(&out, 2),
    ));
    let (st, out) = probe(
        src,
        &format!(
            "ping -n -M do -s {} -c 2 -i 0.3 -W 2 {target} 2>&1",
            size + 1
        ),
    );
    let refused = out.contains("too long") || out.contains("Frag needed") || out.contains("mtu");
    v.push(check(
        &format!("df-ping {} refused", size + 1 + 28),
        side,
        st != 0 && refused,
        last_lines(&out, 2),
    ));
    v
}

fn open_hosts(state: &LinkState, side: Side, key: &std::path::Path) -> Result<Hosts, crate::Error> {
    let s = state.side(side);
    let tunnel = s
        .tunnel
        .as_ref()
        .ok_or(crate::configure::ConfigureError::NoHost {
            side,
            role: "tunnel",
        })?;
    // No waiting for sshd here: verify reports a host it cannot reach at once.
    let none = std::time::Duration::ZERO;
    let (tunnel, _) = connect(
        state,
        side,
        tunnel,
        &format!("{side} tunnel host"),
        key,
        none,
    )?;
    let test = match &s.test {
        Some(h) => Some(connect(state, side, h, &format!("{side} test host"), key, none)?.0),
        None => None,
    };
    Ok(Hosts { tunnel, test })
}

pub fn verify(
    files: &StateFiles,
    state: &LinkState,
    out: &Output,
) -> Result<VerifyReport, crate::Error> {
    let key = key_path(files)?;
    let pb = out.spinner("verify: connecting to the hosts");
    let hosts = both(|side| open_hosts(state, side, &key))?;
    pb.set_message("verify: IPsec, GRE and firewall state");
    let mut checks = Vec::new();
    let tunnel = both(|side| Ok(tunnel_checks(state, side, &hosts.get(side).tunnel)))?;
    checks.extend(tunnel.east);
    checks.extend(tunnel.west);
    pb.set_message("verify: traffic both ways across the mapping");
    let token = format!(
        "vpclink-{:x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u32)
                .unwrap_or(0))
    );
    // One direction at a time: the far end's listener and the near end's probes must not interleave.
    for side in Side::BOTH {
        checks.extend(traffic_checks(
            state,
            side,
            hosts.get(side),
            hosts.get(side.peer()),
            &token,
        ));
    }
    pb.finish_and_clear();
    let failed = checks.iter().filter(|c| !c.ok).count();
    Ok(VerifyReport {
        name: state.name.clone(),
        ok: failed == 0,
        passed: checks.len() - failed,
        failed,
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
                if c.ok { "PASS" } else { "FAIL" }.to_string(),
                c.evidence.clone(),
            ]
        })
        .collect();
    let mut s = crate::output::table(&["side", "check", "result", "evidence"], &rows);
    s.push_str(&format!(
        "verify: {} passed, {} failed\n",
        r.passed, r.failed
    ));
    s
}
