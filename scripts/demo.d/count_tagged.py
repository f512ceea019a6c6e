"""Count, through the EC2 API, every resource in both LocalStack accounts that carries the link's tag."""
import json
import os
import sys

import boto3

seed, name = json.load(open(sys.argv[1])), sys.argv[2]
endpoint = os.environ.get("VPCLINK_LOCALSTACK_URL") or f"http://127.0.0.1:{os.environ.get('VPCLINK_LOCALSTACK_PORT', '4566')}"
total = 0
for side in ["east", "west"]:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=seed[side]["region"],
                       aws_access_key_id=seed[side]["account"], aws_secret_access_key="test")
    tags = ec2.describe_tags(Filters=[{"Name": "tag:vpclink:link", "Values": [name]}])["Tags"]
    live = []
    for t in tags:
        rid = t["ResourceId"]
        if rid.startswith("i-"):
            r = ec2.describe_instances(InstanceIds=[rid])["Reservations"]
            state = r[0]["Instances"][0]["State"]["Name"] if r else "gone"
            if state in ("terminated", "gone"):
                continue
        live.append(rid)
    addrs = [a for a in ec2.describe_addresses()["Addresses"]
             if any(t["Key"] == "vpclink:link" and t["Value"] == name for t in a.get("Tags", []))]
    live = sorted(set(live) | {a["AllocationId"] for a in addrs})
    print(f"  {side}: {len(live)} resource(s) tagged vpclink:link={name}" + (f": {', '.join(live)}" if live else ""))
    total += len(live)
print(f"  total left: {total}")
sys.exit(1 if total else 0)
