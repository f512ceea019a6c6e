set -eu
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
