set -eu
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
