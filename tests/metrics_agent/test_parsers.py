"""Unit tests of the metrics agent's pure layer (src/render/metrics_agent.py), on outputs in the formats the hosts
print: libreswan 4 and 5 (`ipsec whack --showstates`/`--trafficstatus`), iputils and BusyBox ping, iproute2's JSON,
ENA's `ethtool -S`. Run by tests/metrics_agent.rs: `python3 -m unittest discover -s tests/metrics_agent`."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "render"))
import metrics_agent as agent  # noqa: E402

CONN = "vpclink-golden"
CFG = {
    "link": "golden", "side": "east", "region": "eu-west-1", "namespace": "vpclink", "endpoint_url": None,
    "gre_dev": "vpclink-gre", "peer_inner": "169.254.248.2", "uplink": "ens5", "conn": CONN, "interval_s": 60,
}

# libreswan 4.x (AL2023's 4.12, Debian 12's 4.10): every line carries a status code.
SHOWSTATES_4 = """\
000 #1: "vpclink-golden":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 27869s; REPLACE in 28797s; newest; idle;
000 #2: "vpclink-golden":4500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); REKEY in 3303s; REPLACE in 3573s; newest; eroute owner; IKE SA #1; idle;
000 #2: "vpclink-golden" esp.8a1b2c3d@203.0.113.10 esp.c0ffee01@10.0.0.10 tun.0@203.0.113.10 tun.0@10.0.0.10 Traffic: ESPin=1KB ESPout=1KB ESPmax=2^63B
"""
# libreswan 5.x (Debian 13's 5.2): no status code, no STATE_V2_ prefix.
SHOWSTATES_5 = """\
#5: "vpclink-golden":4500 ESTABLISHED_CHILD_SA (established Child SA); REKEY in 10284s; REPLACE in 11212s; newest; eroute owner; IKE SA #6; idle;
#6: "vpclink-golden":4500 ESTABLISHED_IKE_SA (established IKE SA); REKEY in 10219s; REPLACE in 11255s; newest; idle;
"""
SHOWSTATES_RETRYING = """\
000 #4: "vpclink-golden":500 STATE_V2_PARENT_I1 (sent IKE_SA_INIT request); RETRANSMIT in 15s; idle;
000 #4: pending CHILD SA for "vpclink-golden"
"""
TRAFFIC_4 = """\
006 #2: "vpclink-golden", type=ESP, add_time=1790964715, inBytes=4644, outBytes=4712, id='@west'
"""
TRAFFIC_5 = """\
#2: "vpclink-golden", type=ESP, add_time=1790967726, inBytes=46572, outBytes=15037832, maxBytes=2^63B, id='@west'
"""

PING_OK = """\
PING 169.254.248.2 (169.254.248.2) from 169.254.248.1 vpclink-gre: 56(84) bytes of data.

--- 169.254.248.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.403/0.433/0.450/0.023 ms
"""
PING_LOST = """\
PING 169.254.248.2 (169.254.248.2) from 169.254.248.1 vpclink-gre: 56(84) bytes of data.

--- 169.254.248.2 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2050ms

"""
PING_BUSYBOX = """\
PING 169.254.248.2 (169.254.248.2): 56 data bytes

--- 169.254.248.2 ping statistics ---
3 packets transmitted, 2 packets received, 33% packet loss
round-trip min/avg/max = 1.100/1.250/1.400 ms
"""


def ip_link(up=True, rx=(1000, 10), tx=(2000, 20), name="vpclink-gre"):
    flags = ["POINTOPOINT", "NOARP"] + (["UP", "LOWER_UP"] if up else [])
    return json.dumps([{
        "ifindex": 7, "ifname": name, "link": None, "flags": flags, "mtu": 1400, "qdisc": "noqueue",
        "operstate": "UNKNOWN", "linkmode": "DEFAULT", "group": "default", "link_type": "gre",
        "address": "198.51.100.10", "link_pointtopoint": True, "broadcast": "203.0.113.10",
        "stats64": {
            "rx": {"bytes": rx[0], "packets": rx[1], "errors": 0, "dropped": 0, "over_errors": 0, "multicast": 0},
            "tx": {"bytes": tx[0], "packets": tx[1], "errors": 0, "dropped": 0, "carrier_errors": 0,
                   "collisions": 0},
        },
    }])


def ethtool(bw_in=0, bw_out=0, pps=0, ct=0, ll=0):
    return """NIC statistics:
     tx_timeout: 0
     suspend: 0
     resume: 0
     wd_expired: 0
     interface_up: 1
     interface_down: 0
     admin_q_pause: 0
     bw_in_allowance_exceeded: %d
     bw_out_allowance_exceeded: %d
     pps_allowance_exceeded: %d
     conntrack_allowance_exceeded: %d
     linklocal_allowance_exceeded: %d
     conntrack_allowance_available: 130000
     queue_0_tx_cnt: 5413
""" % (bw_in, bw_out, pps, ct, ll)


def names(datums):
    return [d[0] for d in datums]


def value(datums, name):
    found = [v for n, v, _ in datums if n == name]
    assert len(found) == 1, (name, datums)
    return found[0]


class Parsers(unittest.TestCase):
    def test_ike_sa_in_libreswan_4_and_5(self):
        self.assertTrue(agent.parse_ike_up(SHOWSTATES_4, CONN))
        self.assertTrue(agent.parse_ike_up(SHOWSTATES_5, CONN))
        self.assertFalse(agent.parse_ike_up(SHOWSTATES_RETRYING, CONN))
        self.assertFalse(agent.parse_ike_up(None, CONN))
        # Another connection's SA is not ours, even when its name starts with ours.
        self.assertFalse(agent.parse_ike_up(SHOWSTATES_5.replace('"vpclink-golden"', '"vpclink-golden2"'), CONN))
        self.assertFalse(agent.parse_ike_up(SHOWSTATES_4, "vpclink-other"))

    def test_esp_sa_in_libreswan_4_and_5(self):
        self.assertTrue(agent.parse_esp_up(TRAFFIC_4, CONN))
        self.assertTrue(agent.parse_esp_up(TRAFFIC_5, CONN))
        self.assertFalse(agent.parse_esp_up("", CONN))
        self.assertFalse(agent.parse_esp_up(TRAFFIC_5, "vpclink-gold"))

    def test_ping(self):
        self.assertEqual(agent.parse_ping(PING_OK), (3, 0.433))
        self.assertEqual(agent.parse_ping(PING_LOST), (0, None))
        self.assertEqual(agent.parse_ping(PING_BUSYBOX), (2, 1.25))
        self.assertEqual(agent.parse_ping(None), (0, None))

    def test_ip_link(self):
        got = agent.parse_ip_link(ip_link(), "vpclink-gre")
        self.assertEqual(got, {"up": True, "rx_bytes": 1000, "rx_packets": 10, "tx_bytes": 2000, "tx_packets": 20})
        self.assertFalse(agent.parse_ip_link(ip_link(up=False), "vpclink-gre")["up"])
        self.assertIsNone(agent.parse_ip_link(ip_link(name="eth0"), "vpclink-gre"))
        self.assertIsNone(agent.parse_ip_link("Device \"vpclink-gre\" does not exist.", "vpclink-gre"))
        self.assertIsNone(agent.parse_ip_link(None, "vpclink-gre"))

    def test_conntrack(self):
        self.assertEqual(agent.parse_conntrack("512\n", "262144\n"), (512, 100.0 * 512 / 262144))
        self.assertIsNone(agent.parse_conntrack(None, None))
        self.assertIsNone(agent.parse_conntrack("5", "0"))

    def test_ethtool_only_what_the_driver_shows(self):
        self.assertEqual(agent.parse_ethtool(ethtool(1, 2, 3, 4, 5)), {
            "BwInAllowanceExceeded": 1, "BwOutAllowanceExceeded": 2, "PpsAllowanceExceeded": 3,
            "ConntrackAllowanceExceeded": 4, "LinklocalAllowanceExceeded": 5,
        })
        # virtio_net (a lab guest, a non-ENA instance): no allowance counters, so none are published.
        self.assertEqual(agent.parse_ethtool("NIC statistics:\n     rx_queue_0_packets: 77\n"), {})
        self.assertEqual(agent.parse_ethtool(None), {})

    def test_counter_delta_and_reset(self):
        self.assertIsNone(agent.counter_delta(None, 10))
        self.assertEqual(agent.counter_delta(10, 25), 15)
        self.assertEqual(agent.counter_delta(25, 25), 0)
        # Reset (GRE device recreated by up.sh, driver reloaded): the counter restarted from zero.
        self.assertEqual(agent.counter_delta(1000, 40), 40)


class Cycles(unittest.TestCase):
    def readings(self, **kw):
        r = {"ip_link": ip_link(), "showstates": SHOWSTATES_5, "trafficstatus": TRAFFIC_5, "ping": PING_OK,
             "conntrack_count": "512\n", "conntrack_max": "262144\n", "ethtool": ethtool()}
        r.update(kw)
        return r

    def test_first_cycle_has_no_deltas_second_has_them(self):
        first, counters = agent.cycle_datums(CFG, self.readings(), {})
        self.assertEqual(names(first), ["TunnelUp", "IkeSaUp", "EspSaUp", "TunnelRtt", "ConntrackEntries",
                                        "ConntrackUse"])
        self.assertEqual(value(first, "TunnelUp"), 1)
        self.assertEqual(value(first, "TunnelRtt"), 0.433)
        second, _ = agent.cycle_datums(
            CFG, self.readings(ip_link=ip_link(rx=(1500, 14), tx=(2600, 26)), ethtool=ethtool(bw_out=7)), counters)
        self.assertEqual(value(second, "BytesFromPeer"), 500)
        self.assertEqual(value(second, "BytesToPeer"), 600)
        self.assertEqual(value(second, "PacketsFromPeer"), 4)
        self.assertEqual(value(second, "PacketsToPeer"), 6)
        self.assertEqual(value(second, "BwOutAllowanceExceeded"), 7)
        self.assertEqual(value(second, "BwInAllowanceExceeded"), 0)
        units = {n: u for n, _, u in second}
        self.assertEqual(units["BytesToPeer"], "Bytes")
        self.assertEqual(units["PacketsToPeer"], "Count")
        self.assertEqual(units["TunnelRtt"], "Milliseconds")
        self.assertEqual(units["ConntrackUse"], "Percent")
        self.assertEqual(units["TunnelUp"], "None")

    def test_tunnel_down_when_the_peer_does_not_answer_or_the_device_is_down(self):
        for kw in ({"ping": PING_LOST}, {"ping": None}, {"ip_link": ip_link(up=False)}, {"ip_link": None}):
            datums, _ = agent.cycle_datums(CFG, self.readings(**kw), {})
            self.assertEqual(value(datums, "TunnelUp"), 0, kw)
        datums, _ = agent.cycle_datums(CFG, self.readings(ping=PING_LOST), {})
        self.assertNotIn("TunnelRtt", names(datums))

    def test_pluto_down_means_no_sas(self):
        datums, _ = agent.cycle_datums(CFG, self.readings(showstates=None, trafficstatus=None), {})
        self.assertEqual((value(datums, "IkeSaUp"), value(datums, "EspSaUp")), (0, 0))

    def test_no_made_up_zeros(self):
        first, counters = agent.cycle_datums(CFG, self.readings(ethtool=None, conntrack_count=None), {})
        second, _ = agent.cycle_datums(CFG, self.readings(ethtool=None, conntrack_count=None), counters)
        for name in list(agent.ENA_ALLOWANCES.values()) + ["ConntrackEntries", "ConntrackUse"]:
            self.assertNotIn(name, names(second))
        # The GRE device vanished: no traffic figures, and the next reading starts over without a delta.
        third, counters = agent.cycle_datums(CFG, self.readings(ip_link=None), counters)
        self.assertNotIn("BytesToPeer", names(third))
        fourth, _ = agent.cycle_datums(CFG, self.readings(), counters)
        self.assertNotIn("BytesToPeer", names(fourth))

    def test_metric_data_carries_link_and_side(self):
        datums, _ = agent.cycle_datums(CFG, self.readings(), {})
        md = agent.metric_data(CFG, datums, "now")
        self.assertEqual(len(md), len(datums))
        for d in md:
            self.assertEqual(d["Dimensions"], [{"Name": "Link", "Value": "golden"}, {"Name": "Side", "Value": "east"}])
            self.assertIsInstance(d["Value"], float)
        self.assertEqual(agent.summary([("TunnelUp", 1, "None"), ("TunnelRtt", 0.5, "Milliseconds"),
                                        ("ConntrackUse", 100.0, "Percent")]),
                         "TunnelUp=1 TunnelRtt=0.5 ConntrackUse=100")


class Main(unittest.TestCase):
    def test_bad_config_exits_2_without_a_traceback(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"link": "x"}, f)
        try:
            self.assertEqual(agent.main(["--config", f.name, "--once"]), 2)
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
