# mode 755
#!/bin/sh
# vpclink link 'golden', east tunnel host: apply at boot and on configure; safe to run any number of times
# Written by vpclink; local edits are replaced on the next `vpclink configure`.
set -eu

# 1. Firewall first: GRE may only ever cross the network inside IPsec.
iptables-restore /etc/vpclink/golden/iptables.rules

# 2. Forwarding, no redirects, no reverse-path filter.
sysctl -q -p /etc/sysctl.d/90-vpclink-golden.conf

# 3. This host's Elastic IP on a dummy interface: GRE endpoint and IPsec traffic selector.
ip link show vpclink0 >/dev/null 2>&1 || ip link add vpclink0 type dummy
ip addr replace 198.51.100.10/32 dev vpclink0
ip link set vpclink0 up

# 4. GRE between the two Elastic IPs; the IPsec policy captures it before it reaches the wire.
if ip link show vpclink-gre >/dev/null 2>&1; then
  ip tunnel change vpclink-gre mode gre local 198.51.100.10 remote 203.0.113.10 ttl 64
else
  ip tunnel add vpclink-gre mode gre local 198.51.100.10 remote 203.0.113.10 ttl 64
fi
ip link set vpclink-gre mtu 1408 up
ip addr replace 169.254.248.1/30 dev vpclink-gre
sysctl -q -w net.ipv4.conf.vpclink-gre.rp_filter=0

# 5. The west VPC's mapped ranges go into the tunnel, sourced from the private address so that NETMAP maps this
#    host's own traffic too. Routes from an earlier plan are removed.
n=0; until ip -4 -o addr show | grep -q " inet 10.0.0.10/"; do
  n=$((n+1)); [ $n -le 60 ] || { echo "10.0.0.10 is not on any interface after 60 s" >&2; exit 1; }; sleep 1
done
want="10.2.0.0/16"
for r in $want; do ip route replace "$r" dev vpclink-gre src 10.0.0.10 proto static; done
for r in $(ip -4 route show dev vpclink-gre proto static | cut -d' ' -f1); do
  case " $want " in *" $r "*) ;; *) ip route del "$r" dev vpclink-gre proto static ;; esac
done
