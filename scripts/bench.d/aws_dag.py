"""The AWS calls of one `vpclink up` or `vpclink down`, read from VPCLINK_CALL_LOG, and their critical path.

Every logged call names the step of the code that made it (src/aws/call_log.rs `step`; a side's calls run
concurrently, so their order could not say it). The dependency DAG is defined over those steps (UP, DOWN below): the
true data dependencies between AWS calls, plus documented policy gates. Each node weighs what the call took in this
run; the critical path is the longest path. It is the ideal scheduler's wall time on the same latencies, whatever
order the code chose.

Kinds of steps: "chain" steps repeat a call one after another (a retry, a poll, the next request of a sequence): each
call depends on the one before. "fan" steps are independent calls of one kind (one per rule, per route, per
instance): none depends on another. A reference to a step means all of its calls (their latest end); a step that
made no call (nothing to do) is no constraint.

Gates (zero weight): PLAN: the planner needs both VPCs (CIDRs and routes) before it picks mapped ranges.
PREFLIGHT: nothing is created before both sides' preflight passed (policy: a failing preflight leaves nothing
behind). INVENTORY (down): both sides' inventories are collected and shown before anything is deleted (policy).
DELETED (down): the leak check reads after every delete of both sides.
"""

import json

# Up, per side: step -> (phase, kind, dependencies). Same side unless "peer:"; names in UP_GATES are gates.
UP = {
    "sts": ("connect", "chain", []),
    "vpcs": ("discover", "chain", ["sts"]),
    "subnets": ("discover", "chain", ["vpcs"]),
    "tables": ("discover", "chain", ["vpcs"]),
    # routes to managed prefix lists: the lists' sizes and entries (only when a table has such a route)
    "prefix_lists": ("discover", "chain", ["tables"]),
    "prefix_entries": ("discover", "fan", ["tables"]),
    # The survey: what the link already has, the account's headroom, the AMI, the DryRun probes.
    # the instance type's architectures (DescribeInstanceTypes) beside both architectures' SSM parameters, then the
    # chosen AMI is checked (DescribeImages)
    "itype": ("survey", "chain", ["sts"]),
    "ami": ("survey", "fan", ["sts"]),
    "ami_image": ("survey", "chain", ["ami", "itype"]),
    # the zones that offer the instance type: the hosts' subnets are chosen among them
    "offerings": ("survey", "chain", ["sts"]),
    "kp_find": ("survey", "chain", ["sts"]),
    "addresses": ("survey", "chain", ["sts"]),
    "eip_quota": ("survey", "chain", ["sts"]),
    # only when kp_find found no key pair (a DryRun import of an existing name may answer Duplicate)
    "probe_key": ("survey", "chain", ["kp_find"]),
    "probe_eip": ("survey", "chain", ["sts"]),
    "groups": ("survey", "chain", ["vpcs"]),
    "instances": ("survey", "chain", ["vpcs"]),
    "probe_sg": ("survey", "chain", ["vpcs"]),
    # the launch probe needs the AMI, the VPC's default group and the public subnet (subnets and their tables)
    "probe_run": ("preflight", "chain", ["ami", "ami_image", "groups", "subnets", "tables", "offerings"]),
    # the tunnel host's role and instance profile: one of the link's name must not be someone else's (IAM has no DryRun)
    "probe_iam_role": ("preflight", "chain", ["sts"]),
    "probe_iam_profile": ("preflight", "chain", ["sts"]),
    "kp_delete": ("provision-1", "chain", ["kp_find", "PREFLIGHT"]),
    "kp_import": ("provision-1", "chain", ["kp_find", "kp_delete", "PREFLIGHT"]),
    # both sides in one account and region: the side whose import was refused as Duplicate reads the other's
    "kp_find_again": ("provision-1", "chain", ["kp_import"]),
    "sg_tunnel_create": ("provision-1", "chain", ["groups", "PREFLIGHT"]),
    "sg_test_create": ("provision-1", "chain", ["groups", "PREFLIGHT"]),
    # a tunnel group found without today's route destinations named on it (never on a fresh link)
    "sg_tag": ("provision-1", "chain", ["groups", "PREFLIGHT"]),
    # a recorded address the survey did not list (a run that died right after allocating): read by id first
    "eip_read": ("provision-1", "chain", ["addresses", "PREFLIGHT"]),
    "eip_alloc": ("provision-1", "chain", ["addresses", "eip_read", "PREFLIGHT"]),
    # a group that CreateSecurityGroup says exists (made by a run that died before it was listed)
    "sg_find_again": ("provision-1", "chain", ["sg_tunnel_create", "sg_test_create"]),
    # existing groups only: a group made by this run has no ingress rule to read or revoke
    "rules_read": ("provision-2", "chain", ["groups"]),
    "rules_revoke": ("provision-2", "chain", ["rules_read", "PREFLIGHT"]),
    # SSH from the operator and the VPC's own CIDRs
    "rules_tunnel_add": ("provision-2", "fan",
                         ["groups", "sg_tunnel_create", "sg_find_again", "rules_read", "rules_revoke", "PLAN", "PREFLIGHT"]),
    # IKE 500, IKE 4500, ESP and ping from the peer's Elastic IP
    "rules_tunnel_peer_add": ("provision-2", "fan",
                              ["groups", "sg_tunnel_create", "sg_find_again", "rules_read", "rules_revoke", "PLAN", "PREFLIGHT",
                               "peer:addresses", "peer:eip_alloc"]),
    # SSH from the tunnel group, then the peer's mapped ranges (PLAN)
    "rules_test_add": ("provision-2", "fan",
                       ["groups", "sg_tunnel_create", "sg_test_create", "rules_read", "rules_revoke", "PLAN",
                        "PREFLIGHT"]),
    # the metrics role (read, made), its policy, the instance profile holding it (issue 13)
    "iam_role": ("provision-1", "chain", ["PREFLIGHT"]),
    "iam_role_add": ("provision-1", "chain", ["iam_role", "PREFLIGHT"]),
    "iam_policy": ("provision-1", "chain", ["iam_role", "iam_role_add"]),
    "iam_policy_put": ("provision-1", "chain", ["iam_policy", "iam_role", "iam_role_add"]),
    "iam_profile": ("provision-1", "chain", ["PREFLIGHT"]),
    "iam_profile_add": ("provision-1", "chain", ["iam_profile", "PREFLIGHT"]),
    "iam_profile_role": ("provision-1", "chain", ["iam_profile", "iam_profile_add", "iam_role", "iam_role_add"]),
    "iam_profile_wait": ("provision-1", "chain", ["iam_profile_add"]),
    "tunnel_run": ("provision-2", "chain",
                   ["instances", "groups", "sg_tunnel_create", "kp_find", "kp_import", "kp_find_again", "ami", "ami_image", "subnets", "tables",
                    "iam_profile", "iam_profile_add", "iam_profile_role", "iam_profile_wait", "PREFLIGHT"]),
    # an earlier run's tunnel host without the profile gets it (never on a fresh link)
    "iam_assoc_read": ("provision-2", "chain", ["instances", "tunnel_run", "tunnel_wait"]),
    "iam_assoc": ("provision-2", "chain", ["iam_assoc_read", "iam_profile_role", "iam_profile_wait"]),
    # the alarm once the host exists (policy); read only when the state records it
    "alarm_read": ("provision-2", "chain", ["instances", "tunnel_run", "tunnel_wait"]),
    "alarm_put": ("provision-2", "chain", ["alarm_read", "instances", "tunnel_run", "tunnel_wait"]),
    # polls; on a resumed run they may wait for a host an earlier run launched (or this run started)
    "tunnel_wait": ("provision-2", "chain", ["instances", "tunnel_run", "PREFLIGHT"]),
    # an earlier run's host found stopped is started (never on a fresh link)
    "tunnel_start": ("provision-2", "chain", ["instances", "PREFLIGHT"]),
    # the interface is used once the instance runs (its id is already in RunInstances' answer)
    "eip_assoc": ("provision-2", "chain", ["addresses", "eip_alloc", "instances", "tunnel_run", "tunnel_wait"]),
    "eni_read": ("provision-2", "chain", ["instances", "tunnel_run", "tunnel_wait"]),
    "srcdst_off": ("provision-2", "chain", ["eni_read", "instances", "tunnel_run", "tunnel_wait"]),
    "test_run": ("provision-2", "chain",
                 ["instances", "groups", "sg_test_create", "kp_find", "kp_import", "kp_find_again", "ami", "ami_image", "subnets", "tables",
                  "PREFLIGHT"]),
    "test_wait": ("provision-2", "chain", ["instances", "test_run", "PREFLIGHT"]),
    "test_start": ("provision-2", "chain", ["instances", "PREFLIGHT"]),
    # one per (route table, peer mapped range)
    "routes": ("provision-2", "fan", ["instances", "tunnel_run", "tunnel_wait", "PLAN", "PREFLIGHT"]),
    # names (src/names/sync.rs): this side's zone (found, else created and tagged) once preflight passed; this side's
    # interfaces (and their instances' Name tags) once its hosts are launched, read for the PEER's zone; then the
    # zone's records, changed to name the peer's interfaces, and the change polled until INSYNC
    "names_zone_read": ("names", "chain", ["PREFLIGHT"]),
    "names_vpc_dns": ("names", "chain", ["PREFLIGHT"]),
    "names_zone": ("names", "chain", ["names_zone_read", "PREFLIGHT"]),
    "names_enis": ("names", "chain", ["instances", "tunnel_run", "test_run", "PREFLIGHT"]),
    "names_instances": ("names", "chain", ["names_enis"]),
    "names_records_read": ("names", "chain", ["names_zone", "names_zone_read"]),
    "names_records": ("names", "chain", ["names_records_read", "names_zone", "peer:names_enis",
                                         "peer:names_instances"]),
}
# gate -> (steps of both sides it waits for, gates it waits for)
UP_GATES = {
    "PLAN": (["vpcs", "subnets", "tables", "prefix_lists", "prefix_entries"], []),
    # what preflight judges: the AMI, the probes, the address headroom, the route tables (PLAN)
    "PREFLIGHT": (["ami", "ami_image", "itype", "offerings", "addresses", "eip_quota", "probe_key", "probe_eip", "probe_sg",
                   "probe_run", "probe_iam_role", "probe_iam_profile"], ["PLAN"]),
}

DOWN = {
    "sts": ("connect", "chain", []),
    "c_inst_find": ("collect", "chain", ["sts"]),
    "c_inst_rec": ("collect", "fan", ["sts"]),
    # the state names the VPC: its tables are read at once; a VPC learned only from an instance waits for it
    "c_tables": ("collect", "fan", ["sts"]),
    "c_tables_more": ("collect", "fan", ["c_inst_find", "c_inst_rec"]),
    "c_eip_find": ("collect", "chain", ["sts"]),
    "c_eip_rec": ("collect", "chain", ["sts"]),
    "c_sg_find": ("collect", "chain", ["sts"]),
    "c_sg_rec": ("collect", "fan", ["sts"]),
    # the tables of a VPC known only from a tunnel group's tags, and whether a route's interface is still a live
    # host's: without state, after a crash (never on a clean link)
    "c_tables_tag": ("collect", "fan", ["c_sg_find", "c_sg_rec"]),
    "c_orphans": ("collect", "chain", ["c_tables", "c_tables_tag", "c_sg_find", "c_inst_find", "c_inst_rec"]),
    "c_kp_find": ("collect", "chain", ["sts"]),
    "c_kp_rec": ("collect", "chain", ["sts"]),
    # the alarm; the role and instance profile listed under /vpclink/, then read for their tags
    "c_alarm": ("collect", "chain", ["sts"]),
    "c_iam_profiles": ("collect", "chain", ["sts"]),
    "c_iam_roles": ("collect", "chain", ["sts"]),
    "c_iam_profile": ("collect", "chain", ["c_iam_profiles"]),
    "c_iam_role": ("collect", "chain", ["c_iam_roles"]),
    # names zones (src/names/teardown.rs): listed, and the tags of those of the link's zone name read
    "c_zones": ("collect", "chain", ["sts"]),
    "d_routes": ("delete", "fan", ["INVENTORY"]),
    "d_disassoc": ("delete", "fan", ["INVENTORY"]),
    "d_release": ("delete", "fan", ["d_disassoc", "INVENTORY"]),
    "d_term": ("delete", "fan", ["INVENTORY"]),
    "d_wait": ("delete", "chain", ["d_term"]),
    # a group is in use until the instances using it are terminated; the test host's group names the tunnel
    # host's, so the two go one after the other. The tunnel group names the routes' destinations (for a `down`
    # without state, once the host is gone): it goes after the routes (policy)
    "d_sg": ("delete", "chain", ["d_wait", "d_routes", "INVENTORY"]),
    "d_kp": ("delete", "fan", ["INVENTORY"]),
    "d_alarms": ("delete", "chain", ["INVENTORY"]),
    # a names zone is emptied (read, then its records deleted), then deleted; nothing in EC2 depends on it
    "d_zone_records": ("delete", "chain", ["INVENTORY"]),
    "d_zone": ("delete", "chain", ["d_zone_records"]),
    # the instance profile (its role taken out first), the role's policy, the role: once no instance uses them
    "d_iam_profile_read": ("delete", "chain", ["d_wait", "INVENTORY"]),
    "d_iam_profile_role": ("delete", "chain", ["d_iam_profile_read", "d_wait"]),
    "d_iam_profile": ("delete", "chain", ["d_iam_profile_role", "d_wait"]),
    "d_iam_policy": ("delete", "chain", ["d_wait", "INVENTORY"]),
    "d_iam_role": ("delete", "chain", ["d_iam_policy", "d_iam_profile_role", "d_iam_profile"]),
    "l_inst": ("leak-check", "chain", ["DELETED"]),
    "l_tables": ("leak-check", "fan", ["l_inst"]),
    "l_tables_tag": ("leak-check", "fan", ["l_sg"]),
    "l_orphans": ("leak-check", "chain", ["l_tables", "l_tables_tag", "l_sg", "l_inst"]),
    "l_eip": ("leak-check", "chain", ["DELETED"]),
    "l_sg": ("leak-check", "chain", ["DELETED"]),
    "l_kp": ("leak-check", "chain", ["DELETED"]),
    "l_alarm": ("leak-check", "chain", ["DELETED"]),
    "l_iam_profiles": ("leak-check", "chain", ["DELETED"]),
    "l_iam_roles": ("leak-check", "chain", ["DELETED"]),
    "l_iam_profile": ("leak-check", "chain", ["l_iam_profiles"]),
    "l_iam_role": ("leak-check", "chain", ["l_iam_roles"]),
    # names zones (src/names/teardown.rs): listed again by the leak check
    "l_zones": ("leak-check", "chain", ["DELETED"]),
}
DOWN_GATES = {
    "INVENTORY": ([s for s, v in DOWN.items() if v[0] in ("connect", "collect")], []),
    "DELETED": ([s for s, v in DOWN.items() if v[0] == "delete"], ["INVENTORY"]),
}

COMMANDS = {"up": (UP, UP_GATES), "down": (DOWN, DOWN_GATES)}
PEER = {"east": "west", "west": "east"}


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def busy_union(intervals):
    """Total length of the union of (start, end) intervals."""
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def analyse(calls, command):
    """Build the DAG from a call log; return the critical path and per-phase figures (times in ms)."""
    steps, gates = COMMANDS[command]
    unknown = sorted({f"{c['side']} {c.get('step') or '(no step)'} {c['operation']}" for c in calls
                      if c.get("step") not in steps})
    if unknown:
        return {"error": "calls from steps the DAG does not know", "unmatched": unknown}
    calls = sorted(calls, key=lambda c: (c["start_ms"], c["end_ms"]))
    nodes, by = [], {}
    for c in calls:
        key = (c["side"], c["step"])
        n = {"side": c["side"], "step": c["step"], "phase": steps[c["step"]][0], "op": c["operation"],
             "start": c["start_ms"], "end": c["end_ms"], "dur": c["end_ms"] - c["start_ms"],
             "idx": len(by.get(key, [])), "ok": c["ok"]}
        nodes.append(n)
        by.setdefault(key, []).append(n)

    def refs(n):
        """The nodes and gates n depends on."""
        out = []
        for d in steps[n["step"]][2]:
            if d in gates:
                out.append(("gate", d))
            elif d.startswith("peer:"):
                out.extend(by.get((PEER[n["side"]], d[5:]), []))
            else:
                out.extend(by.get((n["side"], d), []))
        if steps[n["step"]][1] == "chain" and n["idx"] > 0:
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
    for ph in dict.fromkeys(v[0] for v in steps.values()):
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
    first, last = min(n["start"] for n in nodes), max(n["end"] for n in nodes)
    return {
        "calls": {s: sum(1 for n in nodes if n["side"] == s) for s in ("east", "west")},
        "busy_ms": {s: sum(n["dur"] for n in nodes if n["side"] == s) for s in ("east", "west")},
        "first_start": first,
        "last_end": last,
        # time inside the span with no AWS call in flight on either side: local work between calls
        "idle_ms": (last - first) - busy_union([(n["start"], n["end"]) for n in nodes]),
        "critical_ms": critical,
        "path": [f"[{n[1]}]" if isinstance(n, tuple) else f"{n['side']} {n['op']} {n['dur']:.0f}" for n in path],
        "phases": phases,
    }


# ---------------------------------------------------------------------------------------------------------------
# Self-test: python3 aws_dag.py --self-test


def _call(side, step, op, start, end):
    return {"side": side, "step": step, "service": "EC2", "operation": op, "start_ms": start, "end_ms": end,
            "ok": True}


def _fresh_up(slow_west_alloc=0.0):
    """A fresh link's calls, each 10 ms, issued as the ideal scheduler would (the code's own order is irrelevant)."""
    out = []
    for side in ("east", "west"):
        c = lambda step, op, t, d=10.0: out.append(_call(side, step, op, t, t + d))  # noqa: E731
        c("sts", "GetCallerIdentity", 0)
        c("vpcs", "DescribeVpcs", 10)
        c("subnets", "DescribeSubnets", 20)
        c("tables", "DescribeRouteTables", 20)
        c("ami", "GetParameter", 10)
        c("ami", "GetParameter", 10)
        c("itype", "DescribeInstanceTypes", 10)
        c("ami_image", "DescribeImages", 20)
        for s, op in (("kp_find", "DescribeKeyPairs"), ("addresses", "DescribeAddresses"),
                      ("eip_quota", "DescribeAccountAttributes"), ("offerings", "DescribeInstanceTypeOfferings"),
                      ("probe_eip", "AllocateAddress")):
            c(s, op, 10)
        for s, op in (("groups", "DescribeSecurityGroups"), ("instances", "DescribeInstances"),
                      ("probe_sg", "CreateSecurityGroup"), ("probe_key", "ImportKeyPair")):
            c(s, op, 20)
        c("probe_run", "RunInstances", 30)  # PREFLIGHT at 40
        c("kp_import", "ImportKeyPair", 40)
        c("sg_tunnel_create", "CreateSecurityGroup", 40)
        c("sg_test_create", "CreateSecurityGroup", 40)
        c("eip_alloc", "AllocateAddress", 40, 10.0 + (slow_west_alloc if side == "west" else 0.0))
        for _ in range(3):
            c("rules_tunnel_add", "AuthorizeSecurityGroupIngress", 50)
        for _ in range(4):
            c("rules_tunnel_peer_add", "AuthorizeSecurityGroupIngress", 50)
        for _ in range(2):
            c("rules_test_add", "AuthorizeSecurityGroupIngress", 50)
        c("tunnel_run", "RunInstances", 50)
        c("tunnel_wait", "DescribeInstances", 60)
        c("eip_assoc", "AssociateAddress", 70)
        c("srcdst_off", "ModifyNetworkInterfaceAttribute", 70)
        for _ in range(5):
            c("routes", "CreateRoute", 70)
        c("test_run", "RunInstances", 50)
        c("test_wait", "DescribeInstances", 60)
        c("test_wait", "DescribeInstances", 70)
    return out


def _fresh_down():
    out = []
    for side in ("east", "west"):
        c = lambda step, op, t: out.append(_call(side, step, op, t, t + 10.0))  # noqa: E731
        c("sts", "GetCallerIdentity", 0)
        for s, op in (("c_inst_find", "DescribeInstances"), ("c_inst_rec", "DescribeInstances"),
                      ("c_inst_rec", "DescribeInstances"), ("c_tables", "DescribeRouteTables"),
                      ("c_eip_find", "DescribeAddresses"), ("c_eip_rec", "DescribeAddresses"),
                      ("c_sg_find", "DescribeSecurityGroups"), ("c_sg_rec", "DescribeSecurityGroups"),
                      ("c_sg_rec", "DescribeSecurityGroups"), ("c_kp_find", "DescribeKeyPairs"),
                      ("c_kp_rec", "DescribeKeyPairs")):
            c(s, op, 10)  # INVENTORY at 20
        for _ in range(5):
            c("d_routes", "DeleteRoute", 20)
        c("d_disassoc", "DisassociateAddress", 20)
        c("d_release", "ReleaseAddress", 30)
        c("d_term", "TerminateInstances", 20)
        c("d_term", "TerminateInstances", 20)
        c("d_wait", "DescribeInstances", 30)
        c("d_wait", "DescribeInstances", 40)
        c("d_sg", "DeleteSecurityGroup", 50)
        c("d_sg", "DeleteSecurityGroup", 60)  # DELETED at 70
        c("d_kp", "DeleteKeyPair", 20)
        c("l_inst", "DescribeInstances", 70)
        c("l_eip", "DescribeAddresses", 70)
        c("l_sg", "DescribeSecurityGroups", 70)
        c("l_kp", "DescribeKeyPairs", 70)
    return out


def self_test():
    # Longest chain: sts, vpcs, subnets|tables|groups, probe_run (PREFLIGHT at 40), sg_tunnel_create, tunnel_run,
    # tunnel_wait, then association, source/dest check or a route = 8 calls.
    r = analyse(_fresh_up(), "up")
    assert "error" not in r, r
    assert abs(r["critical_ms"] - 80.0) < 1e-6, r
    assert "[PREFLIGHT]" in r["path"], r["path"]
    assert r["idle_ms"] == 0.0, r["idle_ms"]
    ph = {p["phase"]: p for p in r["phases"]}
    assert ph["connect"]["critical_ms"] == 10 and ph["discover"]["critical_ms"] == 20
    assert ph["survey"]["critical_ms"] == 20  # DescribeInstanceTypes | GetParameter -> DescribeImages
    assert ph["provision-1"]["critical_ms"] == 10
    # a fan is as long as one call: rules 10; tunnel host: run, wait, then association = 30; test: run, 2 polls = 30
    assert ph["provision-2"]["critical_ms"] == 30, ph["provision-2"]

    # A peer's slow AllocateAddress delays the tunnel rules that name it, nothing else of this side.
    r2 = analyse(_fresh_up(slow_west_alloc=500.0), "up")
    # west's eip_alloc ends at 40 + 510 = 550 -> east's peer rules end at 560; west's association waits for its own
    # address: 560 too. Without the peer dependency the path would stay at 80.
    assert abs(r2["critical_ms"] - 560.0) < 1e-6, r2["critical_ms"]
    assert r2["path"][-2:] in (["west AllocateAddress 510", "east AuthorizeSecurityGroupIngress 10"],
                               ["west AllocateAddress 510", "west AssociateAddress 10"]), r2["path"]

    # A call from a step the DAG does not know is reported, not guessed.
    bad = _fresh_up() + [_call("east", "", "DescribeVpcs", 0, 5)]
    assert analyse(bad, "up")["error"].startswith("calls from steps"), "unknown step"

    # Idle time: a 15 ms gap with nothing in flight.
    gap = [_call("east", "sts", "GetCallerIdentity", 0, 10), _call("east", "vpcs", "DescribeVpcs", 25, 35)]
    assert analyse(gap, "up")["idle_ms"] == 15.0

    # Down: INVENTORY 20; terminate 30, two polls 50, two group deletes 70 = DELETED; leak-check reads 80.
    r3 = analyse(_fresh_down(), "down")
    assert "error" not in r3, r3
    assert abs(r3["critical_ms"] - 80.0) < 1e-6, r3
    print("aws_dag self-test: 5 passed, 0 failed")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--self-test"]:
        self_test()
    else:
        cmd, path = sys.argv[1], sys.argv[2]
        print(json.dumps(analyse(read_log(path), cmd), indent=2))
