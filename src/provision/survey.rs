//! What each side already has, read all at once before anything changes: the link's key pair, Elastic IP, security
//! groups and hosts (left by an earlier, perhaps interrupted, run), the region's address use and quota, the current
//! AMI, and the DryRun permission probes. The reads run beside discovery (those that need the VPC start as soon as
//! it is known); preflight judges what they found and provisioning acts on it, so each step that finds its resource
//! spends no round trip looking for it, and a fresh link spends its round trips creating.

use super::instance::resolve_ami;
use crate::aws::call_log::step;
use crate::aws::tags::{filter, link_filters, LinkTags};
use crate::aws::SideAws;
use crate::discover::{self, SideFacts, VpcChoice};
use crate::error::{Error, Result};
use crate::state::Os;
use aws_sdk_ec2::types::{Address, Instance, KeyPairInfo, SecurityGroup};

/// What the survey needs to know about the link being made.
#[derive(Debug, Clone)]
pub struct SurveyRequest {
    pub link: String,
    pub os: Os,
    pub instance_type: String,
    pub public_key: String,
}

/// One side's survey.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// The current AMI for the OS and instance type (None: the reason is among `problems`).
    pub ami: Option<String>,
    /// The key pair named for the link, if the region has one.
    pub key_pair: Option<KeyPairInfo>,
    /// Every Elastic IP of the region: the quota counts them all; ours carry the link's tags.
    pub addresses: Vec<Address>,
    /// The Elastic IP quota EC2 reports (None when VPCLINK_ELASTIC_IP_QUOTA says it, or EC2 does not).
    pub eip_quota: Option<usize>,
    /// The zones of the region that offer the instance type (None: the read failed, see `problems`).
    pub offered_zones: Option<std::collections::BTreeSet<String>>,
    /// Every security group of the VPC: its default group (the launch probe uses it) and the link's.
    pub groups: Vec<SecurityGroup>,
    /// This side's hosts of the link in the VPC, in any state.
    pub instances: Vec<Instance>,
    /// What the AMI look-up and the DryRun probes found wrong.
    pub problems: Vec<crate::error::Problem>,
}

impl Survey {
    /// The VPC's security group tagged for this link, side and role.
    pub fn group(&self, tags: &LinkTags) -> Vec<&SecurityGroup> {
        self.groups
            .iter()
            .filter(|g| tags.matches(g.tags()))
            .collect()
    }

    /// The link's hosts of one role on this side (any state).
    pub fn instances_of(&self, tags: &LinkTags) -> Vec<&Instance> {
        self.instances
            .iter()
            .filter(|i| tags.matches(i.tags()))
            .collect()
    }

    /// The link's Elastic IPs for this side (by tag).
    pub fn tagged_addresses(&self, tags: &LinkTags) -> Vec<&Address> {
        self.addresses
            .iter()
            .filter(|a| tags.matches(a.tags()))
            .collect()
    }

    pub fn address(&self, allocation_id: &str) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.allocation_id() == Some(allocation_id))
    }

    pub fn default_group(&self) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.group_name() == Some("default"))
            .and_then(|g| g.group_id())
    }
}

/// Discover the side's VPC and survey the side, all at once. A failed discovery is an error (there is nothing to
/// plan); a failed survey read, the AMI and the probes are problems for preflight to report with all the others
/// (any problem stops `up` before it changes anything).
pub async fn discover_and_survey(
    aws: &SideAws,
    choice: VpcChoice<'_>,
    req: &SurveyRequest,
) -> Result<(SideFacts, Survey)> {
    let in_vpc = async {
        let vpc = discover::find_vpc(aws, choice).await?;
        let vpc_id = vpc.id.clone();
        let groups = step(
            "groups",
            aws.ec2
                .describe_security_groups(vec![filter("vpc-id", &vpc_id)]),
        );
        let mut f = link_filters(&req.link, Some(aws.side));
        f.push(filter("vpc-id", &vpc_id));
        let instances = step("instances", aws.ec2.describe_instances(f));
        let probe_sg = step("probe_sg", aws.ec2.probe_create_security_group(&vpc_id));
        let (facts, groups, instances, probe_sg) =
            tokio::join!(discover::read_vpc(aws, vpc), groups, instances, probe_sg);
        Ok::<_, Error>((facts?, groups, instances, probe_sg.err()))
    };
    let key_name = super::key_pair::key_name(&req.link);
    let ami = step("ami", resolve_ami(aws, req.os, &req.instance_type));
    // The import probe only when the key pair is not there: AWS may answer a DryRun import of an existing name with
    // InvalidKeyPair.Duplicate instead of DryRunOperation, which says nothing about permission.
    let key_pair = async {
        let found = step(
            "kp_find",
            aws.ec2
                .describe_key_pairs(vec![filter("key-name", &key_name)]),
        )
        .await;
        let probe = match &found {
            Ok(k) if k.is_empty() => {
                step(
                    "probe_key",
                    aws.ec2.probe_import_key_pair(&key_name, &req.public_key),
                )
                .await
            }
            _ => Ok(()),
        };
        (found, probe)
    };
    let addresses = step("addresses", aws.ec2.describe_addresses(Vec::new()));
    let quota = async {
        if super::preflight::raised_eip_quota().is_some() {
            return Ok(None);
        }
        step("eip_quota", aws.ec2.elastic_ip_quota()).await
    };
    let probe_eip = step("probe_eip", aws.ec2.probe_allocate_address());
    let offered = step("offerings", aws.ec2.instance_type_zones(&req.instance_type));

    let (vpc_part, ami, (key_pairs, probe_key), addresses, quota, probe_eip, offered) =
        tokio::join!(in_vpc, ami, key_pair, addresses, quota, probe_eip, offered);
    let (facts, groups, instances, probe_sg) = vpc_part?;

    let side = aws.side;
    let mut problems = Vec::new();
    let ami = match ami {
        Ok(ami) => Some(ami),
        Err(Error::Aws(mut e)) => {
            e.resource = format!("{} (no AMI for this --os and instance type)", e.resource);
            problems.push(e.into());
            None
        }
        Err(e) => {
            problems.push(format!("{side} side: no AMI: {e}").into());
            None
        }
    };
    for e in [probe_key.err(), probe_eip.err(), probe_sg]
        .into_iter()
        .flatten()
    {
        problems.push(e.into());
    }
    let eip_quota = or_problem(quota, &mut problems)
        .flatten()
        .map(|q| q as usize);
    let key_pair = or_problem(key_pairs, &mut problems).and_then(|k| k.into_iter().next());
    let addresses = or_problem(addresses, &mut problems).unwrap_or_default();
    let groups = or_problem(groups, &mut problems).unwrap_or_default();
    let instances = or_problem(instances, &mut problems).unwrap_or_default();
    let offered_zones = or_problem(offered, &mut problems);
    Ok((
        facts,
        Survey {
            ami,
            key_pair,
            addresses,
            eip_quota,
            offered_zones,
            groups,
            instances,
            problems,
        },
    ))
}

/// A read's answer, or None with its failure noted among the problems.
fn or_problem<T>(
    r: std::result::Result<T, crate::aws::AwsError>,
    problems: &mut Vec<crate::error::Problem>,
) -> Option<T> {
    r.map_err(|e| problems.push(e.into())).ok()
}
