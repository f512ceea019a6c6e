use super::{mtu, TunnelView, DUMMY_IF, GRE_IF, GRE_INNER_LEN};

/// Runs before rendering. cloud-init may still be installing libreswan on a fresh instance; the NSS database and
/// RSA key are made once and kept (a re-run prints the same key).
pub const PREPARE: &str = r#"set -eu
if command -v cloud-init >/dev/null 2>&1; then timeout 900 cloud-init status --wait >/dev/null 2>&1 || true; fi
command -v ipsec >/dev/null 2>&1 || { echo "libreswan is not installed (ipsec not found); first boot may have failed: check /var/log/cloud-init-output.log" >&2; exit 3; }
command -v iptables-restore >/dev/null 2>&1 || { echo "iptables-restore not found; install iptables (iptables-nft on AL2023)" >&2; exit 3; }
[ -f /var/lib/ipsec/nss/cert9.db ] || ipsec initnss >/dev/null
ckaid() { ipsec showhostkey --list 2>/dev/null | sed -n 's/.*ckaid:\{0,1\} \([0-9a-f][0-9a-f]*\).*/\1/p' | head -n 1; }
id=$(ckaid)
if [ -z "$id" ]; then
  ipsec newhostkey >/dev/null 2>&1
  id=$(ckaid)
fi
ipsec showhostkey --left --ckaid "$id" | grep rsasigkey=
"#;

/// The boot-time script: idempotent, firewall first.
pub fn up_script(v: &TunnelView) -> String {
    let (inner_local, _) = v.inner();
    let mtu = mtu::gre_mtu(mtu::PATH_MTU);
    let routes: Vec<String> = v.remote().iter().map(|m| m.mapped.to_string()).collect();
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&v.header("apply at boot and on configure; safe to run any number of times"));
    s.push_str(&format!(
        r#"set -eu

# 1. Firewall first: GRE may only ever cross the network inside IPsec.
iptables-restore {dir}/iptables.rules

# 2. Forwarding, no redirects, no reverse-path filter.
sysctl -q -p /etc/sysctl.d/90-vpclink-{name}.conf

# 3. This host's Elastic IP on a dummy interface: GRE endpoint and IPsec traffic selector.
ip link show {dummy} >/dev/null 2>&1 || ip link add {dummy} type dummy
ip addr replace {own_eip}/32 dev {dummy}
ip link set {dummy} up

# 4. GRE between the two Elastic IPs; the IPsec policy captures it before it reaches the wire.
if ip link show {gre} >/dev/null 2>&1; then
  ip tunnel change {gre} mode gre local {own_eip} remote {peer_eip} ttl 64
else
  ip tunnel add {gre} mode gre local {own_eip} remote {peer_eip} ttl 64
fi
ip link set {gre} mtu {mtu} up
ip addr replace {inner_local}/{len} dev {gre}
sysctl -q -w net.ipv4.conf.{gre}.rp_filter=0

# 5. The {peer} VPC's mapped ranges go into the tunnel, sourced from the private address so that NETMAP maps this
#    host's own traffic too. Routes from an earlier plan are removed.
n=0; until ip -4 -o addr show | grep -q " inet {own_private}/"; do
  n=$((n+1)); [ $n -le 60 ] || {{ echo "{own_private} is not on any interface after 60 s" >&2; exit 1; }}; sleep 1
done
want="{routes}"
for r in $want; do ip route replace "$r" dev {gre} src {own_private} proto static; done
for r in $(ip -4 route show dev {gre} proto static | cut -d' ' -f1); do
  case " $want " in *" $r "*) ;; *) ip route del "$r" dev {gre} proto static ;; esac
done
"#,
        dir = v.dir(),
        name = v.link.name,
        dummy = DUMMY_IF,
        gre = GRE_IF,
        own_eip = v.local.public_ip,
        peer_eip = v.peer.public_ip,
        own_private = v.local.private_ip,
        len = GRE_INNER_LEN,
        peer = v.side.peer(),
        routes = routes.join(" "),
    ));
    s
}

/// Run after files changed: apply now, keep it across reboots, and (re)load the IPsec connection.
pub fn commands(v: &TunnelView) -> Vec<String> {
    let unit = v.unit_name();
    vec![
        "systemctl daemon-reload".to_string(),
        format!("systemctl enable {unit} ipsec.service"),
        format!("systemctl restart {unit}"),
        // A restart re-reads every conn and brings ours up (auto=start); on a host where pluto was not running
        // this is a plain start.
        "systemctl restart ipsec.service".to_string(),
    ]
}
