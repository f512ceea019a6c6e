"""Count, through the AWS APIs, what is left in both LocalStack accounts of a link: resources carrying its tag
(live instances, Elastic IPs, security groups, key pairs, Route 53 hosted zones), routes in the VPCs' tables that
point at a network interface, its CloudWatch alarms (vpclink-NAME-*) and its IAM roles and instance profiles (path
/vpclink/, vpclink-NAME-*). Exit 1 if anything is left."""
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
    def client(service):
        return boto3.client(service, endpoint_url=endpoint, region_name=seed[side]["region"],
                            aws_access_key_id=seed[side]["account"], aws_secret_access_key="test")
    ec2, r53, cw, iam = client("ec2"), client("route53"), client("cloudwatch"), client("iam")
    zone_ids = [z["Id"].split("/")[-1] for z in r53.list_hosted_zones()["HostedZones"]]
    tagged_zones = 0
    for i in range(0, len(zone_ids), 10):  # ListTagsForResources takes at most 10 ids
        sets = r53.list_tags_for_resources(ResourceType="hostedzone", ResourceIds=zone_ids[i:i + 10])
        for rs in sets["ResourceTagSets"]:
            tagged_zones += any(t["Key"] == "vpclink:link" and t["Value"] == name for t in rs.get("Tags", []))
    prefix = f"vpclink-{name}-"
    live = link + [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    counts = {
        "instances": sum(len(r["Instances"]) for r in ec2.describe_instances(Filters=live)["Reservations"]),
        "elastic IPs": len(ec2.describe_addresses(Filters=link)["Addresses"]),
        "security groups": len(ec2.describe_security_groups(Filters=link)["SecurityGroups"]),
        "key pairs": len(ec2.describe_key_pairs(Filters=link)["KeyPairs"]),
        "hosted zones": tagged_zones,
        "alarms": len(cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]),
        "IAM roles": sum(r["RoleName"].startswith(prefix) for r in iam.list_roles(PathPrefix="/vpclink/")["Roles"]),
        "instance profiles": sum(p["InstanceProfileName"].startswith(prefix)
                                 for p in iam.list_instance_profiles(PathPrefix="/vpclink/")["InstanceProfiles"]),
        "routes to an interface": sum(
            1 for t in ec2.describe_route_tables(
                Filters=[{"Name": "vpc-id", "Values": [seed[side]["vpc_id"]]}])["RouteTables"]
            for r in t["Routes"] if r.get("NetworkInterfaceId")),
    }
    print(f"  {side}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    total += sum(counts.values())
print(f"  total left: {total}")
sys.exit(1 if total else 0)
