use super::{mtu, TunnelView, GRE_IF};

/// The tunnel host's whole ruleset, loaded atomically by iptables-restore (the host is dedicated to the link).
///
/// Invariants, each proven in the lab:
/// - GRE enters and leaves only inside ESP. OUTPUT is policed too: with INPUT rules alone a few GRE packets left
///   in clear before the SA came up.
/// - Counting rules at the edges (raw PREROUTING, mangle POSTROUTING) see any cleartext GRE that got past the
///   filter; verify reads them and expects zero.
/// - 1:1 NETMAP both ways: traffic from this VPC leaves the tunnel with its mapped source; traffic arriving for the
///   mapped range is sent to the real address. Conntrack undoes both for replies.
/// - Forwarding only between this VPC and the peer's mapped ranges; anything else is rejected, so a client gets an
///   immediate answer instead of a timeout.
pub fn render(v: &TunnelView) -> String {
    let up = &v.local.uplink;
    let own = v.own();
    let remote = v.remote();
    let mut s = v.header("netfilter ruleset (iptables-restore)");

    s.push_str("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str("-A PREROUTING -p gre -m policy --dir in --pol none -m comment --comment \"vpclink: cleartext GRE in\"\n");
    s.push_str("COMMIT\n");

    s.push_str("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    s.push_str(&format!(
        "# TCP into the tunnel announces an MSS that fits its {} byte MTU, for both directions of every connection.\n",
        mtu::gre_mtu(mtu::PATH_MTU)
    ));
    s.push_str(&format!(
        "-A FORWARD -o {GRE_IF} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n"
    ));
    s.push_str("-A POSTROUTING -p gre -m policy --dir out --pol none -m comment --comment \"vpclink: cleartext GRE out\"\n");
    s.push_str("COMMIT\n");

    s.push_str("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    for m in &own {
        s.push_str(&format!(
            "-A PREROUTING -i {GRE_IF} -d {} -j NETMAP --to {}\n",
            m.mapped, m.real
        ));
    }
    for m in &own {
        s.push_str(&format!(
            "-A POSTROUTING -o {GRE_IF} -s {} -j NETMAP --to {}\n",
            m.real, m.mapped
        ));
    }
    s.push_str("COMMIT\n");

    s.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str("-A INPUT -p gre -m policy --dir in --pol ipsec --proto esp -j ACCEPT\n");
    s.push_str(
        "-A INPUT -p gre -m comment --comment \"vpclink: cleartext GRE dropped in\" -j DROP\n",
    );
    s.push_str("-A OUTPUT -p gre -m policy --dir out --pol ipsec --proto esp -j ACCEPT\n");
    s.push_str(
        "-A OUTPUT -p gre -m comment --comment \"vpclink: cleartext GRE blocked out\" -j DROP\n",
    );
    s.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    for o in &own {
        for r in &remote {
            s.push_str(&format!(
                "-A FORWARD -i {up} -o {GRE_IF} -s {} -d {} -j ACCEPT\n",
                o.real, r.mapped
            ));
            s.push_str(&format!(
                "-A FORWARD -i {GRE_IF} -o {up} -s {} -d {} -j ACCEPT\n",
                r.mapped, o.real
            ));
        }
    }
    s.push_str("-A FORWARD -m limit --limit 6/min -j LOG --log-prefix \"vpclink reject: \"\n");
    s.push_str("-A FORWARD -j REJECT --reject-with icmp-admin-prohibited\n");
    s.push_str("COMMIT\n");
    s
}
