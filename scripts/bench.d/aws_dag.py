"""The AWS calls of one `vpclink up` or `vpclink down`, read from VPCLINK_CALL_LOG, and their critical path.

The call log says only which operation each call was and when it ran. Each side's calls follow the code's order
(src/commands.rs, src/provision/, src/teardown.rs), so a side's sequence is matched against a RECIPE: the steps the
code takes, in order, each with the AWS operation it calls. That names every call (its step) and its phase. The
dependency DAG is then defined over steps (DEPS below): the true data dependencies between AWS calls, plus three
documented policy gates. Each node weighs what the call took in this run; the critical path is the longest path.

Kinds of steps: "chain" steps repeat the same call one after another (a retry, a poll, the next page): each call
depends on the one before. "fan" steps are independent calls of one kind (one per rule, per route, per instance):
none depends on another. A reference to a step means all of its calls (their latest end).

Gates (zero weight): PLAN: the planner needs both VPCs (CIDRs and routes) before it can pick mapped ranges. PREFLIGHT:
nothing is created before both sides' preflight succeeded (policy: a failing preflight leaves nothing behind).
INVENTORY (down): both sides' inventories are collected and shown before anything is deleted (policy). DELETED
(down): the leak check reads after every delete of both sides.

Written for a fresh link (as scripts/bench runs it): every resource is created, every rule and route added.
"""

import json
import re

# Up, per side: (step, phase, operation(s), quantifier, kind). Order is the code's order.
UP = [
    ("sts", "connect", "GetCallerIdentity", "", "chain"),
    ("vpcs", "discover", "DescribeVpcs", "+", "chain"),
    ("vpc_details", "discover", "DescribeSubnets|DescribeRouteTables", "+", "by_op"),
    ("ami_param", "preflight", "GetParameter", "", "chain"),
    ("ami", "preflight", "DescribeImages", "", "chain"),
    ("probe_key", "preflight", "ImportKeyPair", "", "chain"),
    ("probe_sg", "preflight", "CreateSecurityGroup", "", "chain"),
    ("probe_eip", "preflight", "AllocateAddress", "", "chain"),
    ("default_sg", "preflight", "DescribeSecurityGroups", "?", "chain"),
    ("probe_run", "preflight", "RunInstances", "?", "chain"),
    ("eip_ours", "preflight", "DescribeAddresses", "", "chain"),
    ("eip_quota", "preflight", "DescribeAccountAttributes", "?", "chain"),
    ("eip_used", "preflight", "DescribeAddresses", "?", "chain"),
    ("kp_find", "provision-1", "DescribeKeyPairs", "", "chain"),
    ("kp_delete", "provision-1", "DeleteKeyPair", "?", "chain"),
    ("kp_import", "provision-1", "ImportKeyPair", "?", "chain"),
    ("sg_tunnel_find", "provision-1", "DescribeSecurityGroups", "", "chain"),
    ("sg_tunnel_create", "provision-1", "CreateSecurityGroup", "?", "chain"),
    ("sg_test_find", "provision-1", "DescribeSecurityGroups", "?", "chain"),
    ("sg_test_create", "provision-1", "CreateSecurityGroup", "?", "chain"),
    ("eip_find", "provision-1", "DescribeAddresses", "", "chain"),
    ("eip_alloc", "provision-1", "AllocateAddress", "?", "chain"),
    ("rules_tunnel_read", "provision-2", "DescribeSecurityGroupRules", "+", "chain"),
    ("rules_tunnel_add", "provision-2", "AuthorizeSecurityGroupIngress", "*", "fan"),
    ("rules_test_read", "provision-2", "DescribeSecurityGroupRules", "*", "chain"),
    ("rules_test_add", "provision-2", "AuthorizeSecurityGroupIngress", "*", "fan"),
    ("tunnel_find", "provision-2", "DescribeInstances", "", "chain"),
    ("tunnel_run", "provision-2", "RunInstances", "*", "chain"),
    ("tunnel_wait", "provision-2", "DescribeInstances", "+", "chain"),
    ("eip_check", "provision-2", "DescribeAddresses", "", "chain"),
    ("eip_assoc", "provision-2", "AssociateAddress", "*", "chain"),
    ("eni_read", "provision-2", "DescribeNetworkInterfaces", "", "chain"),
    ("srcdst_off", "provision-2", "ModifyNetworkInterfaceAttribute", "*", "chain"),
    ("test_find", "provision-2", "DescribeInstances", "?", "chain"),
    ("test_run", "provision-2", "RunInstances", "*", "chain"),
    ("test_wait", "provision-2", "DescribeInstances", "*", "chain"),
    ("routes", "provision-2", "CreateRoute|ReplaceRoute", "*", "fan"),
]
# by_op steps name each call after its operation.
BY_OP = {"DescribeSubnets": "subnets", "DescribeRouteTables": "tables"}

# Tunnel rules in src/provision/security_group.rs::tunnel_rules order: SSH from the operator, then IKE 500, IKE 4500,
# ESP, ICMP from the peer's Elastic IP, then one per own CIDR. Only those four need the peer's address.
TUNNEL_RULES_FROM_PEER = {1, 2, 3, 4}

# Dependencies (same side unless "peer:"). GATES are zero-weight joins of both sides.
UP_DEPS = {
    "sts": [],
    "vpcs": ["sts"],
    "subnets": ["vpcs"],
    "tables": ["vpcs"],
    "ami_param": ["sts"],
    "ami": ["ami_param"],
    "probe_key": ["sts"],
    "probe_sg": ["vpcs"],
    "probe_eip": ["sts"],
    "default_sg": ["vpcs"],
    # the public subnet comes from the subnets and their route tables
    "probe_run": ["ami", "default_sg", "subnets", "tables"],
    "eip_ours": ["sts"],
    "eip_quota": ["eip_ours"],
    "eip_used": ["eip_ours"],
    # reads that look for what an earlier run made need no gate; every change waits for PREFLIGHT
    "kp_find": ["sts"],
    "kp_delete": ["kp_find", "PREFLIGHT"],
    "kp_import": ["kp_find", "kp_delete", "PREFLIGHT"],
    "sg_tunnel_find": ["vpcs"],
    "sg_tunnel_create": ["sg_tunnel_find", "PREFLIGHT"],
    "sg_test_find": ["vpcs"],
    "sg_test_create": ["sg_test_find", "PREFLIGHT"],
    "eip_find": ["sts"],
    "eip_alloc": ["eip_find", "PREFLIGHT"],
    "rules_tunnel_read": ["sg_tunnel_find", "sg_tunnel_create"],
    # + peer:eip_find/eip_alloc for the rules in TUNNEL_RULES_FROM_PEER (see deps_of)
    "rules_tunnel_add": ["rules_tunnel_read", "PLAN", "PREFLIGHT"],
    "rules_test_read": ["sg_test_find", "sg_test_create"],
    # the first test rule names the tunnel group; the others are the peer's mapped ranges (PLAN)
    "rules_test_add": ["rules_test_read", "sg_tunnel_find", "sg_tunnel_create", "PLAN", "PREFLIGHT"],
    "tunnel_find": ["vpcs"],
    "tunnel_run": ["tunnel_find", "sg_tunnel_find", "sg_tunnel_create", "kp_find", "kp_import", "ami",
                   "subnets", "tables", "PREFLIGHT"],
    "tunnel_wait": ["tunnel_run"],
    "eip_check": ["eip_find", "eip_alloc"],
    # the interface is used once the instance runs (as the code does; the ENI id is already in RunInstances' answer)
    "eip_assoc": ["eip_check", "eip_find", "eip_alloc", "tunnel_wait"],
    "eni_read": ["tunnel_wait"],
    "srcdst_off": ["eni_read"],
    "test_find": ["vpcs"],
    "test_run": ["test_find", "sg_test_find", "sg_test_create", "kp_find", "kp_import", "ami", "subnets",
                 "tables", "PREFLIGHT"],
    "test_wait": ["test_run"],
    # one per (route table, peer mapped range); independent of each other
    "routes": ["tunnel_wait", "PLAN", "PREFLIGHT"],
}
UP_GATES = {
    "PLAN": (["vpcs", "subnets", "tables"], []),
    "PREFLIGHT": (["ami_param", "ami", "probe_key", "probe_sg", "probe_eip", "default_sg", "probe_run",
                   "eip_ours", "eip_quota", "eip_used"], ["PLAN"]),
}

DOWN = [
    ("sts", "connect", "GetCallerIdentity", "", "chain"),
    ("c_inst_find", "collect", "DescribeInstances", "", "chain"),
    ("c_inst_rec", "collect", "DescribeInstances", "*", "fan"),
    ("c_tables", "collect", "DescribeRouteTables", "*", "fan"),
    ("c_eip_find", "collect", "DescribeAddresses", "", "chain"),
    ("c_eip_rec", "collect", "DescribeAddresses", "?", "chain"),
    ("c_sg_find", "collect", "DescribeSecurityGroups", "", "chain"),
    ("c_sg_rec", "collect", "DescribeSecurityGroups", "*", "fan"),
    ("c_kp_find", "collect", "DescribeKeyPairs", "", "chain"),
    ("c_kp_rec", "collect", "DescribeKeyPairs", "?", "chain"),
    ("d_routes", "delete", "DeleteRoute", "*", "fan"),
    ("d_disassoc", "delete", "DisassociateAddress", "?", "chain"),
    ("d_release", "delete", "ReleaseAddress", "*", "chain"),
    ("d_term", "delete", "TerminateInstances", "*", "fan"),
    ("d_wait", "delete", "DescribeInstances", "*", "chain"),
    # test host's group first (it names the tunnel group), then the tunnel group: a chain
    ("d_sg", "delete", "DeleteSecurityGroup", "*", "chain"),
    ("d_kp", "delete", "DeleteKeyPair", "*", "fan"),
    ("l_inst", "leak-check", "DescribeInstances", "", "chain"),
    ("l_tables", "leak-check", "DescribeRouteTables", "*", "fan"),
    ("l_eip", "leak-check", "DescribeAddresses", "", "chain"),
    ("l_sg", "leak-check", "DescribeSecurityGroups", "", "chain"),
    ("l_kp", "leak-check", "DescribeKeyPairs", "", "chain"),
]
DOWN_DEPS = {
    "sts": [],
    "c_inst_find": ["sts"],
    "c_inst_rec": ["sts"],
    # routes are ours when they point at our instances' interfaces
    "c_tables": ["c_inst_find", "c_inst_rec"],
    "c_eip_find": ["sts"],
    "c_eip_rec": ["sts"],
    "c_sg_find": ["sts"],
    "c_sg_rec": ["sts"],
    "c_kp_find": ["sts"],
    "c_kp_rec": ["sts"],
    "d_routes": ["INVENTORY"],
    "d_disassoc": ["INVENTORY"],
    "d_release": ["d_disassoc", "INVENTORY"],
    "d_term": ["INVENTORY"],
    "d_wait": ["d_term"],
    # a group is in use until the instances using it are terminated
    "d_sg": ["d_wait", "INVENTORY"],
    "d_kp": ["INVENTORY"],
    "l_inst": ["DELETED"],
    "l_tables": ["l_inst"],
    "l_eip": ["DELETED"],
    "l_sg": ["DELETED"],
    "l_kp": ["DELETED"],
}
DOWN_GATES = {
    "INVENTORY": ([s[0] for s in DOWN if s[1] in ("connect", "collect")], []),
    "DELETED": ([s[0] for s in DOWN if s[1] == "delete"], ["INVENTORY"]),
}

COMMANDS = {
    "up": (UP, UP_DEPS, UP_GATES),
    "down": (DOWN, DOWN_DEPS, DOWN_GATES),
}


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def label(recipe, ops):
    """Name each call of one side: a list of (step, phase) per op, or None when the sequence does not fit."""
    parts = []
    for i, (_step, _phase, op, quant, _kind) in enumerate(recipe):
        alts = "|".join(f"{o};" for o in op.split("|"))
        parts.append(f"(?P<g{i}>(?:{alts}){quant})")
    text = "".join(f"{o};" for o in ops)
    m = re.fullmatch("".join(parts), text)
    if not m:
        return None
    # char offset -> call index
    starts, pos = {}, 0
    for k, o in enumerate(ops):
        starts[pos] = k
        pos += len(o) + 1
    out = [None] * len(ops)
    for i, (step, phase, _op, _q, kind) in enumerate(recipe):
        a, b = m.span(f"g{i}")
        k = starts.get(a)
        while a < b:
            k = starts[a]
            name = BY_OP.get(ops[k], step) if kind == "by_op" else step
            out[k] = (name, phase)
            a += len(ops[k]) + 1
    return out


def kind_of(recipe, step):
    for s, _p, _o, _q, kind in recipe:
        if s == step:
            return kind
    return "chain"  # by_op names


def analyse(calls, command):
    """Label calls, build the DAG, return a dict with the critical path and per-phase figures (times in ms)."""
    recipe, deps, gates = COMMANDS[command]
    calls = sorted(calls, key=lambda c: (c["start_ms"], c["end_ms"]))
    nodes = []  # dicts: side, step, phase, op, start, end, dur, idx (within side+step)
    unmatched = {}
    for side in ("east", "west"):
        mine = [c for c in calls if c["side"] == side]
        names = label(recipe, [c["operation"] for c in mine])
        if names is None:
            unmatched[side] = [c["operation"] for c in mine]
            continue
        seen = {}
        for c, (step, phase) in zip(mine, names):
            idx = seen.get(step, 0)
            seen[step] = idx + 1
            nodes.append({"side": side, "step": step, "phase": phase, "op": c["operation"],
                          "start": c["start_ms"], "end": c["end_ms"], "dur": c["end_ms"] - c["start_ms"],
                          "idx": idx, "ok": c["ok"]})
    if unmatched:
        return {"error": "call sequence does not fit the recipe", "unmatched": unmatched}

    by = {}
    for n in nodes:
        by.setdefault((n["side"], n["step"]), []).append(n)
    peer = {"east": "west", "west": "east"}

    def refs(n):
        """The nodes and gates n depends on."""
        out = []
        for d in deps[n["step"]]:
            if d in gates:
                out.append(("gate", d))
            else:
                out.extend(by.get((n["side"], d), []))
        if command == "up" and n["step"] == "rules_tunnel_add" and n["idx"] in TUNNEL_RULES_FROM_PEER:
            for d in ("eip_find", "eip_alloc"):
                out.extend(by.get((peer[n["side"]], d), []))
        if kind_of(recipe, n["step"]) != "fan" and n["idx"] > 0:
            out.append(by[(n["side"], n["step"])][n["idx"] - 1])
        return out

    memo, gate_memo = {}, {}

    def finish(x, allowed=None):
        """(finish time, predecessor) of node or gate x on the longest path; allowed limits the nodes counted."""
        if isinstance(x, tuple):
            g = x[1]
            key = (g, allowed)
            if key not in gate_memo:
                members = [n for n in nodes if n["step"] in gates[g][0]]
                best = (0.0, None)
                for m in members + [("gate", h) for h in gates[g][1]]:
                    f = finish(m, allowed)[0]
                    if f > best[0]:
                        best = (f, m)
                gate_memo[key] = best
            return gate_memo[key]
        if allowed is not None and x["phase"] != allowed:
            return (0.0, None)
        key = (id(x), allowed)
        if key not in memo:
            best = (0.0, None)
            for r in refs(x):
                f = finish(r, allowed)[0]
                if f > best[0]:
                    best = (f, r)
            memo[key] = (best[0] + x["dur"], best[1])
        return memo[key]

    def path_from(x, allowed=None):
        chain = []
        while x is not None:
            chain.append(x)
            x = finish(x, allowed)[1]
        return list(reversed(chain))

    end = max(nodes, key=lambda n: finish(n)[0])
    critical = finish(end)[0]
    path = path_from(end)

    phases = []
    for ph in dict.fromkeys(s[1] for s in recipe):
        members = [n for n in nodes if n["phase"] == ph]
        if not members:
            continue
        last = max(members, key=lambda n: finish(n, ph)[0])
        phases.append({
            "phase": ph,
            "calls": len(members),
            "window_ms": max(n["end"] for n in members) - min(n["start"] for n in members),
            "critical_ms": finish(last, ph)[0],
        })
    return {
        "calls": {s: sum(1 for n in nodes if n["side"] == s) for s in ("east", "west")},
        "busy_ms": {s: sum(n["dur"] for n in nodes if n["side"] == s) for s in ("east", "west")},
        "first_start": min(n["start"] for n in nodes),
        "last_end": max(n["end"] for n in nodes),
        "critical_ms": critical,
        "path": [f"[{n[1]}]" if isinstance(n, tuple) else f"{n['side']} {n['op']} {n['dur']:.0f}" for n in path],
        "phases": phases,
    }


# ---------------------------------------------------------------------------------------------------------------
# Self-test: python3 aws_dag.py --self-test


def _synthetic(seq_by_side, dur=10.0, gap=1.0):
    """A call log where each side's calls run back to back in the given order (both sides in lockstep)."""
    out = []
    for side, seq in seq_by_side.items():
        t = 0.0
        for op in seq:
            out.append({"side": side, "service": "EC2", "operation": op, "start_ms": t, "end_ms": t + dur,
                        "ok": True})
            t += dur + gap
    return out


UP_SEQ = (["GetCallerIdentity", "DescribeVpcs", "DescribeSubnets", "DescribeRouteTables",
           "GetParameter", "DescribeImages", "ImportKeyPair", "CreateSecurityGroup", "AllocateAddress",
           "DescribeSecurityGroups", "RunInstances", "DescribeAddresses", "DescribeAccountAttributes",
           "DescribeAddresses",
           "DescribeKeyPairs", "ImportKeyPair", "DescribeSecurityGroups", "CreateSecurityGroup",
           "DescribeSecurityGroups", "CreateSecurityGroup", "DescribeAddresses", "AllocateAddress",
           "DescribeSecurityGroupRules"] + ["AuthorizeSecurityGroupIngress"] * 7
          + ["DescribeSecurityGroupRules"] + ["AuthorizeSecurityGroupIngress"] * 2
          + ["DescribeInstances", "RunInstances", "DescribeInstances", "DescribeAddresses", "AssociateAddress",
             "DescribeNetworkInterfaces", "ModifyNetworkInterfaceAttribute", "DescribeInstances", "RunInstances",
             "DescribeInstances", "DescribeInstances"] + ["CreateRoute"] * 5)

DOWN_SEQ = (["GetCallerIdentity", "DescribeInstances", "DescribeInstances", "DescribeInstances",
             "DescribeRouteTables", "DescribeAddresses", "DescribeAddresses", "DescribeSecurityGroups",
             "DescribeSecurityGroups", "DescribeSecurityGroups", "DescribeKeyPairs", "DescribeKeyPairs"]
            + ["DeleteRoute"] * 5
            + ["DisassociateAddress", "ReleaseAddress", "TerminateInstances", "TerminateInstances",
               "DescribeInstances", "DescribeInstances", "DeleteSecurityGroup", "DeleteSecurityGroup",
               "DeleteKeyPair",
               "DescribeInstances", "DescribeAddresses", "DescribeSecurityGroups", "DescribeKeyPairs"])


def self_test():
    # Labelling follows the code's order.
    names = label(UP, UP_SEQ)
    assert names is not None
    steps = [n[0] for n in names]
    assert steps[:4] == ["sts", "vpcs", "subnets", "tables"], steps[:4]
    assert steps.count("rules_tunnel_add") == 7 and steps.count("rules_test_add") == 2
    assert steps.count("tunnel_wait") == 1 and steps.count("test_wait") == 2 and steps.count("routes") == 5
    assert label(UP, ["GetCallerIdentity", "CreateRoute"]) is None

    # Every call 10 ms: the longest dependent chain is
    # sts, vpcs, tables|default_sg, probe_run (PREFLIGHT at 40), sg_tunnel_create, tunnel_run, tunnel_wait,
    # eni_read, srcdst_off = 9 calls; the test host's second poll ends at 40+10+10+10+10 = 80.
    r = analyse(_synthetic({"east": UP_SEQ, "west": UP_SEQ}), "up")
    assert "error" not in r, r
    assert abs(r["critical_ms"] - 90.0) < 1e-6, r
    assert r["calls"] == {"east": len(UP_SEQ), "west": len(UP_SEQ)}
    assert r["path"][-1].split()[1] == "ModifyNetworkInterfaceAttribute" and "[PREFLIGHT]" in r["path"], r["path"]
    ph = {p["phase"]: p for p in r["phases"]}
    assert ph["connect"]["critical_ms"] == 10 and ph["discover"]["critical_ms"] == 20
    assert ph["preflight"]["critical_ms"] == 30  # ami_param -> ami -> probe_run
    assert ph["provision-1"]["critical_ms"] == 20  # find -> create, four independent pairs
    # rules: read -> add (fan) = 20; tunnel host: find, run, wait, eni_read, srcdst_off = 50
    assert ph["provision-2"]["critical_ms"] == 50, ph["provision-2"]

    # A peer's slow AllocateAddress delays the tunnel rules that name it (rule indexes 1..4), not the others.
    calls = _synthetic({"east": UP_SEQ, "west": UP_SEQ})
    west_alloc = [c for c in calls if c["side"] == "west" and c["operation"] == "AllocateAddress"][-1]
    west_alloc["end_ms"] += 500
    r2 = analyse(calls, "up")
    # west eip_alloc ends at PREFLIGHT 40 + 510 = 550 -> east's rules 1..4 end at 560 (west's rules, from east's
    # address, don't move); west's association waits for its own address: 550 + 10 (check) + 10 = 570.
    assert abs(r2["critical_ms"] - 570.0) < 1e-6, r2["critical_ms"]

    # Down: INVENTORY = sts + inst_find + tables = 30; terminate 40, wait (2 polls) 60, two group deletes 80,
    # DELETED 80, leak-check reads 90.
    names = label(DOWN, DOWN_SEQ)
    assert names is not None, "down sequence"
    r3 = analyse(_synthetic({"east": DOWN_SEQ, "west": DOWN_SEQ}), "down")
    assert abs(r3["critical_ms"] - 90.0) < 1e-6, r3
    print("aws_dag self-test: 3 passed, 0 failed")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--self-test"]:
        self_test()
    else:
        cmd, path = sys.argv[1], sys.argv[2]
        print(json.dumps(analyse(read_log(path), cmd), indent=2))
