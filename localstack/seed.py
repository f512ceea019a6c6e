"""Two overlapping VPCs in two accounts and two regions on LocalStack, shaped like the VPCs vpclink must handle.

Per side: VPC 10.0.0.0/16, an internet gateway, a public subnet (its own route table with 0.0.0.0/0 -> igw), two
private subnets each with its own custom route table (the "sneaky" per-subnet tables), and on east a secondary CIDR
10.5.0.0/16 with a subnet in it. LocalStack picks the account from a 12-digit access key id, so each side lives in its
own account. Prints the created ids as JSON on stdout.
"""

import argparse
import json
import os
import sys
import time

import boto3


def tag(name, side):
    return [{"Key": "Name", "Value": f"seed-{side}-{name}"}, {"Key": "vpclink-seed", "Value": side}]


def spec(resource, name, side):
    return [{"ResourceType": resource, "Tags": tag(name, side)}]


def seed_side(ec2, side, secondary_cidr, az):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec("vpc", "vpc", side))["Vpc"]["VpcId"]
    # Private hosted zones resolve only in a VPC with DNS support and DNS host names on (CreateVpc leaves the second off).
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    out = {"vpc_id": vpc, "cidrs": ["10.0.0.0/16"], "route_tables": [], "subnets": {}}
    if secondary_cidr:
        ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock=secondary_cidr)
        out["cidrs"].append(secondary_cidr)

    igw = ec2.create_internet_gateway(TagSpecifications=spec("internet-gateway", "igw", side))
    igw = igw["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    out["igw"] = igw

    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    out["route_tables"].append(main)

    subnets = [("public", "10.0.1.0/24", True), ("private-a", "10.0.2.0/24", False), ("private-b", "10.0.3.0/24", False)]
    if secondary_cidr:
        net = secondary_cidr.split("/")[0].rsplit(".", 2)[0]
        subnets.append(("secondary", f"{net}.1.0/24", False))
    for name, cidr, public in subnets:
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az, TagSpecifications=spec("subnet", name, side)
        )["Subnet"]["SubnetId"]
        rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=spec("route-table", name, side))
        rt = rt["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
        if public:
            ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        out["subnets"][name] = subnet
        out["route_tables"].append(rt)
    return out


def write_profiles(out_dir, endpoint, sides):
    os.makedirs(out_dir, exist_ok=True)
    config, credentials = [], []
    for name, account, region in sides:
        config += [f"[profile {name}]", f"region = {region}", f"endpoint_url = {endpoint}", "output = json", ""]
        credentials += [f"[{name}]", f"aws_access_key_id = {account}", "aws_secret_access_key = test", ""]
    with open(os.path.join(out_dir, "config"), "w") as f:
        f.write("\n".join(config))
    with open(os.path.join(out_dir, "credentials"), "w") as f:
        f.write("\n".join(credentials))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", help="where to write config and credentials")
    p.add_argument("--endpoint", default=os.environ.get("VPCLINK_LOCALSTACK_URL")
                   or f"http://127.0.0.1:{os.environ.get('VPCLINK_LOCALSTACK_PORT', '4566')}")
    p.add_argument("--east-account", default="111111111111")
    p.add_argument("--west-account", default="222222222222")
    p.add_argument("--east-region", default="us-east-1")
    p.add_argument("--west-region", default="us-west-2")
    p.add_argument("--secondary-cidr", default="10.5.0.0/16", help="added on east; '' for none")
    a = p.parse_args()

    started = time.monotonic()
    result = {}
    for side, account, region, secondary in [
        ("east", a.east_account, a.east_region, a.secondary_cidr),
        ("west", a.west_account, a.west_region, None),
    ]:
        ec2 = boto3.client(
            "ec2", endpoint_url=a.endpoint, region_name=region,
            aws_access_key_id=account, aws_secret_access_key="test",
        )
        result[side] = {"account": account, "region": region, **seed_side(ec2, side, secondary, region + "a")}
    write_profiles(a.out_dir, a.endpoint, [
        ("east", a.east_account, a.east_region),
        ("west", a.west_account, a.west_region),
    ])
    result["seconds"] = round(time.monotonic() - started, 2)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
