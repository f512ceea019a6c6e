"""Count, through the EC2 API, what is left in both LocalStack accounts of a link: resources carrying its tag
(live instances, Elastic IPs, security groups, key pairs) and routes in the VPCs' tables that point at a network
interface. Exit 1 if anything is left."""
import json
import os
import sys

import boto3

seed, name = json.load(open(sys.argv[1])), sys.argv[2]
endpoint = os.environ.get("VPCLINK_LOCALSTACK_URL") or \
    f"http://127.0.0.1:{os.environ.get('VPCLINK_LOCALSTACK_PORT', '4566')}"
link = [{"Name": "tag:vpclink:link", "Values": [name]}]
total = 0
for side in ["east", "west"]:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=seed[side]["region"],
                       aws_access_key_id=seed[side]["account"], aws_secret_access_key="test")
    live = link + [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    counts = {
        "instances": sum(len(r["Instances"]) for r in ec2.describe_instances(Filters=live)["Reservations"]),
        "elastic IPs": len(ec2.describe_addresses(Filters=link)["Addresses"]),
        "security groups": len(ec2.describe_security_groups(Filters=link)["SecurityGroups"]),
        "key pairs": len(ec2.describe_key_pairs(Filters=link)["KeyPairs"]),
        "routes to an interface": sum(
            1 for t in ec2.describe_route_tables(
                Filters=[{"Name": "vpc-id", "Values": [seed[side]["vpc_id"]]}])["RouteTables"]
            for r in t["Routes"] if r.get("NetworkInterfaceId")),
    }
    print(f"  {side}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    total += sum(counts.values())
print(f"  total left: {total}")
sys.exit(1 if total else 0)
