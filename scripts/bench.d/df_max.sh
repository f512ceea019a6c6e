# The largest ICMP echo payload that crosses to HOST with DF set, by bisection (at most ~9 single pings, each
# waiting at most 2 s). POSIX sh, fed on stdin to run in a namespace or a guest: sh -s -- HOST LO HI
# Prints the payload (LO-1 when even LO does not pass).
host=$1 lo=$2 hi=$3
passes() { ping -n -q -M do -c 1 -W 2 -s "$1" "$host" >/dev/null 2>&1; }
# PMTU learned from an ICMP "fragmentation needed" makes the next oversize ping fail at once: fine, it fails.
passes "$lo" || { echo $((lo - 1)); exit 0; }
while [ "$lo" -lt "$hi" ]; do
    mid=$(( (lo + hi + 1) / 2 ))
    if passes "$mid"; then lo=$mid; else hi=$((mid - 1)); fi
done
echo "$lo"
