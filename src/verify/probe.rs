//! The effect half of verify: the commands run on the hosts, in four lanes per side that run at once, each on its
//! own SSH session (an ssh2 session serialises its channels behind one lock, so one session cannot wait on two
//! commands at once). Every command is wrapped in `timeout`, and every window is one of the constants in `mod.rs`.
//! Each probe is sent to the collector the moment it lands.

use super::judge::NameTarget;
use super::judge::{ike_view, keep_polling, Kind, Probe, SideFacts};
use super::{
    DF_OVER_WINDOW, DF_WINDOW, GRE_WINDOW, LISTEN_LIFETIME, PING_WINDOW, POLL, RESOLVE_WINDOW,
    SHORT, TCP_WINDOW,
};
use crate::render::{mtu, GRE_IF};
use crate::side::Side;
use crate::ssh::{quote, Conn};
use std::net::Ipv4Addr;
use std::sync::mpsc::Sender;
use std::time::Instant;

const TCP_LISTEN: &str = include_str!("tcp_listen.py");
const TCP_CONNECT: &str = include_str!("tcp_connect.py");

/// One probe that landed: for which side's check, which probe, what it gave.
pub struct Landed {
    pub side: Side,
    pub kind: Kind,
    pub probe: Probe,
}

struct Lane {
    conn: Conn,
    tx: Sender<Landed>,
}

impl Lane {
    /// Run `script` as root; an SSH failure is a probe with no answer, not an abort.
    fn run(&self, script: &str) -> Probe {
        let start = Instant::now();
        match self.conn.run(script) {
            Ok(o) => Probe::new(
                o.status,
                format!("{}{}", o.stdout, o.stderr),
                start.elapsed(),
            ),
            Err(e) => Probe::new(Probe::NO_ANSWER, e.to_string(), start.elapsed()),
        }
    }

    /// Hand a probe to the collector; false once it stopped listening (its deadline passed).
    fn land(&self, side: Side, kind: Kind, probe: Probe) -> bool {
        self.tx.send(Landed { side, kind, probe }).is_ok()
    }
}

/// `timeout` for a command that ends by itself within `window` seconds: one second more, then KILL a second later.
fn bounded(window: u64, command: &str) -> String {
    format!("timeout -k 1 {} {command}", window + 1)
}

/// IKE settle, then the ESP state, then the firewall's counters, on the tunnel host.
pub fn state_lane(conn: Conn, f: SideFacts, tx: Sender<Landed>) {
    let lane = Lane { conn, tx };
    let start = Instant::now();
    let mut changed = start;
    let mut seen: Option<Vec<String>> = None;
    let mut last = loop {
        let p = lane.run(&format!(
            "timeout -k 1 {SHORT} ipsec whack --showstates 2>&1"
        ));
        let view = ike_view(&p.output, &f.conn_name);
        if seen.as_ref() != Some(&view.progress) {
            seen = Some(view.progress.clone());
            changed = Instant::now();
        }
        if p.status == Probe::NO_ANSWER || !keep_polling(&view, changed.elapsed(), start.elapsed())
        {
            break p;
        }
        std::thread::sleep(POLL);
    };
    last.elapsed = start.elapsed();
    if !lane.land(f.side, Kind::Ike, last) {
        return;
    }
    let p = lane.run(&format!("timeout -k 1 {SHORT} ip xfrm state"));
    if !lane.land(f.side, Kind::Xfrm, p) {
        return;
    }
    let p = lane.run(&format!(
        "timeout -k 1 {SHORT} sh -c 'iptables -t raw -nvxL PREROUTING; iptables -t mangle -nvxL POSTROUTING; iptables -nvxL OUTPUT'"
    ));
    lane.land(f.side, Kind::Counters, p);
}

/// Echo across GRE until one returns (the first packets after the SA comes up can be lost), then, when the source
/// host is a test host, a ping from the tunnel host through the mapping.
pub fn gre_lane(conn: Conn, f: SideFacts, tx: Sender<Landed>) {
    let lane = Lane { conn, tx };
    let script = gre_script(f.peer_gre);
    if !lane.land(f.side, Kind::Gre, lane.run(&script)) {
        return;
    }
    if let (Some(target), true) = (f.target, f.test_host) {
        let p = lane.run(&bounded(
            PING_WINDOW,
            &format!("ping -n -c 3 -i 0.3 -w {PING_WINDOW} {target} 2>&1"),
        ));
        lane.land(f.side, Kind::PingTunnel, p);
    }
}

/// On this side's source host: start the listener for the far side's TCP check (it connects here), then connect
/// to the far side's listener.
pub fn tcp_lane(conn: Conn, f: SideFacts, peer_port: u16, tx: Sender<Landed>) {
    let lane = Lane { conn, tx };
    let Some(target) = f.target else { return };
    let p = lane.run(&listen_script(peer_port, &f.token));
    if !lane.land(f.side.peer(), Kind::Listen, p) {
        return;
    }
    let p = lane.run(&connect_script(target, f.port));
    lane.land(f.side, Kind::Tcp, p);
}

/// On this side's source host: ping through the mapping, then a DF ping at the tunnel MTU, then one byte over.
pub fn icmp_lane(conn: Conn, f: SideFacts, tx: Sender<Landed>) {
    let lane = Lane { conn, tx };
    let Some(target) = f.target else { return };
    let p = lane.run(&bounded(
        PING_WINDOW,
        &format!("ping -n -c 3 -i 0.3 -w {PING_WINDOW} {target} 2>&1"),
    ));
    if !lane.land(f.side, Kind::PingSrc, p) {
        return;
    }
    let size = mtu::max_ping_payload(mtu::gre_mtu(mtu::PATH_MTU));
    let p = lane.run(&bounded(
        DF_WINDOW,
        &format!("ping -n -M do -s {size} -c 2 -i 0.3 -w {DF_WINDOW} {target} 2>&1"),
    ));
    if !lane.land(f.side, Kind::DfAt, p) {
        return;
    }
    let p = lane.run(&bounded(
        DF_OVER_WINDOW,
        &format!(
            "ping -n -M do -s {} -c 2 -i 0.3 -w {DF_OVER_WINDOW} {target} 2>&1",
            size + 1
        ),
    ));
    lane.land(f.side, Kind::DfOver, p);
}

/// On this side's source host: resolve the far side's name, then ping the first address it gave.
pub fn names_lane(conn: Conn, f: SideFacts, tx: Sender<Landed>) {
    let lane = Lane { conn, tx };
    if let NameTarget::Resolve { name, .. } = &f.name {
        lane.land(f.side, Kind::Name, lane.run(&names_script(name)));
    }
}

/// `getent ahostsv4 NAME` asks through the host's own resolver configuration (nsswitch, resolv.conf: on EC2 the
/// VPC's resolver at the VPC base address plus two, which answers the private zones associated with the VPC:
/// https://docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html); it exits 2 when the name has no
/// address. Its lines are printed, then a ping of the first address.
pub fn names_script(name: &str) -> String {
    let name = quote(name);
    format!(
        "out=$(timeout -k 1 {RESOLVE_WINDOW} getent ahostsv4 {name}); rc=$?; \
         [ $rc -eq 0 ] || {{ echo \"getent ahostsv4 exited $rc: no address\"; exit 2; }}; \
         echo \"$out\"; a=$(echo \"$out\" | awk 'NR==1 {{print $1}}'); \
         {}",
        bounded(
            PING_WINDOW,
            &format!("ping -n -c 3 -i 0.3 -w {PING_WINDOW} \"$a\" 2>&1")
        )
    )
}

/// Echo probes across GRE for GRE_WINDOW s until one returns; then one more, whose output is the evidence (say,
/// "No such device").
pub fn gre_script(peer: Ipv4Addr) -> String {
    format!(
        "timeout {GRE_WINDOW} sh -c 'i=1; until ping -n -c 1 -W 1 -I {GRE_IF} {peer} >/dev/null 2>&1; do i=$((i+1)); sleep 0.2; done; echo \"echo reply after $i probe(s)\"' && exit 0; \
         timeout -k 1 2 ping -n -c 1 -W 1 -I {GRE_IF} {peer} 2>&1; exit 1"
    )
}

/// Start the listener in the background (it outlives the command) and say so.
pub fn listen_script(port: u16, token: &str) -> String {
    let listen = format!(
        "command -v python3 >/dev/null || {{ echo 'python3 is not installed'; exit 1; }}; \
         nohup timeout -k 1 {life} python3 -c {prog} {port} {token} {life} </dev/null >/dev/null 2>&1 & echo listening",
        life = LISTEN_LIFETIME,
        prog = quote(TCP_LISTEN),
        token = quote(token),
    );
    format!("timeout -k 1 {SHORT} sh -c {}", quote(&listen))
}

pub fn connect_script(target: Ipv4Addr, port: u16) -> String {
    bounded(
        TCP_WINDOW + 1,
        &format!(
            "python3 -c {} {target} {port} {TCP_WINDOW} 2>&1",
            quote(TCP_CONNECT)
        ),
    )
}

/// How long each lane may take on a dead link if every command runs to its window (the sums the budget is built
/// from; see `mod.rs`). SSH round trips come on top.
#[cfg(test)]
pub fn lane_windows() -> [(&'static str, std::time::Duration); 5] {
    let s = std::time::Duration::from_secs;
    [
        // settle (its last poll may start just before IKE_SETTLE) + xfrm + counters
        ("state", super::IKE_SETTLE + 3 * s(SHORT)),
        // GRE window + the diagnostic echo (1 s) + the tunnel host's ping
        ("gre", s(GRE_WINDOW + 1 + PING_WINDOW)),
        // starting the listener + the connect window
        ("tcp", s(SHORT + TCP_WINDOW)),
        // ping + DF at the MTU + DF over it
        ("icmp", s(PING_WINDOW + DF_WINDOW + DF_OVER_WINDOW)),
        // getent (killed a second after its window) + the ping of its answer
        ("names", s(RESOLVE_WINDOW + 1 + PING_WINDOW + 1)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `Conn::run` hands a script to the host: `sh -c 'SCRIPT'`.
    fn local(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs")
    }

    #[test]
    fn every_script_is_valid_sh() {
        let target = Ipv4Addr::new(10, 2, 1, 20);
        for script in [
            gre_script(target),
            listen_script(47000, "vpclink-5eed"),
            connect_script(target, 47000),
            bounded(PING_WINDOW, "ping -n -c 3 -w 4 10.2.1.20"),
            names_script("ip-10-0-1-20.west.l.vpclink.internal"),
        ] {
            let o = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .expect("sh runs");
            assert!(
                o.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }

    /// The two Python programs, through the exact quoting the lanes use, on this machine's loopback.
    #[test]
    fn the_listener_answers_the_connect_with_the_token_and_the_source() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let o = local(&listen_script(port, "vpclink-5eed"));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "listening");
        let o = local(&connect_script(Ipv4Addr::LOCALHOST, port));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "vpclink-5eed 127.0.0.1"
        );
        assert!(o.status.success());
    }
}
