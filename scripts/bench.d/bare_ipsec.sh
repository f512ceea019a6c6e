# A bare IPsec tunnel beside the link on a lab tunnel guest, for the data-plane bench: the same libreswan, RSA keys,
# cipher (esp=aes_gcm256) and NAT-T as the link's connection, between the two Elastic IPs (on the guests' dummy
# interfaces), all protocols, and no GRE and no NETMAP. Its IDs (@bench-east, @bench-west) differ from the link's,
# so libreswan's uniqueids does not take it for a duplicate of the link's IKE SA and tear that down.
# POSIX sh, as root on the guest:  sh -s -- add|up|del SIDE      (add on both sides first, then up on east)
set -eu
op=$1 side=$2
conf=/etc/ipsec.d/vpclink-lab.conf f=/etc/ipsec.d/vpclink-bench-bare.conf
case $op in
    del) ipsec auto --delete bench-bare >/dev/null 2>&1 || true; rm -f "$f"; exit 0 ;;
    up) exec timeout 60 ipsec auto --up bench-bare ;;
esac
get() { sed -n "s/^[[:space:]]*$1=//p" "$conf" | head -n 1; }
peer=east
[ "$side" = east ] && peer=west
cat >"$f" <<CONF
conn bench-bare
	authby=rsasig
	ikev2=insist
	type=tunnel
	left=$(get left)
	leftid=@bench-$side
	leftsubnet=$(get leftsubnet)
	leftrsasigkey=$(get leftrsasigkey)
	right=$(get right)
	rightid=@bench-$peer
	rightsubnet=$(get rightsubnet)
	rightrsasigkey=$(get rightrsasigkey)
	esp=aes_gcm256
	encapsulation=yes
	auto=add
CONF
ipsec auto --add bench-bare >/dev/null
