# Sourced by scripts/lab: `scripts/lab manual [configure|check]` sets up the data plane BY HAND, without
# `vpclink configure`, from the files `vpclink render` writes (placeholders filled in here with plain ssh and
# sed), then checks it with plain ping/python/iptables. It is the reference the rendered rules were proven
# with before configure/verify existed, and a way to tell a vpclink bug from a rule bug.
# Everything goes through the lab's own SSH helpers (gssh) and namespaces; the lab must be up.

manual_configure() {
    local out=$LAB/manual s k t=$SECONDS
    rm -rf "$out" && mkdir -p "$out"
    "$VPCLINK_BIN" render --name lab --out "$out/render" >/dev/null 2>"$out/render.log" ||
        die "vpclink render failed: $(cat "$out/render.log")"
    # 1. RSA host keys (prepare.sh: initnss, newhostkey if none, print the public key) on both sides at once.
    for s in $SIDES; do
        gssh "$s" sudo sh -s <"$out/render/$s-tunnel/prepare.sh" >"$out/$s.rsakey" 2>"$out/$s.prepare.log" &
    done
    wait
    declare -A rsakey uplink
    for s in $SIDES; do
        rsakey[$s]=$(sed -n 's/.*rsasigkey=\(0s[A-Za-z0-9+\/=]*\).*/\1/p' "$out/$s.rsakey" | head -n 1)
        [ -n "${rsakey[$s]}" ] || die "$s: no RSA key from prepare.sh: $(cat "$out/$s.prepare.log")"
        uplink[$s]=$(gssh "$s" ip route get "${EIP[${PEER[$s]}]}" | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
    done
    log "RSA keys ready on both sides in $((SECONDS - t)) s (uplinks: east ${uplink[east]}, west ${uplink[west]})"
    # 2. Fill in the placeholders, push the files, run apply.sh.
    for s in $SIDES; do
        local d=$out/render/$s-tunnel
        sed -i -e "s|leftrsasigkey=0s<[^>]*>|leftrsasigkey=${rsakey[$s]}|" \
            -e "s|rightrsasigkey=0s<[^>]*>|rightrsasigkey=${rsakey[${PEER[$s]}]}|" "$d/etc/ipsec.d/vpclink-lab.conf"
        grep -rl ens5 "$d/etc" | xargs -r sed -i "s/ens5/${uplink[$s]}/g"
        tar -C "$d" --owner=root --group=root -cf - etc | gssh "$s" sudo tar --no-same-owner -C / -xf -
        gssh "$s" sudo sh -s <"$d/apply.sh"
    done
    log "files pushed and applied in $((SECONDS - t)) s; waiting for the SA"
    manual_wait_sa
}

manual_wait_sa() { # bounded: 90 s
    local t=$SECONDS s ok
    while :; do
        ok=0
        for s in $SIDES; do
            gssh "$s" sudo ipsec trafficstatus 2>/dev/null | grep -q 'vpclink-lab' && ok=$((ok + 1))
        done
        [ $ok = 2 ] && { log "SA up on both sides after $((SECONDS - t)) s"; return 0; }
        [ $((SECONDS - t)) -lt 90 ] || { log "SA not up after 90 s"; return 1; }
        sleep 2
    done
}

# One check: name, then a command; prints PASS/FAIL with the command's last output line.
mcheck() {
    local name=$1 o; shift
    if o=$("$@" 2>&1); then echo "PASS $name: $(echo "$o" | tail -n 1 | cut -c1-110)"
    else echo "FAIL $name: $(echo "$o" | tail -n 2 | tr '\n' ' ' | cut -c1-200)"; fi
}
not() { ! "$@"; }

manual_check() {
    local s p
    for s in $SIDES; do
        p=${PEER[$s]}
        echo "--- $s"
        mcheck "$s IKE SA" gssh "$s" "sudo ipsec status | grep -E 'vpclink-lab.*(ESTABLISHED_IKE_SA|established IKE SA)|#[0-9]+: \"vpclink-lab\".*ESTABLISHED_IKE'"
        mcheck "$s ESP SA" gssh "$s" "sudo ipsec trafficstatus | grep vpclink-lab"
        mcheck "$s xfrm state (NAT-T)" gssh "$s" "sudo ip xfrm state | grep -m1 'encap type espinudp'"
        mcheck "$s GRE peer ping" gssh "$s" "ping -c 2 -W 3 169.254.248.$([ "$s" = east ] && echo 2 || echo 1) | grep ' 0% packet loss'"
        mcheck "$s host -> $p host (mapped ${MAPPED[$p]%.0.0/16}.1.20)" ns "vl-$s-host" ping -c 2 -W 3 "${MAPPED[$p]%.0.0/16}.1.20"
        mcheck "$s tunnel -> $p host" gssh "$s" "ping -c 2 -W 3 ${MAPPED[$p]%.0.0/16}.1.20 | grep ' 0% packet loss'"
        mcheck "$s host -> $p tunnel (mapped .0.10)" ns "vl-$s-host" ping -c 2 -W 3 "${MAPPED[$p]%.0.0/16}.0.10"
        # Largest DF ping the 1408 tunnel MTU allows: 1408 - 28 = 1380 bytes of payload; 1381 must be refused.
        mcheck "$s host DF 1380 passes" ns "vl-$s-host" ping -c 2 -W 3 -M do -s 1380 "${MAPPED[$p]%.0.0/16}.1.20"
        mcheck "$s host DF 1381 refused" not ns "vl-$s-host" ping -c 2 -W 3 -M do -s 1381 "${MAPPED[$p]%.0.0/16}.1.20"
        mcheck "$s tunnel DF 1380 passes" gssh "$s" "ping -c 2 -W 3 -M do -s 1380 ${MAPPED[$p]%.0.0/16}.1.20 | grep ' 0% packet loss'"
        mcheck "$s tunnel DF 1381 refused" not gssh "$s" "ping -c 2 -W 3 -M do -s 1381 ${MAPPED[$p]%.0.0/16}.1.20"
    done
    # TCP both ways: a python listener on one test host, a client on the other, through the mapping.
    for s in $SIDES; do
        p=${PEER[$s]}
        ns "vl-$p-host" timeout 20 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.0.1.20", 7777)); s.listen(1)
c, a = s.accept(); c.sendall(("hello " + a[0] + " " + "x" * 8000).encode()); c.close()' &
        sleep 1
        mcheck "TCP $s host -> $p host" ns "vl-$s-host" timeout 10 python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 7777), timeout=5); d = b""
while True:
    b = c.recv(65536)
    if not b: break
    d += b
assert len(d) > 8000, len(d); print(d[:20].decode(), len(d), "bytes")' "${MAPPED[$p]%.0.0/16}.1.20"
        wait
    done
    for s in $SIDES; do
        echo "--- $s firewall counters (cleartext GRE)"
        gssh "$s" "sudo iptables -L INPUT -v -n -x | grep -i gre; sudo iptables -L OUTPUT -v -n -x | grep -i gre;
            sudo iptables -t raw -L PREROUTING -v -n -x | grep -i gre; sudo iptables -t mangle -L POSTROUTING -v -n -x | grep -i gre" || true
    done
}

manual_main() {
    case ${1:-all} in
        configure) manual_configure ;;
        check) manual_check ;;
        all) manual_configure; manual_check ;;
        *) die "scripts/lab manual [configure|check|all]" ;;
    esac
}
