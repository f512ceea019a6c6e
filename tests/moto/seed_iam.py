"""Seed a moto_server that enforces IAM (started with INITIAL_NO_AUTH_ACTION_COUNT=3) for tests/aws_iam_moto.rs.

Usage: seed_iam.py URL OUT_DIR DENIED_ACTION...

The first three calls, unauthenticated, make an administrator; everything after is signed by it: a user "limited"
allowed everything but DENIED_ACTION..., and in us-east-1 and us-west-2 one VPC each, 10.0.0.0/16 both, with a
public subnet (its own route table to an internet gateway) and a private one (the main table). Writes OUT_DIR/config
and OUT_DIR/credentials with profiles east (limited, us-east-1), east-admin (us-east-1) and west (admin, us-west-2),
all with endpoint_url, and prints the administrator's keys and the VPC ids as JSON.
"""

import json
import os
import sys

import boto3


def vpc(session, region):
    ec2 = session.client("ec2", region_name=region)
    v = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=v)
    # Zone "a" on purpose: without one, moto picks a zone at random, and some zones do not offer the instance type
    # (us-east-1e has no t3.small, as on AWS), which vpclink's preflight rightly refuses.
    zone = region + "a"
    public = ec2.create_subnet(VpcId=v, CidrBlock="10.0.0.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    ec2.create_subnet(VpcId=v, CidrBlock="10.0.1.0/24", AvailabilityZone=zone)
    rt = ec2.create_route_table(VpcId=v)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rt, SubnetId=public)
    return v


def main():
    url, out, denied = sys.argv[1], sys.argv[2], sys.argv[3:]
    anon = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDSEED", aws_secret_access_key="x")
    iam = boto3.client("iam", **anon)
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    admin = iam.create_access_key(UserName="admin")["AccessKey"]  # the third and last unauthenticated call

    session = boto3.Session(aws_access_key_id=admin["AccessKeyId"], aws_secret_access_key=admin["SecretAccessKey"])
    iam = session.client("iam", endpoint_url=url, region_name="us-east-1")
    iam.create_user(UserName="limited")
    iam.put_user_policy(UserName="limited", PolicyName="all-but", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": denied, "Resource": "*"}]}))
    limited = iam.create_access_key(UserName="limited")["AccessKey"]

    vpcs = {side: vpc(_Endpoint(session, url), region) for side, region in (("east", "us-east-1"),
                                                                             ("west", "us-west-2"))}

    os.makedirs(out, exist_ok=True)
    profiles = [("east", limited, "us-east-1"), ("east-admin", admin, "us-east-1"), ("west", admin, "us-west-2")]
    with open(os.path.join(out, "config"), "w") as f:
        for name, _, region in profiles:
            f.write(f"[profile {name}]\nregion = {region}\nendpoint_url = {url}\n\n")
    with open(os.path.join(out, "credentials"), "w") as f:
        for name, key, _ in profiles:
            f.write(f"[{name}]\naws_access_key_id = {key['AccessKeyId']}\n"
                    f"aws_secret_access_key = {key['SecretAccessKey']}\n\n")
    print(json.dumps({"admin_key": admin["AccessKeyId"], "admin_secret": admin["SecretAccessKey"], "vpcs": vpcs}))


class _Endpoint:
    """A session whose clients all talk to the moto server."""

    def __init__(self, session, url):
        self.session, self.url = session, url

    def client(self, service, **kw):
        return self.session.client(service, endpoint_url=self.url, **kw)


if __name__ == "__main__":
    main()
