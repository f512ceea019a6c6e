"""vpclink's strict layer: an HTTP proxy in front of LocalStack that passes everything through but, for the EC2
Query API, enforces behaviours that real AWS documents and the emulators skip (see localstack/README.md).

    python proxy.py --listen 127.0.0.1:4566 --backend 127.0.0.1:4567

Settings come from the environment at start (VPCLINK_STRICT_*), and per account from POST /_strict/config.
Every rule cites the AWS documentation it follows. Stdlib only.
"""
import argparse
import base64
import datetime
import http.client
import ipaddress
import json
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ec2xml  # noqa: E402
import route53  # noqa: E402
from ec2xml import error_body, items, parse, text  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length",
}
SCOPE_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
IGNORED_FOR_IDENTITY = {"Action", "Version", "ClientToken", "DryRun", "AWSAccessKeyId", "Signature",
                        "SignatureMethod", "SignatureVersion", "Timestamp", "Expires", "SecurityToken"}


# ---------------------------------------------------------------- settings and stats

def _env_num(name, default):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    return float(v) if "." in v else int(v)


DEFAULTS = {
    "throttle_percent": _env_num("VPCLINK_STRICT_THROTTLE_PERCENT", 3),
    "consistency_ms": _env_num("VPCLINK_STRICT_CONSISTENCY_MS", 1500),
    "stale_ms": _env_num("VPCLINK_STRICT_STALE_MS", 1500),
    "terminated_visible_s": _env_num("VPCLINK_STRICT_TERMINATED_VISIBLE_S", 3600),
    "eip_quota": _env_num("VPCLINK_STRICT_EIP_QUOTA", 5),
    "console_delay_s": _env_num("VPCLINK_STRICT_CONSOLE_DELAY_S", 3),
    "unoffered": {},
    # What the console of an instance launched through the proxy shows once console_delay_s has passed (a test sets
    # cloud-init's host key block here); empty: LocalStack's own canned console.
    "console_text": "",
    # How long after CreateInstanceProfile EC2 still refuses the profile (IAM is eventually consistent).
    "profile_propagation_ms": _env_num("VPCLINK_STRICT_PROFILE_PROPAGATION_MS", 2000),
}


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.global_settings = dict(DEFAULTS)
        self.account_settings = {}  # account -> {setting: value}
        self.stats = {"requests": 0, "ec2_requests": 0, "throttled": 0, "refusals": {}}
        self.account_stats = {}
        self.regions = {}  # (account, region) -> Region

    def setting(self, account, name):
        with self.lock:
            acct = self.account_settings.get(account, {})
            return acct[name] if name in acct else self.global_settings[name]

    def region(self, account, region):
        with self.lock:
            key = (account, region)
            if key not in self.regions:
                self.regions[key] = Region()
            return self.regions[key]

    def count(self, account, what, rule=None):
        with self.lock:
            for s in (self.stats, self.account_stats.setdefault(
                    account, {"requests": 0, "ec2_requests": 0, "throttled": 0, "refusals": {}})):
                if rule is None:
                    s[what] += 1
                else:
                    s["refusals"][rule] = s["refusals"].get(rule, 0) + 1


class Region:
    """Everything the proxy remembers for one (account, region)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.created = {}       # resource id -> monotonic time it was created through the proxy
        self.launched = {}      # instance id -> (monotonic launch time, instance type)
        self.terminated = {}    # instance id -> monotonic time of TerminateInstances
        self.deleted = {}       # resource key -> monotonic time of the delete
        self.describe_cache = {}  # (action, params) -> (monotonic time, body, keyset)
        self.tokens = {}        # (action, token) -> TokenEntry
        self.eip_lock = threading.Lock()
        self.profiles = {}      # instance id -> (association id, instance profile ARN): see "Instance profiles"


class TokenEntry:
    def __init__(self, params):
        self.params = params
        self.done = threading.Event()
        self.status = None
        self.body = None
        self.ctype = "text/xml"
        self.created = time.time()
        self.instance_ids = []
        self.terminated_at = None  # wall time when all its instances were terminated


STATE = State()


class Refusal(Exception):
    def __init__(self, rule, code, message, status=400):
        super().__init__(code)
        self.rule, self.code, self.message, self.status = rule, code, message, status


def now():
    return time.monotonic()


# ---------------------------------------------------------------- upstream

class Backend:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.local = threading.local()

    def request(self, method, path, body, headers, timeout=120):
        """One request upstream on this thread's keep-alive connection; retried once on a stale connection."""
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.local.conn = conn
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    self.local.conn = None
                return resp.status, resp.getheaders(), data
            except (http.client.HTTPException, ConnectionError, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


BACKEND = None


class Ctx:
    """One EC2 Query request."""

    def __init__(self, handler, account, region, form, pairs):
        self.handler = handler
        self.account, self.region_name = account, region
        self.form = form          # name -> first value
        self.pairs = pairs        # [(name, value)] in order
        self.action = form.get("Action", "")
        self.region = STATE.region(account, region)

    def s(self, name):
        return STATE.setting(self.account, name)

    def query(self, action, params):
        """The proxy's own Query request upstream, signed as the caller's (LocalStack reads the account from the key id)."""
        body = urllib.parse.urlencode([("Action", action), ("Version", self.form.get("Version", "2016-11-15"))]
                                      + list(params.items()))
        h = self.handler.headers
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                   "Authorization": h.get("Authorization", ""), "X-Amz-Date": h.get("X-Amz-Date", ""),
                   "Host": h.get("Host", "localhost")}
        status, _, data = BACKEND.request("POST", "/", body.encode(), headers)
        return status, parse(data)

    def flag(self, name):
        return self.form.get(name, "").lower() == "true"

    def indexed(self, prefix):
        """Values of PREFIX.1, PREFIX.2, ... (e.g. InstanceId.N)."""
        return [v for k, v in self.pairs if k.startswith(prefix + ".") and k[len(prefix) + 1:].isdigit()]

    def identity(self):
        return tuple(sorted((k, v) for k, v in self.pairs if k not in IGNORED_FOR_IDENTITY
                            and not k.lower().startswith("x-amz-")))


# ---------------------------------------------------------------- rules

# Rule: RequestLimitExceeded.
# https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html - "If you exceed an API throttling limit,
# you get the RequestLimitExceeded error code." EC2 throttles per account and Region; a random share here stands in
# for the token buckets. HTTP 503 as EC2 sends it (server-side code; the SDKs retry it with backoff).
def rule_throttle(ctx):
    pct = ctx.s("throttle_percent")
    if pct and random.random() * 100 < pct:
        STATE.count(ctx.account, "throttled")
        raise Refusal(None, "RequestLimitExceeded", "Request limit exceeded.", 503)


# Rule: InvalidKeyPair.Duplicate.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html - "InvalidKeyPair.Duplicate: The key
# pair name already exists. Key pair names must be unique." (ImportKeyPair, CreateKeyPair).
def rule_key_pair(ctx):
    name = ctx.form.get("KeyName")
    if not name:
        return
    status, root = ctx.query("DescribeKeyPairs", {"KeyName.1": name})
    if status == 200 and any(text(i, "keyName") == name for i in items(root, "keySet")):
        raise Refusal("key_pair_duplicate", "InvalidKeyPair.Duplicate", "The keypair '%s' already exists." % name)


# Rule: AddressLimitExceeded, 5 Elastic IP addresses per account and Region by default.
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html#using-instance-addressing-limit
# ("By default, all AWS accounts are limited to five (5) Elastic IP addresses per Region") and
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html - "AddressLimitExceeded: You've reached
# the limit on the number of Elastic IP addresses that you can allocate."
def rule_eip_quota(ctx):
    quota = ctx.s("eip_quota")
    status, root = ctx.query("DescribeAddresses", {})
    if status == 200 and len(items(root, "addressesSet")) >= quota:
        raise Refusal("eip_quota", "AddressLimitExceeded", "The maximum number of addresses has been reached.")


# Rule: routes in a gateway route table (one associated with an internet gateway or virtual private gateway).
# https://docs.aws.amazon.com/vpc/latest/userguide/gateway-route-tables.html#gateway-route-table-rules - "You can't add
# routes to any CIDR blocks outside of the ranges in your VPC, including ranges larger than the individual VPC CIDR
# blocks." and "You can't specify a prefix list as the destination." The page names no error code; we answer
# InvalidParameterValue ("a value specified in a parameter is not valid", errors-overview.html), as the console does.
def rule_gateway_route(ctx):
    rtb = ctx.form.get("RouteTableId")
    if not rtb:
        return
    status, root = ctx.query("DescribeRouteTables", {"RouteTableId.1": rtb})
    tables = items(root, "routeTableSet") if status == 200 else []
    if not tables:
        return
    table = tables[0]
    gateways = [text(a, "gatewayId") for a in items(table, "associationSet") if text(a, "gatewayId")]
    if not gateways:
        return
    if ctx.form.get("DestinationPrefixListId"):
        raise Refusal("gateway_route", "InvalidParameterValue",
                      "Route table %s is associated with gateway %s: a prefix list cannot be the destination of a "
                      "route in a gateway route table." % (rtb, gateways[0]))
    dest = ctx.form.get("DestinationCidrBlock")
    if not dest:
        return
    vpc = text(table, "vpcId")
    status, vroot = ctx.query("DescribeVpcs", {"VpcId.1": vpc})
    cidrs = []
    for v in items(vroot, "vpcSet"):
        cidrs.append(text(v, "cidrBlock"))
        cidrs += [text(a, "cidrBlock") for a in items(v, "cidrBlockAssociationSet")]
    try:
        net = ipaddress.ip_network(dest, strict=False)
        inside = any(c and net.version == 4 and net.subnet_of(ipaddress.ip_network(c, strict=False)) for c in cidrs)
    except ValueError:
        return  # malformed CIDRs are LocalStack's to refuse
    if not inside:
        raise Refusal("gateway_route", "InvalidParameterValue",
                      "The destination CIDR block %s is outside the CIDR ranges of %s; route table %s is associated "
                      "with gateway %s and accepts routes only to destinations inside the VPC." % (dest, vpc, rtb, gateways[0]))


# Rule: instance type offerings per Availability Zone.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html (offerings are per
# location) and https://repost.aws/knowledge-center/ec2-instance-type-not-supported-az-error (RunInstances answers
# "Unsupported: Your requested instance type (...) is not supported in your requested Availability Zone (...)").
def unoffered(ctx, zone, itype):
    return itype in (ctx.s("unoffered") or {}).get(zone, [])


def rule_run_instances_offering(ctx):
    itype = ctx.form.get("InstanceType")
    if not itype or not ctx.s("unoffered"):
        return
    zone = ctx.form.get("Placement.AvailabilityZone")
    subnet = ctx.form.get("SubnetId") or ctx.form.get("NetworkInterface.1.SubnetId")
    if not zone and subnet:
        status, root = ctx.query("DescribeSubnets", {"SubnetId.1": subnet})
        subnets = items(root, "subnetSet") if status == 200 else []
        zone = text(subnets[0], "availabilityZone") if subnets else None
    if zone and unoffered(ctx, zone, itype):
        raise Refusal("instance_type_offering", "Unsupported",
                      "Your requested instance type (%s) is not supported in your requested Availability Zone (%s). "
                      "Please retry your request by not specifying an Availability Zone or choosing another "
                      "Availability Zone." % (itype, zone))


def filter_offerings(ctx, root):
    if ctx.form.get("LocationType") != "availability-zone" or not ctx.s("unoffered"):
        return 0
    return ec2xml.remove_items(root, ["instanceTypeOfferingSet"],
                               lambda i: unoffered(ctx, text(i, "location"), text(i, "instanceType")))


# Rule: GetConsoleOutput.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html - "By default, the console output
# returns buffered information that was posted shortly after an instance transition state" (so nothing right after
# launch) and "You can optionally retrieve the latest serial console output ... supported on instance types that use
# the Nitro hypervisor." Xen types: https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-nitro-instances.html
# (the previous generation families below are Xen based). AWS documents no code for Latest on Xen; we answer
# UnsupportedOperation ("The instance ID or operation is not supported", errors-overview.html).
XEN_FAMILIES = {"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "d2", "g2", "g3", "p2",
                "p3", "x1", "x1e", "h1", "f1", "cc2", "cr1", "hs1", "hi1"}


def is_xen(itype):
    family, _, size = (itype or "").partition(".")
    if family == "i3":
        return size != "metal"
    if family == "p3" and itype.startswith("p3dn"):
        return False
    return family in XEN_FAMILIES


def rule_console_output(ctx):
    iid = ctx.form.get("InstanceId")
    with ctx.region.lock:
        launched = ctx.region.launched.get(iid)
    if ctx.flag("Latest"):
        itype = launched[1] if launched else None
        if itype is None:
            status, root = ctx.query("DescribeInstances", {"InstanceId.1": iid})
            for r in items(root, "reservationSet"):
                for i in items(r, "instancesSet"):
                    itype = text(i, "instanceType")
        if itype and is_xen(itype):
            raise Refusal("console_output", "UnsupportedOperation",
                          "The latest console output is only available on instance types built on the Nitro "
                          "System; %s is a Xen instance type." % itype)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    if launched and now() - launched[0] < ctx.s("console_delay_s"):
        STATE.count(ctx.account, None, "console_output_empty")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<GetConsoleOutputResponse xmlns="%s"><requestId>%s'
                "</requestId><instanceId>%s</instanceId><timestamp>%s</timestamp></GetConsoleOutputResponse>"
                % (ec2xml.EC2_NS, os.urandom(8).hex(), iid, stamp)).encode()
    console_text = ctx.s("console_text")
    if launched and console_text:
        output = base64.b64encode(console_text.encode()).decode()
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<GetConsoleOutputResponse xmlns="%s"><requestId>%s'
                "</requestId><instanceId>%s</instanceId><timestamp>%s</timestamp><output>%s</output>"
                "</GetConsoleOutputResponse>"
                % (ec2xml.EC2_NS, os.urandom(8).hex(), iid, stamp, output)).encode()
    return None


# Rule: DryRun.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/CommonParameters.html - DryRun "Checks whether you have the
# required permissions for the action, without actually making the request ... If you have the required permissions,
# the error response is DryRunOperation" and errors-overview.html ("DryRunOperation: The user has the required
# permissions, so the request would have succeeded, but the DryRun parameter was used."). LocalStack performs
# CreateRoute/DeleteRoute under DryRun, so the proxy answers mutating DryRun calls itself after its own checks, except
# those LocalStack is known to honour and validate further (FORWARD_DRY_RUN).
FORWARD_DRY_RUN = {"RunInstances"}
DRY_RUN_STATUS = 412  # what LocalStack (moto) answers DryRunOperation with; checked in test_dry_run_status_matches


def is_mutating(action):
    return not action.startswith(("Describe", "Get", "List", "Search"))


# Rule: ClientToken idempotency.
# https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html - "If you repeat a request with the same
# client token and the same parameters ... returns the result of the original"; "same client token, but one or more
# different parameters ... IdempotentParameterMismatch"; for RunInstances the token is remembered "for at least 24
# hours after the instance is terminated"; tokens are scoped per account and Region.
TOKEN_TTL_S = 24 * 3600


def token_expired(entry, wall):
    if entry.instance_ids:
        return entry.terminated_at is not None and wall - entry.terminated_at > TOKEN_TTL_S
    return wall - entry.created > TOKEN_TTL_S


# Rules: eventual consistency of Describe calls.
# https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html - "if you run a command to modify or
# describe the resource that you just created, its ID might not have propagated throughout the system, and you will get
# an error responding that the resource does not exist" (InvalidInstanceID.NotFound, InvalidGroup.NotFound, ...), and
# the result of any command "might not be immediately visible to all subsequent commands" (deletes included).
# Terminated instances: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/terminating-instances.html - "Terminated
# instances remain visible in the console for a short while (about an hour)".
HIDE = {
    # action: (id parameter, NotFound code, message, remove(root, hidden_pred) )
    "DescribeInstances": ("InstanceId", "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist"),
    "DescribeSecurityGroups": ("GroupId", "InvalidGroup.NotFound", "The security group '%s' does not exist"),
    "DescribeAddresses": ("AllocationId", "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist"),
    "DescribeNetworkInterfaces": ("NetworkInterfaceId", "InvalidNetworkInterfaceID.NotFound",
                                  "The networkInterface ID '%s' does not exist"),
}


def remove_hidden(action, root, hidden):
    if action == "DescribeInstances":
        n = 0
        for r in items(root, "reservationSet"):
            n += ec2xml.remove_items(r, ["instancesSet"], lambda i: hidden(text(i, "instanceId")))
        ec2xml.remove_items(root, ["reservationSet"], lambda r: not items(r, "instancesSet"))
        return n
    path, key = {"DescribeSecurityGroups": ("securityGroupInfo", "groupId"),
                 "DescribeAddresses": ("addressesSet", "allocationId"),
                 "DescribeNetworkInterfaces": ("networkInterfaceSet", "networkInterfaceId")}[action]
    return ec2xml.remove_items(root, [path], lambda i: hidden(text(i, key)))


def hidden_fn(ctx):
    fresh_s = ctx.s("consistency_ms") / 1000.0
    gone_s = ctx.s("terminated_visible_s")
    t = now()
    reg = ctx.region

    def hidden(rid):
        if rid is None:
            return None
        with reg.lock:
            c = reg.created.get(rid)
            if c is not None and t - c < fresh_s:
                return "consistency"
            d = reg.terminated.get(rid)
            if d is not None and t - d >= gone_s:
                return "terminated_visibility"
        return None
    return hidden


# Stale reads after deletes: keys a Describe response shows, as (resource key, detail).
def describe_keys(action, root):
    keys = set()
    if action == "DescribeSecurityGroups":
        keys = {(text(i, "groupId"), "") for i in items(root, "securityGroupInfo")}
    elif action == "DescribeAddresses":
        for i in items(root, "addressesSet"):
            keys |= {(text(i, "allocationId"), ""), (text(i, "publicIp"), "")}
    elif action == "DescribeKeyPairs":
        for i in items(root, "keySet"):
            keys |= {(text(i, "keyName"), ""), (text(i, "keyPairId"), "")}
    elif action == "DescribeRouteTables":
        for t in items(root, "routeTableSet"):
            for r in items(t, "routeSet"):
                dest = text(r, "destinationCidrBlock") or text(r, "destinationIpv6CidrBlock") or text(r, "destinationPrefixListId")
                keys.add(("%s|%s" % (text(t, "routeTableId"), dest), ""))
    elif action == "DescribeInstances":
        for r in items(root, "reservationSet"):
            for i in items(r, "instancesSet"):
                keys.add((text(i, "instanceId"), text(i, "instanceState", "name") or ""))
    keys.discard((None, ""))
    return keys


STALE_ACTIONS = {"DescribeSecurityGroups", "DescribeAddresses", "DescribeKeyPairs", "DescribeRouteTables",
                 "DescribeInstances"}


def deleted_keys(ctx):
    f, a = ctx.form, ctx.action
    if a == "DeleteSecurityGroup":
        return [f.get("GroupId") or f.get("GroupName")]
    if a == "ReleaseAddress":
        return [f.get("AllocationId") or f.get("PublicIp")]
    if a == "DeleteKeyPair":
        return [f.get("KeyName") or f.get("KeyPairId")]
    if a == "DeleteRoute":
        dest = f.get("DestinationCidrBlock") or f.get("DestinationIpv6CidrBlock") or f.get("DestinationPrefixListId")
        return ["%s|%s" % (f.get("RouteTableId"), dest)]
    if a == "TerminateInstances":
        return ctx.indexed("InstanceId")
    return []


# ---------------------------------------------------------------- the EC2 pipeline


# ---------------------------------------------------------------- instance profiles
# LocalStack's IAM keeps its own store, which its EC2 (moto) does not read: RunInstances naming an instance profile
# fails there with NoSuchEntity, and AssociateIamInstanceProfile likewise. This layer looks the profile up in
# LocalStack's IAM, launches without it, and keeps the association itself, answering for it where EC2 would:
# RunInstances' and DescribeInstances' iamInstanceProfile, Associate/Describe/DisassociateIamInstanceProfile(s).
#
# Rule: a new instance profile is refused for a while. IAM is eventually consistent: "Changes that I make are not
# always immediately visible" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency),
# and AddRoleToInstanceProfile: "You must then wait for the change to appear across all of AWS because of eventual
# consistency" (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html). EC2 answers
# a profile it cannot see yet with InvalidParameterValue "... Invalid IAM Instance Profile name" (the code and text
# tools such as kops and the Terraform AWS provider retry on). Here: for profile_propagation_ms after its CreateDate.

def iam_profile(ctx, ref):
    """(arn, id, wall-clock creation time) of the instance profile named or ARN'd by ref, from LocalStack's IAM; None
    when it does not exist."""
    name = ref.rsplit("/", 1)[-1]
    body = urllib.parse.urlencode([("Action", "GetInstanceProfile"), ("Version", "2010-05-08"),
                                   ("InstanceProfileName", name)])
    h = ctx.handler.headers
    auth = re.sub(r"/ec2/aws4_request", "/iam/aws4_request", h.get("Authorization", ""))
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Authorization": auth,
               "X-Amz-Date": h.get("X-Amz-Date", ""), "Host": h.get("Host", "localhost")}
    status, _, data = BACKEND.request("POST", "/", body.encode(), headers)
    root = parse(data)
    if status != 200 or root is None:
        return None
    # The profile's own fields come before its roles' (InstanceProfile/Arn, then Roles/member/Arn): first wins.
    found = {}
    for e in root.iter():
        if ec2xml.local(e.tag) in ("Arn", "InstanceProfileId", "CreateDate"):
            found.setdefault(ec2xml.local(e.tag), e.text)
    arn = found.get("Arn")
    if arn is None or ("/" + name) not in arn:
        return None
    created = found.get("CreateDate") or ""
    try:
        wall = datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        wall = 0.0
    return arn, found.get("InstanceProfileId") or "AIPA" + name.upper()[:16], wall


def rule_instance_profile(ctx):
    """The instance profile RunInstances names, checked as EC2 would; None when it names none."""
    by_arn = ctx.form.get("IamInstanceProfile.Arn")
    ref = by_arn or ctx.form.get("IamInstanceProfile.Name")
    if not ref:
        return None
    return checked_profile(ctx, ref, bool(by_arn))


def checked_profile(ctx, ref, by_arn):
    found = iam_profile(ctx, ref)
    young = found is not None and (time.time() - found[2]) * 1000 < ctx.s("profile_propagation_ms")
    if found is None or young:
        raise Refusal("iam_profile_propagation" if young else None, "InvalidParameterValue",
                      "Value (%s) for parameter iamInstanceProfile.%s is invalid. Invalid IAM Instance Profile %s"
                      % (ref, "arn" if by_arn else "name", "ARN" if by_arn else "name"))
    return found


def new_association(ctx, iid, profile):
    assoc = "iip-assoc-%017x" % random.getrandbits(68)
    with ctx.region.lock:
        ctx.region.profiles[iid] = (assoc, profile[0], profile[1])
    return assoc


def launch_with_profile(ctx, profile):
    """forward() for a RunInstances naming a profile: upstream without it; the answer shows it as EC2's would."""
    pairs = [(k, v) for k, v in ctx.pairs if not k.startswith("IamInstanceProfile.")]
    h = ctx.handler.headers
    headers = {k: v for k, v in h.items() if k.lower() not in HOP_BY_HOP}

    def forward():
        status, rheaders, data = BACKEND.request("POST", ctx.handler.path, urllib.parse.urlencode(pairs).encode(),
                                                 headers)
        root = parse(data)
        if status != 200 or root is None:
            return status, rheaders, data
        for i in items(root, "instancesSet"):
            new_association(ctx, text(i, "instanceId"), profile)
            add_profile_element(i, profile[0], profile[1])
        return status, rheaders, ec2xml.serialize(root)
    return forward


def add_profile_element(instance, arn, pid):
    for old in [c for c in instance if ec2xml.local(c.tag) == "iamInstanceProfile"]:
        instance.remove(old)
    ns = "{%s}" % ec2xml.EC2_NS
    el = ET.SubElement(instance, ns + "iamInstanceProfile")
    ET.SubElement(el, ns + "arn").text = arn
    ET.SubElement(el, ns + "id").text = pid


def show_profiles(ctx, body):
    root = parse(body)
    if root is None:
        return body
    with ctx.region.lock:
        known = dict(ctx.region.profiles)
    changed = False
    for r in items(root, "reservationSet"):
        for i in items(r, "instancesSet"):
            entry = known.get(text(i, "instanceId"))
            if entry:
                add_profile_element(i, entry[1], entry[2])
                changed = True
    return ec2xml.serialize(root) if changed else body


def association_xml(iid, entry, state):
    return ("<item><associationId>%s</associationId><instanceId>%s</instanceId><iamInstanceProfile><arn>%s</arn>"
            "<id>%s</id></iamInstanceProfile><state>%s</state></item>" % (entry[0], iid, entry[1], entry[2], state))


def profile_response(action, inner):
    return 200, [("Content-Type", "text/xml;charset=UTF-8")], (
        '<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>'
        % (action, ec2xml.EC2_NS, random.getrandbits(64), inner, action)).encode()


def associate_profile(ctx):
    iid = ctx.form.get("InstanceId", "")
    by_arn = ctx.form.get("IamInstanceProfile.Arn")
    profile = checked_profile(ctx, by_arn or ctx.form.get("IamInstanceProfile.Name", ""), bool(by_arn))
    status, root = ctx.query("DescribeInstances", {"InstanceId.1": iid})
    if status != 200 or not any(items(r, "instancesSet") for r in items(root, "reservationSet")):
        raise Refusal(None, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist" % iid)
    if ctx.flag("DryRun"):
        raise Refusal(None, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", DRY_RUN_STATUS)
    with ctx.region.lock:
        if iid in ctx.region.profiles:
            raise Refusal(None, "IncorrectState", "There is an existing association for instance %s" % iid)
        new_association(ctx, iid, profile)
        entry = ctx.region.profiles[iid]
    item = association_xml(iid, entry, "associating")
    return profile_response("AssociateIamInstanceProfile",
                            item.replace("<item>", "<iamInstanceProfileAssociation>", 1)
                            .replace("</item>", "</iamInstanceProfileAssociation>"))


def describe_profile_associations(ctx):
    wanted_ids = set(ctx.indexed("AssociationId"))
    instances = set()
    n = 1
    while ("Filter.%d.Name" % n) in ctx.form:
        if ctx.form["Filter.%d.Name" % n] == "instance-id":
            instances |= set(ctx.indexed("Filter.%d.Value" % n))
        n += 1
    with ctx.region.lock:
        known = dict(ctx.region.profiles)
    out = "".join(association_xml(iid, e, "associated") for iid, e in sorted(known.items())
                  if (not instances or iid in instances) and (not wanted_ids or e[0] in wanted_ids))
    return profile_response("DescribeIamInstanceProfileAssociations",
                            "<iamInstanceProfileAssociationSet>%s</iamInstanceProfileAssociationSet>" % out)


def disassociate_profile(ctx):
    assoc = ctx.form.get("AssociationId", "")
    with ctx.region.lock:
        found = [(iid, e) for iid, e in ctx.region.profiles.items() if e[0] == assoc]
        if not found:
            raise Refusal(None, "InvalidAssociationID.NotFound", "An invalid association-id of '%s' was given" % assoc)
        iid, entry = found[0]
        del ctx.region.profiles[iid]
    item = association_xml(iid, entry, "disassociating")
    return profile_response("DisassociateIamInstanceProfile",
                            item.replace("<item>", "<iamInstanceProfileAssociation>", 1)
                            .replace("</item>", "</iamInstanceProfileAssociation>"))


PROFILE_ACTIONS = {
    "AssociateIamInstanceProfile": associate_profile,
    "DescribeIamInstanceProfileAssociations": describe_profile_associations,
    "DisassociateIamInstanceProfile": disassociate_profile,
}


def handle_ec2(ctx, forward):
    """Returns (status, headers, body). forward() sends the original request upstream."""
    STATE.count(ctx.account, "ec2_requests")
    action = ctx.action
    rule_throttle(ctx)

    dry = ctx.flag("DryRun")
    if action in ("ImportKeyPair", "CreateKeyPair"):
        rule_key_pair(ctx)
    if action in ("CreateRoute", "ReplaceRoute"):
        rule_gateway_route(ctx)
    if action == "RunInstances":
        rule_run_instances_offering(ctx)
        profile = rule_instance_profile(ctx)
        if profile:
            forward = launch_with_profile(ctx, profile)
    if action in PROFILE_ACTIONS:
        return PROFILE_ACTIONS[action](ctx)
    if action == "GetConsoleOutput" and not dry:
        body = rule_console_output(ctx)
        if body is not None:
            return 200, [("Content-Type", "text/xml")], body
    if action == "AllocateAddress" and not dry:
        with ctx.region.eip_lock:  # serialise quota check and allocation per account and Region
            rule_eip_quota(ctx)
            return after(ctx, *forward())
    if action == "AllocateAddress":
        rule_eip_quota(ctx)
    if dry and is_mutating(action) and action not in FORWARD_DRY_RUN:
        STATE.count(ctx.account, None, "dry_run")
        raise Refusal(None, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", DRY_RUN_STATUS)
    token = ctx.form.get("ClientToken")
    if token and not dry:
        return with_token(ctx, token, forward)
    return after(ctx, *forward())


def with_token(ctx, token, forward):
    key = (ctx.action, token)
    ident = ctx.identity()
    reg = ctx.region
    for _ in range(3):
        with reg.lock:
            entry = reg.tokens.get(key)
            if entry is not None and entry.done.is_set() and token_expired(entry, time.time()):
                del reg.tokens[key]
                entry = None
            mine = entry is None
            if mine:
                entry = reg.tokens[key] = TokenEntry(ident)
        if mine:
            try:
                status, headers, body = after(ctx, *forward())
            except BaseException:
                with reg.lock:
                    reg.tokens.pop(key, None)
                entry.done.set()
                raise
            if status == 200:
                entry.status, entry.body = status, body
                entry.ctype = dict((k.lower(), v) for k, v in headers).get("content-type", "text/xml")
                root = parse(body)
                if ctx.action == "RunInstances" and root is not None:
                    entry.instance_ids = [text(i, "instanceId") for i in items(root, "instancesSet")]
            else:
                with reg.lock:
                    reg.tokens.pop(key, None)
            entry.done.set()
            return status, headers, body
        if entry.params != ident:
            raise Refusal("idempotency", "IdempotentParameterMismatch",
                          "Client token '%s' was already used with different parameters; use a new client token "
                          "for a different request." % token)
        if not entry.done.wait(120):
            raise Refusal(None, "InternalError", "Timed out waiting for the original request with this client token.", 500)
        if entry.status == 200:
            STATE.count(ctx.account, None, "idempotent_replay")
            return 200, [("Content-Type", entry.ctype)], entry.body
        # the original failed and was forgotten: try again as the first
    raise Refusal(None, "InternalError", "Client token kept failing.", 500)


def after(ctx, status, headers, body):
    """Bookkeeping and response rewriting after the upstream answered."""
    action, reg = ctx.action, ctx.region
    if status != 200:
        return status, headers, body
    t = now()
    if action in ("RunInstances", "CreateSecurityGroup", "AllocateAddress", "CreateNetworkInterface",
                  "TerminateInstances") or is_delete(action):
        root = parse(body)
        with reg.lock:
            if action == "RunInstances":
                for i in items(root, "instancesSet"):
                    iid = text(i, "instanceId")
                    reg.created[iid] = t
                    reg.launched[iid] = (t, text(i, "instanceType"))
                    for eni in items(i, "networkInterfaceSet"):
                        reg.created[text(eni, "networkInterfaceId")] = t
            elif action == "CreateSecurityGroup":
                reg.created[text(root, "groupId")] = t
            elif action == "AllocateAddress":
                reg.created[text(root, "allocationId")] = t
            elif action == "CreateNetworkInterface":
                reg.created[text(root, "networkInterface", "networkInterfaceId")] = t
            if action == "TerminateInstances":
                wall = time.time()
                ids = set(ctx.indexed("InstanceId"))
                for iid in ids:
                    reg.profiles.pop(iid, None)  # a terminated instance's association goes with it
                for iid in ids:
                    reg.terminated.setdefault(iid, t)
                for entry in reg.tokens.values():
                    if entry.instance_ids and set(entry.instance_ids) <= set(reg.terminated):
                        entry.terminated_at = entry.terminated_at or wall
            for k in deleted_keys(ctx):
                if k:
                    reg.deleted[k] = t
        return status, headers, body
    if not action.startswith("Describe"):
        return status, headers, body

    root = None
    changed = False
    if action in HIDE:
        param, code, msg = HIDE[action]
        hidden = hidden_fn(ctx)
        for rid in ctx.indexed(param):
            why = hidden(rid)
            if why:
                STATE.count(ctx.account, None, why)
                raise Refusal(None, code, msg % rid)
        root = parse(body)
        if root is not None:
            n = remove_hidden(action, root, hidden)
            if n:
                STATE.count(ctx.account, None, "consistency_filtered")
                changed = True
    if action == "DescribeInstanceTypeOfferings":
        root = parse(body)
        if root is not None and filter_offerings(ctx, root):
            changed = True
    if action == "DescribeAccountAttributes":
        root = parse(body)
        if root is not None and report_eip_quota(ctx, root):
            changed = True
    if changed:
        body = ec2xml.serialize(root)
    if action in STALE_ACTIONS:
        body = stale(ctx, root if root is not None else parse(body), body, t)
    if action == "DescribeInstances":
        body = show_profiles(ctx, body)
    return status, headers, body


def report_eip_quota(ctx, root):
    """DescribeAccountAttributes reports the quota this layer enforces as vpc-max-elastic-ips, as AWS reports the
    account's own (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAccountAttributes.html)."""
    changed = False
    for item in items(root, "accountAttributeSet"):
        if text(item, "attributeName") != "vpc-max-elastic-ips":
            continue
        for value in items(item, "attributeValueSet"):
            el = ec2xml.child(value, "attributeValue")
            if el is not None:
                el.text = str(int(ctx.s("eip_quota")))
                changed = True
    return changed


def is_delete(action):
    return action in ("DeleteSecurityGroup", "ReleaseAddress", "DeleteKeyPair", "DeleteRoute")


def stale(ctx, root, body, t):
    """Within stale_ms after a delete, a Describe that would no longer list the deleted resource still does."""
    if root is None:
        return body
    reg = ctx.region
    key = (ctx.action, ctx.identity())
    keys = describe_keys(ctx.action, root)
    window = ctx.s("stale_ms") / 1000.0
    with reg.lock:
        cached = reg.describe_cache.get(key)
        if cached and window > 0:
            ctime, cbody, ckeys = cached
            for rid, detail in ckeys - keys:
                d = reg.deleted.get(rid)
                if d is not None and ctime <= d and t - d < window:
                    STATE.count(ctx.account, None, "stale")
                    return cbody
        reg.describe_cache[key] = (t, body, keys)
    return body


# ---------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vpclink-strict"
    sys_version = ""

    def log_message(self, fmt, *args):
        if os.environ.get("VPCLINK_STRICT_LOG_REQUESTS"):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        # Small replies in two segments (headers, body) otherwise meet Nagle + delayed ACK: ~40 ms per request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, headers, body, head=False):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # headers and body in one write
        self._headers_buffer.append(b"\r\n")
        if not head:
            self._headers_buffer.append(body)
        self.flush_headers()

    def send_json(self, status, obj):
        self.send(status, [("Content-Type", "application/json")], json.dumps(obj, indent=1, sort_keys=True).encode())

    def handle_any(self):
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send(400, [("Content-Type", "text/plain")], b"bad request body\n")
            return
        STATE.count("-", "requests")
        path = urllib.parse.urlsplit(self.path)
        if path.path.startswith("/_strict/"):
            return self.control(path, body)

        def forward():
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
            return BACKEND.request(self.command, self.path, body if body or self.command in ("POST", "PUT") else None,
                                   dict(headers))

        try:
            ctx = self.ec2_ctx(body)
            scope = SCOPE_RE.search(self.headers.get("Authorization", ""))
            if ctx is None and scope and scope.group(3) == "route53":
                # Route 53's rules live in route53.py (REST-XML, not the EC2 Query API).
                try:
                    status, headers, data = route53.handle(
                        self.command, self.path, self.headers, body, scope.group(1), forward, BACKEND)
                except route53.Refusal as r:
                    STATE.count(scope.group(1), None, r.rule)
                    status, headers, data = r.status, [("Content-Type", "text/xml")], route53.error_body(r.code, r.message)
            elif ctx is None:
                status, headers, data = forward()
            else:
                try:
                    status, headers, data = handle_ec2(ctx, forward)
                except Refusal as r:
                    if r.rule:
                        STATE.count(ctx.account, None, r.rule)
                    status, headers, data = r.status, [("Content-Type", "text/xml;charset=UTF-8")], error_body(r.code, r.message)
        except (OSError, http.client.HTTPException) as e:
            status, headers, data = 502, [("Content-Type", "text/xml")], error_body(
                "ServiceUnavailable", "strict proxy: backend unreachable: %s" % e)
        self.send(status, headers, data, head=self.command == "HEAD")

    def ec2_ctx(self, body):
        if self.command != "POST":
            return None
        m = SCOPE_RE.search(self.headers.get("Authorization", ""))
        if not m or m.group(3) != "ec2":
            return None
        if "x-www-form-urlencoded" not in self.headers.get("Content-Type", ""):
            return None
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        form = {}
        for k, v in pairs:
            form.setdefault(k, v)
        if "Action" not in form:
            return None
        return Ctx(self, m.group(1), m.group(2), form, pairs)

    def control(self, path, body):
        q = urllib.parse.parse_qs(path.query)
        if path.path == "/_strict/stats" and self.command == "GET":
            acct = (q.get("account") or [None])[0]
            with STATE.lock:
                if acct:
                    s = STATE.account_stats.get(acct, {"requests": 0, "ec2_requests": 0, "throttled": 0, "refusals": {}})
                    return self.send_json(200, json.loads(json.dumps(s)))
                return self.send_json(200, json.loads(json.dumps(STATE.stats)))
        if path.path == "/_strict/config":
            if self.command == "GET":
                acct = (q.get("account") or [None])[0]
                with STATE.lock:
                    out = dict(STATE.global_settings)
                    if acct:
                        out.update(STATE.account_settings.get(acct, {}))
                return self.send_json(200, out)
            if self.command == "POST":
                try:
                    cfg = json.loads(body or b"{}")
                    acct = cfg.pop("account", None)
                    unknown = set(cfg) - set(DEFAULTS)
                    if unknown:
                        raise ValueError("unknown settings: %s" % ", ".join(sorted(unknown)))
                except ValueError as e:
                    return self.send_json(400, {"error": str(e)})
                with STATE.lock:
                    target = STATE.account_settings.setdefault(str(acct), {}) if acct else STATE.global_settings
                    target.update(cfg)
                return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": "unknown control endpoint"})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


def main():
    global BACKEND
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:4566")
    p.add_argument("--backend", default="127.0.0.1:4567")
    a = p.parse_args()
    lh, lp = a.listen.rsplit(":", 1)
    bh, bp = a.backend.rsplit(":", 1)
    BACKEND = Backend(bh, int(bp))
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer((lh, int(lp)), Handler)
    sys.stderr.write("strict proxy on %s -> %s, settings %s\n" % (a.listen, a.backend, json.dumps(DEFAULTS)))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
