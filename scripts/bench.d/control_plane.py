"""`vpclink up --no-configure` and `vpclink down` against LocalStack, sides in parallel and serially
(VPCLINK_SERIAL_SIDES=1), each run on freshly seeded VPCs in fresh accounts, the two modes alternating round by
round. Every AWS call is logged (VPCLINK_CALL_LOG); aws_dag.py turns each log into its critical path.

  control_plane.py --bin target/debug/vpclink --rounds 5 --work DIR --md OUT.md

Prints figures and writes a Markdown fragment; asserts no timing. Exit 1 only when a vpclink run failed.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_dag  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SSH_CIDR = "192.0.2.0/24"  # TEST-NET-1: nothing is ever reached there (and --no-configure makes no SSH)


def timed(cmd, env, out_path):
    """Run cmd; wall ms, its own rusage (max RSS), exit code; stdout+stderr to out_path."""
    with open(out_path, "w") as out:
        t0 = time.time() * 1000
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _pid, status, ru = os.wait4(p.pid, 0)
        t1 = time.time() * 1000
    return {"t0": t0, "t1": t1, "wall_ms": t1 - t0, "maxrss_kib": ru.ru_maxrss,
            "rc": os.waitstatus_to_exitcode(status)}


def one_cycle(binary, work, mode, rnd):
    d = os.path.join(work, f"r{rnd}-{mode}")
    os.makedirs(d, exist_ok=True)
    east, west = (f"{random.randint(10**11, 10**12 - 1)}" for _ in range(2))
    seeded = subprocess.run([os.path.join(REPO, "localstack/seed"), os.path.join(d, "aws"),
                             "--east-account", east, "--west-account", west],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    if seeded.returncode != 0:
        raise SystemExit(f"localstack/seed failed:\n{seeded.stdout[-2000:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("VPCLINK_")}
    env.update({
        "AWS_CONFIG_FILE": os.path.join(d, "aws/config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(d, "aws/credentials"),
        "XDG_STATE_HOME": os.path.join(d, "state"),
    })
    if mode == "serial":
        env["VPCLINK_SERIAL_SIDES"] = "1"
    res = {"mode": mode, "round": rnd}
    for cmd, args in (
        ("up", ["up", "--east", "east", "--west", "west", "--no-configure", "--ssh-cidr", SSH_CIDR]),
        ("down", ["down"]),
    ):
        log = os.path.join(d, f"{cmd}.calls.jsonl")
        env["VPCLINK_CALL_LOG"] = log
        r = timed([binary] + args, env, os.path.join(d, f"{cmd}.out"))
        if r["rc"] != 0:
            with open(os.path.join(d, f"{cmd}.out")) as f:
                tail = f.read()[-1500:]
            raise SystemExit(f"vpclink {cmd} ({mode}, round {rnd}) exited {r['rc']}:\n{tail}")
        a = aws_dag.analyse(aws_dag.read_log(log), cmd)
        if "error" in a:
            print(f"warning: {cmd} {mode} round {rnd}: {a['error']}: {json.dumps(a['unmatched'])}",
                  file=sys.stderr)
        else:
            a["startup_ms"] = a["first_start"] - r["t0"]
            a["span_ms"] = a["last_end"] - a["first_start"]
            a["exit_ms"] = r["t1"] - a["last_end"]
        res[cmd] = {**r, "dag": a}
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def rng(xs):
    return f"{min(xs):.0f}-{max(xs):.0f}" if xs else "-"


def summarise(runs, rounds):
    lines = []
    p = lambda s="": lines.append(s)  # noqa: E731
    par = [r for r in runs if r["mode"] == "parallel"]
    ser = [r for r in runs if r["mode"] == "serial"]
    p(f"Medians over {rounds} rounds (range in brackets); each round seeds fresh VPCs in fresh accounts and runs "
      "parallel and serial side by side, alternating which goes first.")
    p()
    p("| command | wall (ms) | startup before 1st AWS call | AWS span | after last call | critical path (ms) "
      "| wall / critical path (target ≤ 1.2x) | AWS calls east / west | one side's call latencies added up (ms) "
      "| serial wall (ms) | parallel / serial | mean call latency parallel / serial (ms) |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|")
    figures = {}
    for cmd in ("up", "down"):
        ok = [r[cmd] for r in par if "critical_ms" in r[cmd]["dag"]]
        wall = [r["wall_ms"] for r in ok]
        cp = [r["dag"]["critical_ms"] for r in ok]
        ratio = [r["wall_ms"] / r["dag"]["critical_ms"] for r in ok]
        swall = [r[cmd]["wall_ms"] for r in ser]
        # parallel/serial per round, then the median
        pairs = {r["round"]: r[cmd]["wall_ms"] for r in par}
        ps = [pairs[r["round"]] / r[cmd]["wall_ms"] for r in ser if r["round"] in pairs]
        calls = {f"{r['dag']['calls']['east']} / {r['dag']['calls']['west']}" for r in ok}
        busy = [max(r["dag"]["busy_ms"].values()) for r in ok]

        def mean_latency(rs):
            ds = [r[cmd]["dag"] for r in rs if "busy_ms" in r[cmd]["dag"]]
            total = sum(sum(d["busy_ms"].values()) for d in ds)
            n = sum(sum(d["calls"].values()) for d in ds)
            return total / n if n else float("nan")
        figures[cmd] = {"wall_ms": med(wall), "critical_ms": med(cp), "wall_over_critical": med(ratio),
                        "serial_wall_ms": med(swall), "parallel_over_serial": med(ps)}
        p(f"| `{cmd}` | {med(wall):.0f} [{rng(wall)}] | {med([r['dag']['startup_ms'] for r in ok]):.0f} "
          f"| {med([r['dag']['span_ms'] for r in ok]):.0f} | {med([r['dag']['exit_ms'] for r in ok]):.0f} "
          f"| {med(cp):.0f} [{rng(cp)}] | **{med(ratio):.2f}x** [{min(ratio):.2f}-{max(ratio):.2f}] "
          f"| {', '.join(sorted(calls))} | {med(busy):.0f} | {med(swall):.0f} [{rng(swall)}] | **{med(ps):.2f}** "
          f"| {mean_latency(par):.1f} / {mean_latency(ser):.1f} |")
    p()
    p("Per phase (parallel runs): the phase's window (first call's start to last call's end, both sides) against the "
      "longest chain of dependent calls inside it.")
    p()
    p("| command | phase | AWS calls | window (ms) | critical path in phase (ms) | window / critical |")
    p("|---|---|---|---|---|---|")
    for cmd in ("up", "down"):
        ok = [r[cmd]["dag"] for r in par if "critical_ms" in r[cmd]["dag"]]
        if not ok:
            continue
        for i, ph in enumerate(ok[0]["phases"]):
            w = [a["phases"][i]["window_ms"] for a in ok]
            c = [a["phases"][i]["critical_ms"] for a in ok]
            p(f"| `{cmd}` | {ph['phase']} | {ph['calls']} | {med(w):.0f} | {med(c):.0f} "
              f"| {med([x / y for x, y in zip(w, c)]):.2f}x |")
        idle = [a["idle_ms"] for a in ok]
        p(f"| `{cmd}` | no AWS call in flight, inside the span (local work) | 0 | {med(idle):.0f} | 0 | - |")
    p()
    for cmd in ("up", "down"):
        ok = [r[cmd]["dag"] for r in par if "critical_ms" in r[cmd]["dag"]]
        if ok:
            # the run whose critical path is the median one
            a = sorted(ok, key=lambda x: x["critical_ms"])[len(ok) // 2]
            p(f"Critical path of `{cmd}` (a median run, ms per call): " + " → ".join(a["path"]))
            p()
    rss = [r["up"]["maxrss_kib"] for r in runs]
    p(f"Peak memory (max RSS) of `up --no-configure`: median {med(rss) / 1024:.1f} MiB, max "
      f"{max(rss) / 1024:.1f} MiB (getrusage of the child, {len(rss)} runs).")
    figures["up_maxrss_mib"] = max(rss) / 1024
    return "\n".join(lines) + "\n", figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    runs = []
    started = time.monotonic()
    for rnd in range(a.rounds):
        order = ("parallel", "serial") if rnd % 2 == 0 else ("serial", "parallel")
        for mode in order:
            runs.append(one_cycle(a.bin, a.work, mode, rnd))
            u, d = runs[-1]["up"], runs[-1]["down"]
            print(f"  round {rnd} {mode:8}: up {u['wall_ms']:6.0f} ms (critical path "
                  f"{u['dag'].get('critical_ms', float('nan')):4.0f}), down {d['wall_ms']:6.0f} ms "
                  f"(critical path {d['dag'].get('critical_ms', float('nan')):4.0f})", file=sys.stderr)
        if time.monotonic() - started > 240:
            print(f"  stopping after {rnd + 1} rounds (4-minute budget)", file=sys.stderr)
            a.rounds = rnd + 1
            break
    md, figures = summarise(runs, a.rounds)
    with open(a.md, "w") as f:
        f.write(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"figures": figures, "runs": runs}, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
