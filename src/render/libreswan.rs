use super::TunnelView;

/// One IKEv2 connection between the tunnel hosts, authenticated by RSA host keys made on each host.
///
/// Behind EC2's 1:1 NAT the host never sees its Elastic IP. Transport mode between private address and peer EIP
/// fails there (TS_UNACCEPTABLE, measured); what works is tunnel mode whose traffic selectors are the two Elastic
/// IPs (each on its host's dummy interface) restricted to GRE, with IKE itself running from the private address
/// and identifying as the Elastic IP. NAT-T (UDP 4500) is then always in use.
///
/// Only east initiates (`auto=start`); west waits (`auto=add`). When both restarted at once, both initiated, each
/// dropped its own attempt, and the ESP SPIs no longer matched: traffic was lost both ways for ~75 s (measured in
/// the lab). West coming back after a reboot is found by east's liveness check, which restarts the connection.
pub fn render(v: &TunnelView) -> String {
    let (l, r) = (v.local, v.peer);
    let mut s = v.header("libreswan connection");
    s.push_str(&format!(
        "conn {name}
\tauthby=rsasig
\tikev2=insist
\ttype=tunnel
\t# IKE from the private address; the Elastic IP is identity and traffic selector.
\tleft={lpriv}
\tleftid={lpub}
\tleftsubnet={lpub}/32
\tleftprotoport=gre
\tleftrsasigkey={lkey}
\tright={rpub}
\trightid={rpub}
\trightsubnet={rpub}/32
\trightprotoport=gre
\trightrsasigkey={rkey}
\t# AES-GCM only: the tunnel MTU is computed for it.
\tesp=aes_gcm256
\tencapsulation=yes
\t# IKEv2 liveness: probe every 10 s; libreswan 4 ignores dpdtimeout= and gives up after retransmit-timeout.
\tdpddelay=10
\tretransmit-timeout=30s
\tdpdaction=restart
\tikelifetime=8h
\tsalifetime=1h
\tauto={auto}
",
        name = v.conn_name(),
        lpriv = l.private_ip,
        lpub = l.public_ip,
        lkey = l.rsa_pubkey,
        rpub = r.public_ip,
        rkey = r.rsa_pubkey,
        auto = match v.side {
            crate::side::Side::East => "start",
            crate::side::Side::West => "add",
        },
    ));
    s
}
