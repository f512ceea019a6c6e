//! The judge fed with outputs captured from the lab: a healthy link, and a dead one (IPsec stopped on west; east
//! retransmitting IKE_SA_INIT, no ESP state, every echo lost).

use super::*;
use crate::verify::{probe, CONNECT_WAIT};

const TOKEN: &str = "vpclink-5eed";

fn facts(test_host: bool) -> PerSide<SideFacts> {
    let f = |side: Side, target: [u8; 4], src: [u8; 4], port| SideFacts {
        side,
        conn_name: "vpclink-lab".into(),
        peer_gre: crate::render::gre_inner(side).1,
        target: Some(Ipv4Addr::from(target)),
        expected_src: Some(Ipv4Addr::from(src)),
        test_host,
        port,
        token: TOKEN.into(),
        name: NameTarget::Skip("the link has no names".into()),
    };
    PerSide::new(
        f(Side::East, [10, 2, 1, 20], [10, 1, 1, 20], 47000),
        f(Side::West, [10, 1, 1, 20], [10, 2, 1, 20], 47001),
    )
}

fn p(status: i32, output: &str, secs: f64) -> Probe {
    Probe::new(status, output, Duration::from_secs_f64(secs))
}

fn raw(probes: &[(Kind, Probe)]) -> SideRaw {
    let mut r = SideRaw::default();
    for (k, probe) in probes {
        r.set(*k, probe.clone());
    }
    r
}

const SHOWSTATES_UP: &str = "\
000 #1: \"vpclink-lab\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 27869s; REPLACE in 28797s; newest; idle;
000 #2: \"vpclink-lab\":4500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); REKEY in 3303s; REPLACE in 3573s; newest; eroute owner; IKE SA #1; idle;
000 #2: \"vpclink-lab\" esp.8a1b2c3d@203.0.113.10 esp.c0ffee01@10.0.0.10 tun.0@203.0.113.10 tun.0@10.0.0.10 Traffic: ESPin=1KB ESPout=1KB ESPmax=2^63B
";
const SHOWSTATES_RETRYING: &str = "\
000 #4: \"vpclink-lab\":500 STATE_V2_PARENT_I1 (sent IKE_SA_INIT request); RETRANSMIT in 15s; idle;
000 #4: pending CHILD SA for \"vpclink-lab\"
";
const PLUTO_DOWN: &str = "whack: Pluto is not running (no \"/run/pluto/pluto.ctl\")\n";
const XFRM_UP: &str = "\
src 10.0.0.10 dst 203.0.113.10
\tproto esp spi 0x8a1b2c3d reqid 16389 mode tunnel
\treplay-window 0 flag af-unspec
\taead rfc4106(gcm(aes)) 0x0011223344556677 128
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
";

fn counters(blocked: u64) -> String {
    format!(
        "\
Chain PREROUTING (policy ACCEPT 812 packets, 70964 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       0        0            47   --  *      *       0.0.0.0/0            0.0.0.0/0            policy match dir in pol none /* vpclink: cleartext GRE in */
Chain POSTROUTING (policy ACCEPT 790 packets, 80120 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       0        0            47   --  *      *       0.0.0.0/0            0.0.0.0/0            policy match dir out pol none /* vpclink: cleartext GRE out */
Chain OUTPUT (policy ACCEPT 640 packets, 61000 bytes)
    pkts      bytes target     prot opt in     out     source               destination
{blocked:>8}     {b2}  DROP       47   --  *      *       0.0.0.0/0            0.0.0.0/0            /* vpclink: cleartext GRE blocked out */
",
        b2 = blocked * 104
    )
}

fn ping_ok(target: &str, count: u32) -> String {
    format!(
        "PING {target} ({target}) 56(84) bytes of data.\n64 bytes from {target}: icmp_seq=1 ttl=62 time=4.36 ms\n\n--- {target} ping statistics ---\n{count} packets transmitted, {count} received, 0% packet loss, time 601ms\nrtt min/avg/max/mdev = 4.359/6.529/8.060/1.577 ms\n"
    )
}

fn ping_lost(target: &str, sent: u32) -> String {
    format!(
        "PING {target} ({target}) 56(84) bytes of data.\n\n--- {target} ping statistics ---\n{sent} packets transmitted, 0 received, 100% packet loss, time 3905ms\n"
    )
}

fn frag_needed(target: &str) -> String {
    format!(
        "PING {target} ({target}) 1381(1409) bytes of data.\nFrom 10.0.0.10 icmp_seq=1 Frag needed and DF set (mtu = 1408)\nping: local error: message too long, mtu=1408\n\n--- {target} ping statistics ---\n2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 301ms\n"
    )
}

fn healthy(side: Side) -> SideRaw {
    let (target, seen) = match side {
        Side::East => ("10.2.1.20", "10.1.1.20"),
        Side::West => ("10.1.1.20", "10.2.1.20"),
    };
    raw(&[
        (Kind::Ike, p(0, SHOWSTATES_UP, 0.1)),
        (Kind::Xfrm, p(0, XFRM_UP, 0.1)),
        (Kind::Counters, p(0, &counters(2), 0.2)),
        (Kind::Gre, p(0, "echo reply after 1 probe(s)\n", 0.1)),
        (Kind::PingSrc, p(0, &ping_ok(target, 3), 0.7)),
        (Kind::PingTunnel, p(0, &ping_ok(target, 3), 0.7)),
        (Kind::Listen, p(0, "listening\n", 0.1)),
        (Kind::Tcp, p(0, &format!("{TOKEN} {seen}\n"), 0.3)),
        (Kind::DfAt, p(0, &ping_ok(target, 2), 0.4)),
        (Kind::DfOver, p(1, &frag_needed(target), 0.4)),
    ])
}

/// West's IPsec stopped: east retransmits IKE_SA_INIT, west has no pluto; nothing crosses at any size, but the
/// tunnel host still refuses 1409 bytes (its GRE device's MTU is local).
fn dead(side: Side) -> SideRaw {
    let (target, ike) = match side {
        Side::East => ("10.2.1.20", p(0, SHOWSTATES_RETRYING, 2.1)),
        Side::West => ("10.1.1.20", p(1, PLUTO_DOWN, 2.1)),
    };
    raw(&[
        (Kind::Ike, ike),
        (Kind::Xfrm, p(0, "", 0.1)),
        (Kind::Counters, p(0, &counters(25), 0.2)),
        (
            Kind::Gre,
            p(
                1,
                "PING 169.254.248.2 (169.254.248.2) from 169.254.248.1 vpclink-gre: 56(84) bytes of data.\n\n--- 169.254.248.2 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n",
                4.0,
            ),
        ),
        (Kind::PingSrc, p(1, &ping_lost(target, 14), 4.0)),
        (Kind::PingTunnel, p(1, &ping_lost(target, 14), 4.0)),
        (Kind::Listen, p(0, "listening\n", 0.1)),
        (
            Kind::Tcp,
            p(1, "no TCP connection within 6 s: timed out\n", 6.0),
        ),
        (Kind::DfAt, p(1, &ping_lost(target, 11), 3.0)),
        (Kind::DfOver, p(1, &frag_needed(target), 0.4)),
    ])
}

fn by_name<'a>(checks: &'a [Check], side: Side, prefix: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.side == side && c.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {side} check {prefix}: {checks:#?}"))
}

#[test]
fn a_healthy_link_passes_every_check_with_the_same_names_as_before() {
    let checks = judge(
        &facts(true),
        &PerSide::new(healthy(Side::East), healthy(Side::West)),
    );
    let failing: Vec<_> = checks.iter().filter(|c| !c.ok && !c.skipped).collect();
    assert!(failing.is_empty(), "{failing:#?}");
    let names: Vec<String> = checks
        .iter()
        .map(|c| format!("{} {}", c.side, c.name))
        .collect();
    assert_eq!(
        names,
        [
            "east ike-sa",
            "east esp-sa",
            "east gre-peer",
            "east no-cleartext-gre",
            "west ike-sa",
            "west esp-sa",
            "west gre-peer",
            "west no-cleartext-gre",
            "east ping test host -> west 10.2.1.20",
            "east ping tunnel host -> west 10.2.1.20",
            "east tcp test host -> west 10.2.1.20:47000",
            "east df-ping 1380+28=1408",
            "east df-ping 1409 refused",
            "west ping test host -> east 10.1.1.20",
            "west ping tunnel host -> east 10.1.1.20",
            "west tcp test host -> east 10.1.1.20:47001",
            "west df-ping 1380+28=1408",
            "west df-ping 1409 refused",
            "east names",
            "west names",
        ]
    );
    // Without names the check is skipped, with the reason, never passed.
    for c in checks.iter().filter(|c| c.name == NAME_CHECK) {
        assert!(
            c.skipped && !c.ok && c.evidence.contains("no names"),
            "{c:?}"
        );
    }
    let tcp = by_name(&checks, Side::East, "tcp");
    assert!(
        tcp.evidence
            .starts_with("far end saw 10.1.1.20 (expected 10.1.1.20)"),
        "{}",
        tcp.evidence
    );
    assert!(by_name(&checks, Side::West, "ike-sa")
        .evidence
        .contains("STATE_V2_ESTABLISHED_IKE_SA"));
}

#[test]
fn a_dead_link_fails_every_check_that_needs_the_link_and_says_why() {
    let checks = judge(
        &facts(true),
        &PerSide::new(dead(Side::East), dead(Side::West)),
    );
    for side in Side::BOTH {
        for name in [
            "ike-sa",
            "esp-sa",
            "gre-peer",
            "ping test host",
            "ping tunnel host",
            "tcp",
            "df-ping 1380",
            "df-ping 1409 refused",
        ] {
            let c = by_name(&checks, side, name);
            assert!(!c.ok, "{side} {name} passed on a dead link: {}", c.evidence);
        }
        // The firewall did its job: nothing went out in the clear. That is true on a dead link too.
        assert!(by_name(&checks, side, "no-cleartext-gre").ok);
        // A refusal at 1409 bytes proves nothing when 1408 bytes do not cross either.
        let over = by_name(&checks, side, "df-ping 1409 refused");
        assert!(
            over.evidence
                .starts_with("not judged: nothing crosses the link"),
            "{}",
            over.evidence
        );
        // TCP says what happened, never "far end saw".
        let tcp = by_name(&checks, side, "tcp");
        assert!(
            tcp.evidence
                .starts_with("no TCP connection within 6 s: timed out"),
            "{}",
            tcp.evidence
        );
        assert!(!tcp.evidence.contains("far end saw"), "{}", tcp.evidence);
        let ping = by_name(&checks, side, "ping test host");
        assert!(
            ping.evidence.starts_with("no echo reply within 4 s"),
            "{}",
            ping.evidence
        );
    }
    let east_ike = by_name(&checks, Side::East, "ike-sa");
    assert!(
        east_ike.evidence.contains("STATE_V2_PARENT_I1"),
        "{}",
        east_ike.evidence
    );
    assert!(
        east_ike.evidence.contains("after 2 s"),
        "{}",
        east_ike.evidence
    );
    let west_ike = by_name(&checks, Side::West, "ike-sa");
    assert!(
        west_ike.evidence.contains("Pluto is not running"),
        "{}",
        west_ike.evidence
    );
    assert!(by_name(&checks, Side::East, "esp-sa")
        .evidence
        .contains("no ESP state"));
    assert!(by_name(&checks, Side::East, "gre-peer")
        .evidence
        .starts_with("no echo reply from 169.254.248.2 on vpclink-gre within 3 s"));
}

#[test]
fn the_refusal_over_the_mtu_is_judged_only_once_the_mtu_itself_crosses() {
    let f = &facts(true).east;
    let mut r = healthy(Side::East);
    assert!(judge_kind(f, &r, Kind::DfOver).unwrap().ok);
    // Lost in silence: a black hole, not a refusal.
    r.set(Kind::DfOver, p(1, &ping_lost("10.2.1.20", 2), 1.0));
    let c = judge_kind(f, &r, Kind::DfOver).unwrap();
    assert!(
        !c.ok && c.evidence.contains("lost in silence"),
        "{}",
        c.evidence
    );
    // Got through: the tunnel carries more than its MTU says.
    r.set(Kind::DfOver, p(0, &ping_ok("10.2.1.20", 2), 0.3));
    let c = judge_kind(f, &r, Kind::DfOver).unwrap();
    assert!(
        !c.ok && c.evidence.contains("got through"),
        "{}",
        c.evidence
    );
    // The MTU probe never answered: not judged.
    let mut r = healthy(Side::East);
    r.0.remove(&Kind::DfAt);
    let c = judge_kind(f, &r, Kind::DfOver).unwrap();
    assert!(
        !c.ok && c.evidence.starts_with("not judged"),
        "{}",
        c.evidence
    );
}

#[test]
fn tcp_evidence_names_what_really_happened() {
    let f = &facts(true).east;
    let mut r = healthy(Side::East);
    let tcp = |r: &SideRaw| judge_kind(f, r, Kind::Tcp).unwrap();

    // NETMAP did not rewrite the source.
    r.set(Kind::Tcp, p(0, &format!("{TOKEN} 10.0.0.10\n"), 0.3));
    let c = tcp(&r);
    assert!(!c.ok);
    assert_eq!(
        c.evidence,
        "far end saw 10.0.0.10, expected 10.1.1.20: the source was not mapped as planned"
    );
    // A listener left by another run answered.
    r.set(Kind::Tcp, p(0, "vpclink-0ld 10.1.1.20\n", 0.3));
    let c = tcp(&r);
    assert!(
        !c.ok && c.evidence.contains("not this run's listener"),
        "{}",
        c.evidence
    );
    // Connected, then silence.
    r.set(
        Kind::Tcp,
        p(
            1,
            "connected after 0.1 s, but the far end sent nothing within 5.9 s: timed out\n",
            6.0,
        ),
    );
    let c = tcp(&r);
    assert!(
        !c.ok && c.evidence.starts_with("connected after 0.1 s"),
        "{}",
        c.evidence
    );
    // Killed by its timeout with nothing printed, and the listener never started.
    r.set(Kind::Tcp, p(124, "", 8.0));
    r.set(Kind::Listen, p(1, "python3 is not installed\n", 0.1));
    let c = tcp(&r);
    assert!(!c.ok);
    assert_eq!(
        c.evidence,
        "no TCP connection within 6 s: no output (the command was stopped by its timeout); the listener on the far end did not start: python3 is not installed"
    );
}

#[test]
fn probes_that_never_landed_are_failures_that_say_so() {
    // Only IKE answered on east before the budget ran out; nothing at all from west.
    let r = PerSide::new(
        raw(&[(Kind::Ike, p(0, SHOWSTATES_UP, 0.1))]),
        SideRaw::default(),
    );
    let checks = judge(&facts(false), &r);
    assert_eq!(
        checks.len(),
        2 * 4 + 2 * 4 + 2,
        "no tunnel-host ping without a test host; a (skipped) names check per side"
    );
    assert!(by_name(&checks, Side::East, "ike-sa").ok);
    for c in checks
        .iter()
        .filter(|c| !(c.side == Side::East && c.name == "ike-sa"))
    {
        assert!(!c.ok, "{c:?}");
        if c.name != "df-ping 1409 refused" && !c.skipped {
            assert!(c.evidence.contains("no answer"), "{c:?}");
        }
    }
    assert_eq!(
        by_name(&checks, Side::West, "ping").name,
        "ping tunnel host -> east 10.1.1.20"
    );
}

#[test]
fn a_side_without_a_mapped_peer_address_fails_once() {
    let mut f = facts(true);
    f.west.target = None;
    let checks = judge(&f, &PerSide::new(healthy(Side::East), healthy(Side::West)));
    let west: Vec<_> = checks
        .iter()
        .filter(|c| c.side == Side::West && c.name != NAME_CHECK)
        .collect();
    // The four tunnel checks, then one failed "ping" instead of the traffic checks.
    assert_eq!(west.len(), 5, "{west:#?}");
    let west_traffic = &west[4..];
    assert_eq!(west_traffic[0].name, "ping");
    assert_eq!(west_traffic.len(), 1, "{west_traffic:#?}");
    assert!(!west_traffic[0].ok);
}

#[test]
fn ike_settle_stops_at_once_when_up_and_soon_when_nothing_moves() {
    let up = ike_view(SHOWSTATES_UP, "vpclink-lab");
    assert!(up.settled());
    assert!(!keep_polling(&up, Duration::ZERO, Duration::ZERO));

    // A retransmitted IKE_SA_INIT: the timer moves, the state does not.
    let a = ike_view(SHOWSTATES_RETRYING, "vpclink-lab");
    let b = ike_view(
        &SHOWSTATES_RETRYING.replace("RETRANSMIT in 15s", "RETRANSMIT in 13s"),
        "vpclink-lab",
    );
    assert!(!a.settled());
    assert_eq!(a.progress, b.progress);
    assert!(keep_polling(&a, Duration::ZERO, Duration::from_secs(1)));
    assert!(!keep_polling(&a, IKE_QUIET, IKE_QUIET));
    // Moving along (IKE_AUTH sent): goes on, but never past IKE_SETTLE.
    let c = ike_view(
        "000 #4: \"vpclink-lab\":4500 STATE_V2_PARENT_I2 (sent IKE_AUTH request); RETRANSMIT in 1s\n",
        "vpclink-lab",
    );
    assert_ne!(a.progress, c.progress);
    assert!(keep_polling(&c, Duration::ZERO, Duration::from_secs(2)));
    assert!(!keep_polling(&c, Duration::ZERO, IKE_SETTLE));

    // Pluto down, or another connection's states: nothing for ours.
    assert!(ike_view(PLUTO_DOWN, "vpclink-lab").progress.is_empty());
    assert!(ike_view(SHOWSTATES_UP, "vpclink-other")
        .established
        .is_none());
}

#[test]
fn every_lane_fits_the_budget() {
    for (lane, windows) in probe::lane_windows() {
        assert!(
            windows <= BUDGET,
            "lane {lane}: {} s of windows exceed the {} s budget",
            windows.as_secs_f64(),
            BUDGET.as_secs()
        );
    }
    // A dead link must be reported within 15 s when the sessions open in a few seconds (the lab: ~1 s); slow SSH
    // has its own, longer bound.
    assert!(
        BUDGET + Duration::from_secs(4) <= Duration::from_secs(15),
        "a dead link must be reported within 15 s"
    );
    assert!(
        CONNECT_WAIT >= Duration::from_secs(10),
        "room for SSH through the tunnel host from afar"
    );
}

#[test]
fn the_names_check_resolves_into_the_far_sides_mapped_range_and_pings() {
    let name = "ip-10-0-1-20.west.lab.vpclink.internal";
    let ranges: Vec<ipnet::Ipv4Net> = vec!["10.2.0.0/16".parse().unwrap()];
    let getent = format!(
        "10.2.1.20       STREAM {name}\n10.2.1.20       DGRAM  \n10.2.1.20       RAW    \n"
    );
    let judge = |status, out: &str| {
        let mut f = facts(true);
        f.east.name = NameTarget::Resolve {
            name: name.into(),
            ranges: ranges.clone(),
        };
        let mut r = healthy(Side::East);
        r.set(Kind::Name, p(status, out, 1.0));
        judge(&f, &PerSide::new(r, healthy(Side::West)))
            .into_iter()
            .find(|c| c.side == Side::East && c.name.starts_with(NAME_CHECK))
            .unwrap()
    };
    let ok = judge(0, &format!("{getent}{}", ping_ok("10.2.1.20", 3)));
    assert!(ok.ok && !ok.skipped, "{ok:?}");
    assert_eq!(ok.name, format!("names {name}"));
    assert_eq!(ok.evidence, format!("{name} -> 10.2.1.20, 3 ping replies"));

    let unresolved = judge(2, "getent ahostsv4 exited 2: no address\n");
    assert!(
        !unresolved.ok && unresolved.evidence.starts_with("no address for"),
        "{unresolved:?}"
    );

    let wrong = judge(
        0,
        &format!("10.0.1.20 STREAM {name}\n{}", ping_ok("10.0.1.20", 3)),
    );
    assert!(
        !wrong.ok
            && wrong
                .evidence
                .contains("outside the far side's mapped ranges"),
        "{wrong:?}"
    );

    let silent = judge(1, &format!("{getent}{}", ping_lost("10.2.1.20", 3)));
    assert!(
        !silent.ok && silent.evidence.contains("no ping reply"),
        "{silent:?}"
    );

    // Never landed: a failure that says so, not a pass.
    let mut f = facts(true);
    f.west.name = NameTarget::Resolve {
        name: name.into(),
        ranges,
    };
    let c = judge_kind(&f.west, &SideRaw::default(), Kind::Name).unwrap();
    assert!(
        !c.ok && !c.skipped && c.evidence.contains("no answer"),
        "{c:?}"
    );
}
