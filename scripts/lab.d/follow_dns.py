"""The lab's VPC resolver: answers A queries from the Route 53 private hosted zones that LocalStack says are
associated with one VPC, as the Amazon-provided resolver at the VPC's base address + 2 does for a real VPC.

It follows the emulator, not the lab script: every poll (a few times a second) re-reads the zones associated with
the VPC and their A records, so what vpclink creates, changes or deletes through the Route 53 API is what the lab's
test hosts resolve. Names outside those zones are REFUSED (the lab has no internet to recurse to).
"""
import socket
import struct
import threading
import time

# RFC 1035 4.1.1: RCODEs; 4.1.2/3.2.2: QTYPE A = 1, CLASS IN = 1.
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
TYPE_A, CLASS_IN = 1, 1
TTL = 5


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def parse_query(msg):
    """(id, flags, qname lower-case without the final dot, qtype, qclass, end of question) or None."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack(">HHH", msg[:6])
    if qd != 1 or flags & 0x8000:  # exactly one question, and a query, not a response
        return None
    labels, i = [], 12
    while True:
        if i >= len(msg):
            return None
        n = msg[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(msg):  # no compression in a question we accept
            return None
        labels.append(msg[i : i + n].decode("ascii", "replace").lower())
        i += n
    if i + 4 > len(msg):
        return None
    qtype, qclass = struct.unpack(">HH", msg[i : i + 4])
    return qid, flags, ".".join(labels), qtype, qclass, i + 4


def answer(msg, q, rcode, addrs):
    qid, flags, _name, _qtype, _qclass, qend = q
    # QR=1, the query's opcode and RD, AA=1 (the zone's own answer), RA=0.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | rcode
    head = struct.pack(">HHHHHH", qid, out_flags, 1, len(addrs), 0, 0)
    body = msg[12:qend]
    for a in addrs:
        # A pointer to the question's name (offset 12), TYPE A, CLASS IN, TTL, RDLENGTH 4.
        body += struct.pack(">HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a)
    return head + body


class Zones:
    """The A records of the zones associated with the VPC, refreshed by poll()."""

    def __init__(self, r53, vpc, region):
        self.r53, self.vpc, self.region = r53, vpc, region
        self.lock = threading.Lock()
        self.zones = {}  # zone name -> {fqdn: [addresses]}

    def poll(self):
        zones = {}
        for page in self.r53.get_paginator("list_hosted_zones").paginate():
            for z in page["HostedZones"]:
                if not z.get("Config", {}).get("PrivateZone"):
                    continue
                vpcs = self.r53.get_hosted_zone(Id=z["Id"]).get("VPCs", [])
                if not any(v.get("VPCId") == self.vpc for v in vpcs):
                    continue
                records = {}
                for rpage in self.r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=z["Id"]):
                    for r in rpage["ResourceRecordSets"]:
                        if r["Type"] == "A":
                            name = r["Name"].rstrip(".").lower()
                            records[name] = [v["Value"] for v in r.get("ResourceRecords", [])]
                zones[z["Name"].rstrip(".").lower()] = records
        with self.lock:
            changed = {k: len(v) for k, v in zones.items()} != {k: len(v) for k, v in self.zones.items()}
            self.zones = zones
        if changed:
            log("dns zones for", self.vpc, {k: len(v) for k, v in zones.items()})

    def lookup(self, name):
        """(rcode, addresses) for an A query."""
        with self.lock:
            for zone, records in self.zones.items():
                if name == zone or name.endswith("." + zone):
                    if name in records:
                        return NOERROR, records[name]
                    return NXDOMAIN, []
        return REFUSED, []


def serve(sock, zones, poll_interval):
    """Poll Route 53 in a thread; answer queries on sock forever."""

    def follow():
        last_error = None
        while True:
            try:
                zones.poll()
                if last_error:
                    log("route53 answering again")
                last_error = None
            except Exception as e:  # keep serving the last answer; say so once
                if str(e) != last_error:
                    log("route53 poll failed:", e)
                last_error = str(e)
            time.sleep(poll_interval)

    threading.Thread(target=follow, daemon=True).start()
    while True:
        msg, peer = sock.recvfrom(4096)
        q = parse_query(msg)
        if q is None:
            continue
        _qid, _flags, name, qtype, qclass, _end = q
        if qclass != CLASS_IN:
            sock.sendto(answer(msg, q, REFUSED, []), peer)
            continue
        rcode, addrs = zones.lookup(name)
        # A name that exists has no records of other types here: NOERROR with no answer (NODATA).
        if qtype != TYPE_A:
            addrs = []
        sock.sendto(answer(msg, q, rcode, addrs), peer)
        log(f"dns {peer[0]} {name} type {qtype}: rcode {rcode} {addrs}")
