#!/usr/bin/python3
"""vpclink metrics agent: publishes the health of this tunnel host's link to CloudWatch every interval_s.

Written by vpclink; local edits are replaced on the next `vpclink configure`. Configuration: /etc/vpclink/metrics.json
(no secrets). Credentials: boto3's default chain, which on EC2 reads the instance profile's role through IMDSv2
(a PUT for a session token, then GETs that carry it), so no key is ever on disk. One line per cycle on stdout (the
journal: `journalctl -u vpclink-metrics`); a cycle that cannot publish logs an error line and the next one tries again.

  vpclink-metrics [--config FILE] [--once] [--sample FILE]

--once runs one cycle and exits (1 if publishing failed). --sample FILE reads the command outputs from a JSON list
of cycles ({"ip_link": ..., "showstates": ..., ...}; null for a command that failed) instead of running the
commands, one element per cycle, without waiting between them (tests drive the agent with it).

Layout: pure parsers (text in, values out) -> `cycle_datums` (readings and the previous counters in, datums and the
new counters out) -> the effect layer (`read_host`, `publish`, `main`). Python 3.9 (AL2023) or newer, standard
library plus boto3, imported only to publish.
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import time

CONFIG = "/etc/vpclink/metrics.json"

# EC2's ENA driver counters (`ethtool -S`), documented in the EC2 User Guide "Monitor network performance for ENA
# settings on your EC2 instance": packets queued or dropped because an instance allowance was exceeded. Published only
# when the uplink's driver shows them; never as made-up zeros.
ENA_ALLOWANCES = {
    "bw_in_allowance_exceeded": "BwInAllowanceExceeded",
    "bw_out_allowance_exceeded": "BwOutAllowanceExceeded",
    "pps_allowance_exceeded": "PpsAllowanceExceeded",
    "conntrack_allowance_exceeded": "ConntrackAllowanceExceeded",
    "linklocal_allowance_exceeded": "LinklocalAllowanceExceeded",
}

# Counters published as the delta since the previous cycle, with their CloudWatch unit.
COUNTER_UNITS = {
    "BytesToPeer": "Bytes",
    "BytesFromPeer": "Bytes",
    "PacketsToPeer": "Count",
    "PacketsFromPeer": "Count",
}
COUNTER_UNITS.update({name: "Count" for name in ENA_ALLOWANCES.values()})

# Every command gets a bounded wait (seconds): a hung pluto or ethtool must not stop the agent.
TIMEOUT = 10


# ---------------------------------------------------------------------------------------------------------------
# Pure parsers.


def parse_ip_link(text, dev):
    """`ip -s -j link show dev DEV` (iproute2's JSON; counters in "stats64") -> {"up", "rx_bytes", "rx_packets",
    "tx_bytes", "tx_packets"}, or None when the device is absent or the output unreadable. GRE reports operstate
    UNKNOWN, so "up" is the administrative UP flag."""
    if not text:
        return None
    try:
        links = json.loads(text)
    except ValueError:
        return None
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or link.get("ifname") != dev:
            continue
        stats = link.get("stats64") or link.get("stats") or {}
        rx, tx = stats.get("rx") or {}, stats.get("tx") or {}
        out = {"up": "UP" in (link.get("flags") or [])}
        for key, src, field in (
            ("rx_bytes", rx, "bytes"),
            ("rx_packets", rx, "packets"),
            ("tx_bytes", tx, "bytes"),
            ("tx_packets", tx, "packets"),
        ):
            value = src.get(field)
            if isinstance(value, int) and value >= 0:
                out[key] = value
        return out
    return None


def _conn_lines(text, conn):
    """The lines about connection CONN: libreswan quotes the name ("NAME", "NAME"[1], "NAME":4500), so a quoted
    match never takes "NAME-2" for "NAME"."""
    quoted = '"%s"' % conn
    return [line for line in (text or "").splitlines() if quoted in line]


def parse_ike_up(showstates, conn):
    """`ipsec whack --showstates` -> whether an IKE SA of CONN is established. libreswan 4 prints
    `000 #1: "c":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); ...`, libreswan 5 drops the status code and
    the prefix: `#1: "c":4500 ESTABLISHED_IKE_SA (established IKE SA); ...`."""
    return any(re.search(r"\b(STATE_V2_)?ESTABLISHED_IKE_SA\b", line) for line in _conn_lines(showstates, conn))


def parse_esp_up(trafficstatus, conn):
    """`ipsec whack --trafficstatus` -> whether CONN has an installed IPsec SA pair: it lists each established Child
    SA once (ipsec-trafficstatus(8)): libreswan 4 `006 #2: "c", type=ESP, add_time=..., inBytes=..., outBytes=...,
    id='...'`, libreswan 5 the same without `006 ` and with `maxBytes=2^63B`."""
    return any("type=ESP" in line for line in _conn_lines(trafficstatus, conn))


def parse_ping(text):
    """ping's summary -> (received, average round trip in ms or None). iputils: `3 packets transmitted, 3 received,
    0% packet loss, time 2003ms` and `rtt min/avg/max/mdev = 0.403/0.433/0.450/0.023 ms`; BusyBox: `3 packets
    received` and `round-trip min/avg/max = 0.4/0.4/0.5 ms`."""
    text = text or ""
    m = re.search(r"(\d+) (?:packets )?received", text)
    received = int(m.group(1)) if m else 0
    m = re.search(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = [\d.]+/([\d.]+)/", text)
    avg = float(m.group(1)) if m and received > 0 else None
    return received, avg


def parse_conntrack(count_text, max_text):
    """/proc/sys/net/netfilter/nf_conntrack_count and nf_conntrack_max (the kernel's nf_conntrack-sysctl
    documentation) -> (entries, percent of the maximum), or None when conntrack is not loaded."""
    try:
        count, limit = int((count_text or "").strip()), int((max_text or "").strip())
    except ValueError:
        return None
    if count < 0 or limit <= 0:
        return None
    return count, 100.0 * count / limit


def parse_ethtool(text):
    """`ethtool -S DEV` -> {MetricName: raw counter} for the ENA allowance counters it shows (lines
    `     bw_in_allowance_exceeded: 0`); {} for another driver or no output."""
    out = {}
    for line in (text or "").splitlines():
        name, sep, value = line.strip().partition(":")
        if sep and name in ENA_ALLOWANCES and value.strip().isdigit():
            out[ENA_ALLOWANCES[name]] = int(value.strip())
    return out


def counter_delta(previous, current):
    """The increase of a counter since the previous cycle; None on the first cycle. A counter that went down was
    reset (device recreated, driver reloaded): everything it counted since the reset is its current value."""
    if previous is None or current is None:
        return None
    return current - previous if current >= previous else current


def cycle_datums(cfg, readings, previous):
    """One cycle: the command outputs (`readings`, keys as in a --sample element) and the previous cycle's raw
    counters -> (datums as (MetricName, value, unit), this cycle's raw counters). Pure."""
    datums = []
    link = parse_ip_link(readings.get("ip_link"), cfg["gre_dev"])
    received, rtt = parse_ping(readings.get("ping"))
    tunnel_up = bool(link and link["up"] and received > 0)
    datums.append(("TunnelUp", 1 if tunnel_up else 0, "None"))
    datums.append(("IkeSaUp", 1 if parse_ike_up(readings.get("showstates"), cfg["conn"]) else 0, "None"))
    datums.append(("EspSaUp", 1 if parse_esp_up(readings.get("trafficstatus"), cfg["conn"]) else 0, "None"))
    if rtt is not None:
        datums.append(("TunnelRtt", rtt, "Milliseconds"))
    ct = parse_conntrack(readings.get("conntrack_count"), readings.get("conntrack_max"))
    if ct is not None:
        datums.append(("ConntrackEntries", ct[0], "Count"))
        datums.append(("ConntrackUse", round(ct[1], 3), "Percent"))

    counters = {}
    if link:
        for name, key in (
            ("BytesToPeer", "tx_bytes"),
            ("BytesFromPeer", "rx_bytes"),
            ("PacketsToPeer", "tx_packets"),
            ("PacketsFromPeer", "rx_packets"),
        ):
            if key in link:
                counters[name] = link[key]
    counters.update(parse_ethtool(readings.get("ethtool")))
    for name in sorted(counters, key=list(COUNTER_UNITS).index):
        delta = counter_delta(previous.get(name), counters[name])
        if delta is not None:
            datums.append((name, delta, COUNTER_UNITS[name]))
    return datums, counters


def metric_data(cfg, datums, when):
    """PutMetricData's MetricData: every datum with the Link and Side dimensions."""
    dims = [{"Name": "Link", "Value": cfg["link"]}, {"Name": "Side", "Value": cfg["side"]}]
    return [
        {"MetricName": name, "Dimensions": dims, "Timestamp": when, "Value": float(value), "Unit": unit}
        for name, value, unit in datums
    ]


def summary(datums):
    """The journal line's body: `TunnelUp=1 IkeSaUp=1 ... BytesToPeer=1200`."""
    return " ".join("%s=%s" % (name, ("%.3f" % v).rstrip("0").rstrip(".") if isinstance(v, float) else v)
                    for name, v, _ in datums)


# ---------------------------------------------------------------------------------------------------------------
# Effects.


def run(argv, timeout=TIMEOUT):
    """A command's stdout, or None when it is missing, fails or outlives its timeout (subprocess.run kills it)."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout,
                           universal_newlines=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def read_host(cfg):
    """The readings of one cycle, from the host."""
    return {
        "ip_link": run(["ip", "-s", "-j", "link", "show", "dev", cfg["gre_dev"]]),
        "showstates": run(["ipsec", "whack", "--showstates"]),
        "trafficstatus": run(["ipsec", "whack", "--trafficstatus"]),
        # Three echoes across the tunnel, each waited for at most 1 s; exit 1 (no answer) is still a summary.
        "ping": run_ping(cfg),
        "conntrack_count": read_text("/proc/sys/net/netfilter/nf_conntrack_count"),
        "conntrack_max": read_text("/proc/sys/net/netfilter/nf_conntrack_max"),
        "ethtool": run(["ethtool", "-S", cfg["uplink"]]),
    }


def run_ping(cfg):
    try:
        p = subprocess.run(["ping", "-n", "-q", "-c", "3", "-W", "1", "-I", cfg["gre_dev"], cfg["peer_inner"]],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=TIMEOUT,
                           universal_newlines=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout


def make_client(cfg):
    import boto3  # the distribution's python3-boto3; imported here so that a missing one is a logged error
    from botocore.config import Config

    return boto3.client(
        "cloudwatch",
        region_name=cfg["region"],
        endpoint_url=cfg.get("endpoint_url") or None,
        config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"}),
    )


def publish(cfg, client_box, datums):
    """PutMetricData (CloudWatch API reference: up to 1000 datums per call; we send at most 15). Returns an error
    text, or None."""
    try:
        if client_box[0] is None:
            client_box[0] = make_client(cfg)
        when = datetime.datetime.now(datetime.timezone.utc)
        client_box[0].put_metric_data(Namespace=cfg["namespace"], MetricData=metric_data(cfg, datums, when))
        return None
    except ImportError as e:
        return "boto3 is not installed (%s): install python3-boto3" % e
    except Exception as e:  # noqa: BLE001 - any failure to publish is logged and retried next cycle
        # botocore resolves credentials when a client is made and never again: a client made while the instance
        # profile was not there yet (just associated, or IMDS slow) would fail for ever. The next cycle makes a new
        # one.
        client_box[0] = None
        return "%s: %s" % (type(e).__name__, e)


def load_config(path):
    with open(path) as f:
        cfg = json.load(f)
    missing = [k for k in ("link", "side", "region", "namespace", "gre_dev", "peer_inner", "uplink", "conn",
                           "interval_s") if cfg.get(k) in (None, "")]
    if missing:
        raise ValueError("%s lacks %s" % (path, ", ".join(missing)))
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(prog="vpclink-metrics")
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--once", action="store_true", help="run one cycle, then exit (1 if publishing failed)")
    ap.add_argument("--sample", help="read the command outputs from this JSON list of cycles (tests)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        samples = None
        if args.sample:
            with open(args.sample) as f:
                samples = json.load(f)
            if not isinstance(samples, list) or not samples:
                raise ValueError("%s is not a non-empty JSON list of cycles" % args.sample)
    except (OSError, ValueError) as e:
        print("vpclink-metrics: cannot start: %s" % e, file=sys.stderr, flush=True)
        return 2
    interval = max(1, int(cfg["interval_s"]))
    client_box = [None]
    previous = {}
    failed = False
    cycle = 0
    start = time.monotonic()
    while True:
        readings = samples[cycle] if samples is not None else read_host(cfg)
        datums, previous = cycle_datums(cfg, readings, previous)
        err = publish(cfg, client_box, datums)
        line = summary(datums)
        if err is None:
            print("vpclink-metrics: published %d datums to %s: %s" % (len(datums), cfg["namespace"], line),
                  flush=True)
        else:
            failed = True
            print("vpclink-metrics: error: publishing %d datums failed (next try in %d s): %s; %s"
                  % (len(datums), interval, err, line), flush=True)
        cycle += 1
        if args.once or (samples is not None and cycle >= len(samples)):
            return 1 if failed else 0
        if samples is None:
            # The next cycle starts on the interval's grid, however long this one's commands took.
            time.sleep(interval - (time.monotonic() - start) % interval)


if __name__ == "__main__":
    sys.exit(main())
