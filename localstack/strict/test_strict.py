"""Tests of the strict layer (localstack/strict/proxy.py), with boto3 against proxy + LocalStack.

    localstack/strict/test            (or: localstack/run python -m unittest discover -s localstack/strict -v)

Uses VPCLINK_LOCALSTACK_URL when set (it must be a strict proxy); otherwise starts its own pair with
`localstack/run start` on free ports and stops it afterwards. Every test uses a fresh random 12-digit account.
"""
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(os.path.dirname(HERE), "run")
sys.path.insert(0, HERE)
import proxy  # noqa: E402  (for the clock-based unit checks only)

URL = None
STARTED_PORT = None
KEY = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl strict-test"


def free_port_pair():
    for _ in range(50):
        p = random.randint(20000, 60000)
        ok = True
        for q in (p, p + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            return p
    raise RuntimeError("no free port pair")


def setUpModule():
    global URL, STARTED_PORT
    URL = os.environ.get("VPCLINK_LOCALSTACK_URL")
    if not URL:
        STARTED_PORT = free_port_pair()
        env = dict(os.environ, VPCLINK_LOCALSTACK_PORT=str(STARTED_PORT), VPCLINK_STRICT="1")
        t = time.monotonic()
        subprocess.run([RUN, "start"], env=env, check=True, timeout=180)
        sys.stderr.write("[strict tests] proxy+LocalStack started on %d in %.1f s\n" % (STARTED_PORT, time.monotonic() - t))
        URL = "http://127.0.0.1:%d" % STARTED_PORT
    with urllib.request.urlopen(URL + "/_strict/config", timeout=5) as r:
        json.load(r)  # fails when URL is not a strict proxy


def tearDownModule():
    if STARTED_PORT:
        env = dict(os.environ, VPCLINK_LOCALSTACK_PORT=str(STARTED_PORT))
        subprocess.run([RUN, "stop"], env=env, timeout=60)
        cache = os.environ.get("VPCLINK_CACHE_DIR") or os.path.join(os.path.dirname(os.path.dirname(HERE)), ".cache")
        shutil.rmtree(os.path.join(cache, "localstack-%d" % STARTED_PORT), ignore_errors=True)


def control(path, obj=None):
    data = json.dumps(obj).encode() if obj is not None else None
    req = urllib.request.Request(URL + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


class Account:
    """A fresh account with its own strict settings (no random throttling unless asked)."""

    def __init__(self, **settings):
        self.id = str(random.randint(10 ** 11, 10 ** 12 - 1))
        control("/_strict/config", dict({"account": self.id, "throttle_percent": 0}, **settings))
        self.ec2 = self.client("ec2")

    def client(self, service, region="us-east-1", attempts=1):
        return boto3.client(service, endpoint_url=URL, region_name=region, aws_access_key_id=self.id,
                            aws_secret_access_key="test",
                            config=botocore.config.Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                                                          read_timeout=60, connect_timeout=10))

    def stats(self):
        return control("/_strict/stats?account=" + self.id)

    def network(self, cidr="10.0.0.0/16", subnet="10.0.1.0/24", zone="us-east-1a"):
        vpc = self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        sub = self.ec2.create_subnet(VpcId=vpc, CidrBlock=subnet, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        return vpc, sub

    def ami(self):
        return self.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


class StrictTest(unittest.TestCase):
    def assertCode(self, code, fn, status=None):
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            fn()
        self.assertEqual(cm.exception.response["Error"]["Code"], code, cm.exception.response["Error"])
        if status:
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], status)
        return cm.exception.response

    def wait_until(self, fn, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(0.2)

    # ------------------------------------------------------------ pass-through

    def test_passthrough_vpc_sts_health(self):
        a = Account(consistency_ms=0)
        vpc = a.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        got = a.ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
        self.assertEqual([v["CidrBlock"] for v in got], ["10.9.0.0/16"])
        self.assertEqual(a.client("sts").get_caller_identity()["Account"], a.id)
        with urllib.request.urlopen(URL + "/_localstack/health", timeout=5) as r:
            self.assertIn(json.load(r)["services"]["ec2"], ("available", "running"))

    def test_non_ec2_never_throttled(self):
        a = Account(throttle_percent=100)
        for _ in range(5):
            self.assertEqual(a.client("sts").get_caller_identity()["Account"], a.id)
        a.client("ssm").describe_parameters()
        self.assertEqual(a.stats()["throttled"], 0)

    def test_keep_alive_and_content_length(self):
        """Several requests on one HTTP/1.1 connection, refusals included, each with a Content-Length."""
        a = Account(throttle_percent=100)
        conn = http.client.HTTPConnection("127.0.0.1", int(URL.rsplit(":", 1)[1]), timeout=10)
        auth = "AWS4-HMAC-SHA256 Credential=%s/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0" % a.id
        for i in range(3):
            conn.request("POST", "/", body="Action=DescribeVpcs&Version=2016-11-15",
                         headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            body = r.read()
            self.assertEqual(r.status, 503)
            self.assertEqual(int(r.getheader("Content-Length")), len(body))
            self.assertIn(b"<Code>RequestLimitExceeded</Code>", body)
            self.assertIn(b"<RequestID>", body)
            conn.request("GET", "/_localstack/health")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(int(r.getheader("Content-Length")), len(r.read()))
        conn.close()

    def test_twenty_concurrent_requests(self):
        a = Account(consistency_ms=0)
        vpc, sub = a.network()

        def one(i):
            c = a.client("ec2")
            if i % 2:
                return c.create_security_group(GroupName="g%d" % i, Description="d", VpcId=vpc)["GroupId"]
            return len(c.describe_vpcs(VpcIds=[vpc])["Vpcs"])

        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            results = list(pool.map(one, range(20), timeout=60))
        self.assertLess(time.monotonic() - t, 60)
        self.assertEqual([r for r in results if r == 1], [1] * 10)
        groups = a.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
        self.assertEqual(len([g for g in groups if g["GroupName"].startswith("g")]), 10)

    # ------------------------------------------------------------ throttling

    def test_throttle_request_limit_exceeded(self):
        a = Account(throttle_percent=100)
        self.assertCode("RequestLimitExceeded", lambda: a.ec2.describe_vpcs(), 503)
        self.assertCode("RequestLimitExceeded", lambda: a.ec2.create_vpc(CidrBlock="10.0.0.0/16", DryRun=True), 503)
        self.assertEqual(a.stats()["throttled"], 2)
        control("/_strict/config", {"account": a.id, "throttle_percent": 0})
        self.assertEqual(a.ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.0.0.0/16"]}])["Vpcs"], [])

    def test_throttle_is_retried_by_sdk(self):
        a = Account(throttle_percent=20)
        c = a.client("ec2", attempts=6)
        for _ in range(6):
            c.describe_vpcs()  # each call succeeds in the end
        s = a.stats()
        self.assertEqual(s["throttled"], s["ec2_requests"] - 6)  # every extra attempt was a throttled one

    # ------------------------------------------------------------ DryRun

    def test_dry_run_create_and_delete_route_change_nothing(self):
        a = Account(consistency_ms=0)
        vpc, sub = a.network()
        rtb = a.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        igw = a.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        a.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)

        def routes():
            rt = a.ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
            return sorted(r.get("DestinationCidrBlock") for r in rt["Routes"])

        before = routes()
        self.assertCode("DryRunOperation", lambda: a.ec2.create_route(
            DryRun=True, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw), 412)
        self.assertEqual(routes(), before)
        a.ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        self.assertCode("DryRunOperation", lambda: a.ec2.delete_route(
            DryRun=True, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0"), 412)
        self.assertIn("0.0.0.0/0", routes())
        self.assertCode("DryRunOperation", lambda: a.ec2.create_vpc(DryRun=True, CidrBlock="10.77.0.0/16"))
        self.assertEqual(a.ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.77.0.0/16"]}])["Vpcs"], [])

    def test_dry_run_status_matches_localstack(self):
        """The proxy's own DryRunOperation (CreateTags is answered by the proxy) has LocalStack's status and format."""
        a = Account()
        ls = self.assertCode("DryRunOperation", lambda: a.ec2.run_instances(
            DryRun=True, ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro"))  # forwarded
        mine = self.assertCode("DryRunOperation", lambda: a.ec2.create_route(
            DryRun=True, RouteTableId="rtb-0", DestinationCidrBlock="0.0.0.0/0", GatewayId="igw-0"))
        self.assertEqual(ls["ResponseMetadata"]["HTTPStatusCode"], mine["ResponseMetadata"]["HTTPStatusCode"])
        self.assertEqual(ls["Error"]["Message"], mine["Error"]["Message"])

    def test_dry_run_applies_the_real_checks(self):
        a = Account()
        a.ec2.import_key_pair(KeyName="k1", PublicKeyMaterial=KEY)
        self.assertCode("InvalidKeyPair.Duplicate",
                        lambda: a.ec2.import_key_pair(KeyName="k1", PublicKeyMaterial=KEY, DryRun=True))
        self.assertCode("DryRunOperation",
                        lambda: a.ec2.import_key_pair(KeyName="k2", PublicKeyMaterial=KEY, DryRun=True))
        self.assertEqual([k["KeyName"] for k in a.ec2.describe_key_pairs()["KeyPairs"]], ["k1"])

    # ------------------------------------------------------------ key pairs

    def test_key_pair_duplicate(self):
        a = Account()
        a.ec2.import_key_pair(KeyName="dup", PublicKeyMaterial=KEY)
        self.assertCode("InvalidKeyPair.Duplicate", lambda: a.ec2.import_key_pair(KeyName="dup", PublicKeyMaterial=KEY), 400)
        self.assertCode("InvalidKeyPair.Duplicate", lambda: a.ec2.create_key_pair(KeyName="dup"), 400)
        self.assertEqual(a.stats()["refusals"].get("key_pair_duplicate"), 2)  # refused by the proxy, not upstream
        self.assertEqual(len(a.ec2.describe_key_pairs()["KeyPairs"]), 1)
        a.client("ec2", region="us-west-2").import_key_pair(KeyName="dup", PublicKeyMaterial=KEY)  # other region: fine

    # ------------------------------------------------------------ Elastic IP quota

    def test_eip_quota(self):
        a = Account(eip_quota=2, consistency_ms=0)
        a.ec2.allocate_address(Domain="vpc")
        a.ec2.allocate_address(Domain="vpc")
        self.assertCode("AddressLimitExceeded", lambda: a.ec2.allocate_address(Domain="vpc"), 400)
        self.assertCode("AddressLimitExceeded", lambda: a.ec2.allocate_address(Domain="vpc", DryRun=True), 400)
        self.assertEqual(len(a.ec2.describe_addresses()["Addresses"]), 2)
        a.client("ec2", region="eu-west-1").allocate_address(Domain="vpc")  # quota is per Region
        # ... and it is the quota the account reports, as AWS reports its own.
        attrs = a.ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])["AccountAttributes"]
        quota = [x for x in attrs if x["AttributeName"] == "vpc-max-elastic-ips"]  # LocalStack lists them all
        self.assertEqual(quota[0]["AttributeValues"][0]["AttributeValue"], "2")

    def test_eip_quota_default_five_under_concurrency(self):
        a = Account(consistency_ms=0, eip_quota=5)

        def one(_):
            try:
                a.client("ec2").allocate_address(Domain="vpc")
                return "ok"
            except botocore.exceptions.ClientError as e:
                return e.response["Error"]["Code"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(8), timeout=60))
        self.assertEqual(sorted(results), ["AddressLimitExceeded"] * 3 + ["ok"] * 5)
        self.assertEqual(len(a.ec2.describe_addresses()["Addresses"]), 5)

    # ------------------------------------------------------------ gateway route tables

    def test_gateway_route_table_refuses_out_of_vpc_destination(self):
        a = Account(consistency_ms=0)
        vpc, sub = a.network()
        igw = a.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        a.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        eni = a.ec2.create_network_interface(SubnetId=sub)["NetworkInterface"]["NetworkInterfaceId"]
        rtb = a.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        a.ec2.associate_route_table(RouteTableId=rtb, GatewayId=igw)

        def dests():
            rt = a.ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
            return sorted(r.get("DestinationCidrBlock") for r in rt["Routes"])

        a.ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="10.0.1.0/24", NetworkInterfaceId=eni)
        self.assertCode("InvalidParameterValue", lambda: a.ec2.create_route(
            RouteTableId=rtb, DestinationCidrBlock="192.168.0.0/16", NetworkInterfaceId=eni), 400)
        self.assertCode("InvalidParameterValue", lambda: a.ec2.create_route(
            RouteTableId=rtb, DestinationCidrBlock="10.0.0.0/8", NetworkInterfaceId=eni))
        self.assertCode("InvalidParameterValue", lambda: a.ec2.create_route(
            DryRun=True, RouteTableId=rtb, DestinationCidrBlock="192.168.0.0/16", NetworkInterfaceId=eni))
        self.assertCode("InvalidParameterValue", lambda: a.ec2.replace_route(
            RouteTableId=rtb, DestinationCidrBlock="192.168.0.0/16", NetworkInterfaceId=eni))
        self.assertNotIn("192.168.0.0/16", dests())
        self.assertNotIn("10.0.0.0/8", dests())
        self.assertIn("10.0.1.0/24", dests())
        # an ordinary route table of the same VPC takes any destination
        plain = a.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        a.ec2.create_route(RouteTableId=plain, DestinationCidrBlock="192.168.0.0/16", NetworkInterfaceId=eni)

    # ------------------------------------------------------------ ClientToken

    def test_client_token_same_parameters_returns_the_same_instance(self):
        a = Account(consistency_ms=0)
        vpc, sub = a.network()
        ami = a.ami()
        kw = dict(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=sub, ClientToken="tok-1")
        first = a.ec2.run_instances(**kw)["Instances"][0]["InstanceId"]
        second = a.ec2.run_instances(**kw)["Instances"][0]["InstanceId"]
        self.assertEqual(first, second)
        self.assertCode("IdempotentParameterMismatch",
                        lambda: a.ec2.run_instances(**dict(kw, InstanceType="t3.small")), 400)
        found = [i["InstanceId"] for r in a.ec2.describe_instances(
            Filters=[{"Name": "subnet-id", "Values": [sub]}])["Reservations"] for i in r["Instances"]]
        self.assertEqual(found, [first])
        # tokens are per account and Region
        other = Account(consistency_ms=0)
        _, osub = other.network()
        self.assertNotEqual(other.ec2.run_instances(**dict(kw, SubnetId=osub))["Instances"][0]["InstanceId"], first)

    def test_client_token_concurrent_retries_launch_once(self):
        a = Account(consistency_ms=0)
        vpc, sub = a.network()
        kw = dict(ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=sub, ClientToken="tok-c")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            ids = set(pool.map(lambda _: a.client("ec2").run_instances(**kw)["Instances"][0]["InstanceId"], range(6),
                               timeout=60))
        self.assertEqual(len(ids), 1)
        found = [i["InstanceId"] for r in a.ec2.describe_instances(
            Filters=[{"Name": "subnet-id", "Values": [sub]}])["Reservations"] for i in r["Instances"]]
        self.assertEqual(found, list(ids))

    def test_client_token_kept_24h_after_termination(self):
        e = proxy.TokenEntry(("p",))
        e.instance_ids = ["i-1"]
        self.assertFalse(proxy.token_expired(e, e.created + 10 * 24 * 3600))  # not terminated: kept
        e.terminated_at = 1000.0
        self.assertFalse(proxy.token_expired(e, 1000.0 + 24 * 3600 - 1))
        self.assertTrue(proxy.token_expired(e, 1000.0 + 24 * 3600 + 1))
        a = Account(consistency_ms=0, stale_ms=0)
        vpc, sub = a.network()
        kw = dict(ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=sub, ClientToken="tok-t")
        iid = a.ec2.run_instances(**kw)["Instances"][0]["InstanceId"]
        a.ec2.terminate_instances(InstanceIds=[iid])
        self.assertEqual(a.ec2.run_instances(**kw)["Instances"][0]["InstanceId"], iid)  # still remembered

    # ------------------------------------------------------------ eventual consistency

    def test_new_instance_and_its_eni_invisible_for_a_while(self):
        a = Account(consistency_ms=1500)
        vpc, sub = a.network()
        inst = a.ec2.run_instances(ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=sub)
        iid = inst["Instances"][0]["InstanceId"]
        eni = inst["Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
        self.assertCode("InvalidInstanceID.NotFound", lambda: a.ec2.describe_instances(InstanceIds=[iid]), 400)
        by_filter = a.ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": [sub]}])["Reservations"]
        self.assertEqual(by_filter, [])
        self.assertCode("InvalidNetworkInterfaceID.NotFound",
                        lambda: a.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni]))
        a.ec2.create_tags(Resources=[iid], Tags=[{"Key": "k", "Value": "v"}])  # mutating calls are untouched
        time.sleep(1.6)
        self.assertEqual(a.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["InstanceId"], iid)
        self.assertEqual(len(a.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]), 1)

    def test_new_security_group_invisible_for_a_while(self):
        a = Account(consistency_ms=1500)
        vpc, _ = a.network()
        gid = a.ec2.create_security_group(GroupName="fresh", Description="d", VpcId=vpc)["GroupId"]
        self.assertCode("InvalidGroup.NotFound", lambda: a.ec2.describe_security_groups(GroupIds=[gid]), 400)
        listed = a.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
        self.assertNotIn(gid, [g["GroupId"] for g in listed])
        self.assertTrue(self.wait_until(lambda: gid in [g["GroupId"] for g in a.ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]], timeout=5))

    def test_new_address_invisible_for_a_while(self):
        a = Account(consistency_ms=1500)
        alloc = a.ec2.allocate_address(Domain="vpc")["AllocationId"]
        self.assertCode("InvalidAllocationID.NotFound", lambda: a.ec2.describe_addresses(AllocationIds=[alloc]), 400)
        self.assertEqual(a.ec2.describe_addresses()["Addresses"], [])
        time.sleep(1.6)
        self.assertEqual([x["AllocationId"] for x in a.ec2.describe_addresses()["Addresses"]], [alloc])

    def test_deletes_are_eventually_consistent(self):
        a = Account(consistency_ms=0, stale_ms=1500)
        vpc, sub = a.network()
        gid = a.ec2.create_security_group(GroupName="old", Description="d", VpcId=vpc)["GroupId"]
        rtb = a.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        igw = a.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        a.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        a.ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)

        def groups():
            return [g["GroupId"] for g in a.ec2.describe_security_groups(
                Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]]

        def routes():
            return [r.get("DestinationCidrBlock") for r in a.ec2.describe_route_tables(
                RouteTableIds=[rtb])["RouteTables"][0]["Routes"]]

        self.assertIn(gid, groups())
        self.assertIn("0.0.0.0/0", routes())
        a.ec2.delete_security_group(GroupId=gid)
        a.ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0")
        self.assertIn(gid, groups())  # still listed right after the delete
        self.assertIn("0.0.0.0/0", routes())
        time.sleep(1.6)
        self.assertNotIn(gid, groups())
        self.assertNotIn("0.0.0.0/0", routes())
        self.assertGreaterEqual(a.stats()["refusals"].get("stale", 0), 2)

    def test_terminated_instances_disappear(self):
        a = Account(consistency_ms=0, stale_ms=0, terminated_visible_s=0)
        vpc, sub = a.network()
        iid = a.ec2.run_instances(ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                  SubnetId=sub)["Instances"][0]["InstanceId"]
        a.ec2.terminate_instances(InstanceIds=[iid])
        self.assertCode("InvalidInstanceID.NotFound", lambda: a.ec2.describe_instances(InstanceIds=[iid]))
        self.assertEqual(a.ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": [sub]}])["Reservations"], [])
        # with the default (an hour) it is still listed, as terminated or shutting down
        b = Account(consistency_ms=0, stale_ms=0)
        _, bsub = b.network()
        bid = b.ec2.run_instances(ImageId=b.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                  SubnetId=bsub)["Instances"][0]["InstanceId"]
        b.ec2.terminate_instances(InstanceIds=[bid])
        state = b.ec2.describe_instances(InstanceIds=[bid])["Reservations"][0]["Instances"][0]["State"]["Name"]
        self.assertIn(state, ("shutting-down", "terminated"))

    # ------------------------------------------------------------ instance type offerings

    def test_unoffered_instance_type(self):
        a = Account(consistency_ms=0, unoffered={"us-east-1a": ["t3.small"]})
        vpc, sub_a = a.network(zone="us-east-1a")
        sub_b = a.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
        offers = a.ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t3.small"]}])
        zones = sorted(o["Location"] for o in offers["InstanceTypeOfferings"])
        self.assertNotIn("us-east-1a", zones)
        self.assertIn("us-east-1b", zones)
        r = self.assertCode("Unsupported", lambda: a.ec2.run_instances(
            ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=sub_a), 400)
        self.assertIn("(t3.small) is not supported in your requested Availability Zone (us-east-1a)", r["Error"]["Message"])
        self.assertEqual(a.ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": [sub_a]}])["Reservations"], [])
        a.ec2.run_instances(ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=sub_b)
        a.ec2.run_instances(ImageId=a.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=sub_a)

    # ------------------------------------------------------------ console output

    def test_console_output_empty_at_first_and_latest_only_on_nitro(self):
        a = Account(consistency_ms=0, console_delay_s=1.5)
        vpc, sub = a.network()
        ami = a.ami()
        nitro = a.ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                    SubnetId=sub)["Instances"][0]["InstanceId"]
        xen = a.ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                                  SubnetId=sub)["Instances"][0]["InstanceId"]
        out = a.ec2.get_console_output(InstanceId=nitro)
        self.assertEqual(out["InstanceId"], nitro)
        self.assertFalse(out.get("Output"))
        self.assertCode("UnsupportedOperation", lambda: a.ec2.get_console_output(InstanceId=xen, Latest=True), 400)
        time.sleep(1.6)
        self.assertTrue(a.ec2.get_console_output(InstanceId=nitro)["Output"])
        self.assertTrue(a.ec2.get_console_output(InstanceId=nitro, Latest=True)["Output"])
        self.assertCode("UnsupportedOperation", lambda: a.ec2.get_console_output(InstanceId=xen, Latest=True))

    def test_xen_families(self):
        for t in ("t2.micro", "m4.large", "c4.xlarge", "r4.large", "i3.large", "p3.2xlarge", "x1e.xlarge"):
            self.assertTrue(proxy.is_xen(t), t)
        for t in ("t3.micro", "m5.large", "c6i.large", "i3.metal", "p3dn.24xlarge", "t4g.nano", "m7g.large"):
            self.assertFalse(proxy.is_xen(t), t)

    # ------------------------------------------------------------ instance profiles

    def profile(self, a, name):
        iam = a.client("iam")
        iam.create_role(RoleName=name, Path="/vpclink/", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))
        arn = iam.create_instance_profile(InstanceProfileName=name, Path="/vpclink/")["InstanceProfile"]["Arn"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        return arn

    def test_a_new_instance_profile_is_refused_until_it_propagates(self):
        a = Account(consistency_ms=0, profile_propagation_ms=1500)
        vpc, sub = a.network()
        ami = a.ami()
        arn = self.profile(a, "p-new")
        run = lambda **kw: a.ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                               SubnetId=sub, **kw)["Instances"][0]
        r = self.assertCode("InvalidParameterValue", lambda: run(IamInstanceProfile={"Name": "p-new"}))
        self.assertIn("Invalid IAM Instance Profile name", r["Error"]["Message"])
        self.assertCode("InvalidParameterValue", lambda: run(IamInstanceProfile={"Name": "no-such-profile"}))
        self.assertEqual(a.stats()["refusals"].get("iam_profile_propagation"), 1)
        time.sleep(1.6)
        i = run(IamInstanceProfile={"Name": "p-new"})
        self.assertEqual(i["IamInstanceProfile"]["Arn"], arn)
        got = a.ec2.describe_instances(InstanceIds=[i["InstanceId"]])["Reservations"][0]["Instances"][0]
        self.assertEqual(got["IamInstanceProfile"]["Arn"], arn)
        # A host launched without one: associated, listed, disassociated, as EC2 does.
        bare = run()["InstanceId"]
        described = a.ec2.describe_instances(InstanceIds=[bare])["Reservations"][0]["Instances"][0]
        self.assertNotIn("IamInstanceProfile", described)
        assoc = a.ec2.associate_iam_instance_profile(InstanceId=bare, IamInstanceProfile={"Arn": arn})
        aid = assoc["IamInstanceProfileAssociation"]["AssociationId"]
        listed = a.ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [bare]}])["IamInstanceProfileAssociations"]
        self.assertEqual([(x["AssociationId"], x["IamInstanceProfile"]["Arn"]) for x in listed], [(aid, arn)])
        self.assertCode("IncorrectState", lambda: a.ec2.associate_iam_instance_profile(
            InstanceId=bare, IamInstanceProfile={"Arn": arn}))
        a.ec2.disassociate_iam_instance_profile(AssociationId=aid)
        self.assertEqual(a.ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [bare]}])["IamInstanceProfileAssociations"], [])
        # Terminated: its association goes with it.
        a.ec2.terminate_instances(InstanceIds=[i["InstanceId"]])
        self.assertEqual(a.ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [i["InstanceId"]]}])["IamInstanceProfileAssociations"], [])

    # ------------------------------------------------------------ control endpoint

    # ------------------------------------------------------------ Route 53 (route53.py)

    def zone(self, a, ref):
        vpc = a.ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        return a.client("route53").create_hosted_zone(
            Name="strict.test", CallerReference=ref, VPC={"VPCId": vpc, "VPCRegion": "us-east-1"},
            HostedZoneConfig={"PrivateZone": True, "Comment": "strict"})["HostedZone"]["Id"]

    def test_route53_caller_reference_reuse_is_hosted_zone_already_exists(self):
        a = Account(consistency_ms=0)
        self.zone(a, "ref-1")
        self.assertCode("HostedZoneAlreadyExists", lambda: self.zone(a, "ref-1"), status=409)
        self.zone(a, "ref-2")
        zones = a.client("route53").list_hosted_zones()["HostedZones"]
        self.assertEqual(sorted(z["CallerReference"] for z in zones), ["ref-1", "ref-2"])
        self.assertEqual(a.stats()["refusals"].get("route53_caller_reference"), 1)

    def test_route53_batch_limits_and_create_of_an_existing_record(self):
        a = Account(consistency_ms=0)
        r53 = a.client("route53")
        z = self.zone(a, "ref")

        def change(action, name, value="10.0.0.1"):
            return {"Action": action, "ResourceRecordSet": {"Name": name, "Type": "A", "TTL": 60,
                                                            "ResourceRecords": [{"Value": value}]}}

        def send(changes):
            return r53.change_resource_record_sets(HostedZoneId=z, ChangeBatch={"Changes": changes})

        send([change("CREATE", "h%d.strict.test" % i) for i in range(100)])  # the limit itself passes
        self.assertCode("InvalidChangeBatch",
                        lambda: send([change("UPSERT", "g%d.strict.test" % i) for i in range(101)]), status=400)
        many = [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": "m%d.strict.test" % i, "Type": "A", "TTL": 60,
            "ResourceRecords": [{"Value": "10.1.%d.%d" % (i, j)} for j in range(110)]}} for i in range(10)]
        self.assertCode("InvalidChangeBatch", lambda: send(many))
        err = self.assertCode("InvalidChangeBatch", lambda: send([change("CREATE", "h7.strict.test", "10.0.0.2")]))
        self.assertIn("already exists", err["Error"]["Message"])
        send([change("UPSERT", "h7.strict.test", "10.0.0.2")])  # UPSERT of an existing record is fine
        sets = r53.list_resource_record_sets(HostedZoneId=z, StartRecordName="h7.strict.test", MaxItems="1")
        self.assertEqual(sets["ResourceRecordSets"][0]["ResourceRecords"], [{"Value": "10.0.0.2"}])
        refusals = a.stats()["refusals"]
        self.assertEqual(refusals.get("route53_batch_changes"), 1)
        self.assertEqual(refusals.get("route53_batch_records"), 1)
        self.assertEqual(refusals.get("route53_create_existing"), 1)

    def test_control_endpoint(self):
        a = Account(eip_quota=1)
        self.assertEqual(control("/_strict/config?account=" + a.id)["eip_quota"], 1)
        self.assertEqual(control("/_strict/config")["eip_quota"], int(os.environ.get("VPCLINK_STRICT_EIP_QUOTA", 5)))
        req = urllib.request.Request(URL + "/_strict/config", data=b'{"nope": 1}', method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(cm.exception.code, 400)
        s = a.stats()
        self.assertEqual(set(s), {"requests", "ec2_requests", "throttled", "refusals"})


if __name__ == "__main__":
    unittest.main()
