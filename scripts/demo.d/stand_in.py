"""Point a link's host records at the lab's machines, and say exactly what was replaced.

LocalStack launches instances that never boot and hands out Elastic IPs in 127.0.0.0/8, so no packet can reach
them. The lab's guests and VPC hosts stand in: same VPC addresses, real sshd, real kernels. Only the fields that
say where a host is and how to reach it change; instance, ENI and Elastic IP ids stay, so `vpclink down` still
removes what LocalStack holds.
"""
import json
import sys

link_path, lab_path = sys.argv[1], sys.argv[2]
# --keep-test-address: the test hosts keep the private address LocalStack gave them (the lab's VPC host takes it on
# as its own source address, scripts/demo), so what Route 53 names them by is a host that answers.
keep_test_address = "--keep-test-address" in sys.argv[3:]
link = json.load(open(link_path))
lab = json.load(open(lab_path))

FIELDS = ["private_ip", "public_ip", "os", "ssh", "host_key"]
rows = []
for side in ["east", "west"]:
    for role in ["tunnel", "test"]:
        host, stand_in = link[side].get(role), lab[side].get(role)
        if host is None:
            continue
        for f in FIELDS:
            if keep_test_address and role == "test" and f == "private_ip":
                continue
            old, new = host.get(f), stand_in.get(f)
            if old != new:
                show = lambda v: (v if not isinstance(v, dict) else f"{v['user']}@{v['host']}:{v['port']}") if v is not None else "-"
                rows.append((f"{side} {role}", f, str(show(old))[:40], str(show(new))[:40]))
            if new is None:
                host.pop(f, None)
            else:
                host[f] = new

w = [max(len(r[i]) for r in rows + [("host", "field", "LocalStack", "lab")]) for i in range(4)]
print("  " + "  ".join(h.ljust(w[i]) for i, h in enumerate(["host", "field", "LocalStack says", "lab stand-in"])))
for r in rows:
    print("  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(r)))

tmp = link_path + ".tmp"
with open(tmp, "w") as f:
    json.dump(link, f, indent=2)
import os
os.replace(tmp, link_path)
