use super::{mtu, TunnelView, DUMMY_IF, GRE_IF, GRE_INNER_LEN};

/// Runs before rendering: make the host able to run the data plane, then print its IPsec public key. POSIX sh,
/// `set -eu`, safe to run any number of times (a re-run prints the same key); every command is found through PATH
/// (`command -v`), no distribution path appears, so it behaves the same on AL2023 (libreswan 4.12, NSS database in
/// /etc/ipsec.d) and Debian/Ubuntu (/var/lib/ipsec/nss). Output contract: the last stdout line is `rsasigkey=0s...`
/// (`parse_rsasigkey`); progress and errors go to stderr. Exit codes: 3 packages missing and not installable,
/// 4 a kernel module cannot be loaded, 5 no host key after `ipsec newhostkey`.
///
/// 1. Wait for first boot (cloud-init may still be installing packages), unless this boot's cloud-init is done
///    already: it writes /run/cloud-init/result.json when its final stage ends (cloud-init's doc/status.txt, pointed
///    to by its maintainers in https://github.com/canonical/cloud-init/issues/2416), and /run is empty at each boot.
///    `cloud-init status --wait` starts Python, which costs seconds on a small or emulated CPU.
/// 6. Say which libreswan runs (`ipsec --version`, one line `libreswan-version: ...`): the renderer chooses by it.
/// 2. If `ipsec` or `iptables-restore` is missing (cloud-init's package install fails when the instance had no
///    route to the internet yet, before its Elastic IP was associated), install them with the distribution's package
///    manager: AL2023 `dnf install libreswan iptables-nft` (the packages cloud-init/tunnel-al2023.yaml asks for;
///    libreswan is in AL2023 since AL2023.3), Debian/Ubuntu `apt-get update` then `apt-get install libreswan
///    iptables`, noninteractive, each bounded by `timeout`; with them python3-boto3 and ethtool, which the metrics
///    agent needs (a first boot that could not install the first two could not install these either; the agent
///    itself is not checked here: importing boto3 costs seconds on a small CPU, and it logs its absence). dnf's
///    `strict=0` (dnf.conf(5): unavailable packages are skipped instead of failing the whole operation) keeps a
///    missing extra from failing the install of libreswan, which `have ipsec` below checks either way. The script
///    prints nothing on stdout until its end, and the SSH session gives up on a command silent for 900 s
///    (ssh::IO_TIMEOUT): the waits add up to at most 240 (cloud-init) + 120 (update) + 450 (install) = 810 s,
///    leaving room for the key.
/// 3. Load the kernel modules the data plane needs now, unless already loaded (a kernel upgraded since boot has no
///    modules directory for the running kernel, yet what is loaded works; they are also in modules-load.d for boot):
///    ip_gre, dummy, xt_policy, xt_NETMAP, and nft_compat when `iptables --version` says nf_tables (iptables-nft
///    runs the xt matches/targets through nft_compat).
/// 4. `ipsec checknss`: "checks or initialises the NSS database ... If database exists returns successfully"
///    (ipsec-checknss(8), libreswan 4.14 and 5.2: https://manpages.ubuntu.com/manpages/noble/man8/ipsec_checknss.8.html,
///    https://manpages.ubuntu.com/manpages/questing/man8/ipsec-checknss.8.html), unlike `ipsec initnss`, which "if
///    already initialised ... will return an error" (ipsec-initnss(8); exit 42, "NSS database already initialised -
///    aborted"). Testing a Debian path for cert9.db instead made every second run fail on AL2023.
/// 5. One RSA host key, made once (`ipsec newhostkey`), found again by its CKAID (`ipsec showhostkey --list`).
pub const PREPARE: &str = r#"set -eu
have() { command -v "$1" >/dev/null 2>&1; }
# `quiet WHY CMD...`: run CMD with its output kept aside; on failure print WHY first (the caller shows the start of
# stderr), then what failed and its last lines.
quiet() {
  why=$1; shift; log=$(mktemp)
  if "$@" >"$log" 2>&1; then rm -f "$log"; return 0; else rc=$?; fi
  echo "$why" >&2; echo "\`$*\` failed (exit $rc); last lines:" >&2; tail -n 5 "$log" >&2; rm -f "$log"; return "$rc"
}
if have cloud-init && [ ! -e /run/cloud-init/result.json ]; then timeout 240 cloud-init status --wait >/dev/null 2>&1 || true; fi
if ! have ipsec || ! have iptables-restore; then
  if have dnf; then
    echo "libreswan or iptables missing (first boot could not install them?): installing with dnf" >&2
    quiet "could not install libreswan iptables-nft with dnf: the host needs a route to its package repositories (Elastic IP or NAT)" \
      timeout 450 dnf -y --setopt=strict=0 install libreswan iptables-nft python3-boto3 ethtool || exit 3
  elif have apt-get; then
    echo "libreswan or iptables missing (first boot could not install them?): installing with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive; export DEBIAN_FRONTEND
    why="could not install libreswan iptables with apt-get: the host needs a route to its package repositories (Elastic IP or NAT)"
    quiet "$why" timeout 120 apt-get -q update || exit 3
    quiet "$why" timeout 450 apt-get -q -y -o DPkg::Lock::Timeout=120 install libreswan iptables python3-boto3 ethtool || exit 3
  fi
fi
have ipsec || { echo "libreswan is not installed (ipsec not found); first boot may have failed: check /var/log/cloud-init-output.log" >&2; exit 3; }
have iptables-restore || { echo "iptables-restore not found; install iptables (iptables-nft on AL2023)" >&2; exit 3; }
mods="ip_gre dummy xt_policy xt_NETMAP"
case $(iptables --version 2>/dev/null || true) in *nf_tables*) mods="$mods nft_compat" ;; esac
have modprobe || { echo "modprobe not found (install kmod): cannot load the kernel modules $mods" >&2; exit 4; }
for m in $mods; do
  [ -d "/sys/module/$m" ] && continue
  quiet "kernel module $m cannot be loaded: install the running kernel's modules package (linux-modules-extra-\$(uname -r) on Ubuntu), or reboot if the kernel was upgraded since boot, then run vpclink configure again" \
    modprobe "$m" || exit 4
done
ipsec checknss >/dev/null
ckaid() { ipsec showhostkey --list 2>/dev/null | sed -n 's/.*ckaid:\{0,1\} \([0-9a-f][0-9a-f]*\).*/\1/p' | head -n 1; }
id=$(ckaid)
if [ -z "$id" ]; then
  quiet "ipsec newhostkey failed: no RSA host key made" ipsec newhostkey || exit 5
  id=$(ckaid)
fi
[ -n "$id" ] || { echo "no RSA host key in \`ipsec showhostkey --list\` after \`ipsec newhostkey\`" >&2; exit 5; }
echo "libreswan-version: $(ipsec --version 2>/dev/null | head -n 1)"
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
        // `enable` reloads the daemon again by itself unless told not to ("--no-reload: When used with enable and
        // disable, do not implicitly reload daemon configuration after executing the changes", systemctl(1)): one
        // reload is enough, and each costs seconds on a small CPU (2.2 s measured on a lab guest).
        format!(
            "systemctl enable --no-reload {unit} ipsec.service {}",
            super::metrics::UNIT
        ),
        format!("systemctl restart {unit}"),
        // A restart re-reads every conn and brings ours up (auto=start); on a host where pluto was not running
        // this is a plain start.
        "systemctl restart ipsec.service".to_string(),
        // Last: the agent re-reads its program and configuration, and finds the link's devices and pluto up.
        format!("systemctl restart {}", super::metrics::UNIT),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::modules::{DATA_PLANE, NFT_COMPAT};
    use super::PREPARE;

    /// The modules loaded on configure are the ones listed for boot.
    #[test]
    fn prepare_loads_the_boot_modules() {
        let want = format!("mods=\"{}\"", DATA_PLANE.join(" "));
        assert!(PREPARE.contains(&want), "PREPARE lacks {want}");
        assert!(PREPARE.contains(&format!("*nf_tables*) mods=\"$mods {NFT_COMPAT}\"")));
    }

    /// No distribution path decides what runs: AL2023 keeps the NSS database in /etc/ipsec.d, Debian in
    /// /var/lib/ipsec/nss; `ipsec checknss` knows which, and `initnss` on an existing database exits 42.
    #[test]
    fn prepare_uses_checknss_and_no_nss_path() {
        assert!(PREPARE.contains("ipsec checknss"));
        assert!(!PREPARE.contains("initnss"));
        assert!(!PREPARE.contains("/var/lib/ipsec") && !PREPARE.contains("/etc/ipsec.d"));
    }
}
