//! Everything that can be known to fail before anything is created: permissions (DryRun; not for routes, which
//! emulators create even on DryRun), Elastic IP and route-table headroom, route collisions, the AMI. Every problem on
//! both sides is collected, so one run tells the user everything to fix.

use super::route::{new_routes_per_table, plan_routes};
use crate::aws::ec2::LaunchSpec;
use crate::aws::tags::{filter, LinkTags, ROLE_TUNNEL};
use crate::aws::SideAws;
use crate::discover::SideFacts;
use crate::error::Error;
use crate::state::{Options, SideState};
use ipnet::Ipv4Net;

/// AWS's default "routes per route table" quota; raise it here if yours was raised.
pub fn route_limit() -> usize {
    std::env::var("VPCLINK_ROUTES_PER_TABLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

pub struct SideCheck<'a> {
    pub aws: &'a SideAws,
    pub facts: &'a SideFacts,
    pub link: &'a str,
    pub options: &'a Options,
    pub state: &'a SideState,
    /// The remote side's mapped ranges: what this side's tables must route.
    pub destinations: &'a [Ipv4Net],
    pub public_key: &'a str,
}

/// Problems found on one side (empty: go ahead) and the AMI to use.
pub async fn check(c: &SideCheck<'_>) -> (Vec<String>, Option<String>) {
    let side = c.aws.side;
    let mut problems = Vec::new();
    let mut note = |p: String| problems.push(format!("{side} side: {p}"));

    let Some(subnet) = c.facts.public_subnet() else {
        note(format!(
            "VPC {} has no public subnet (none routes 0.0.0.0/0 to an internet gateway); the tunnel host needs one: attach an internet gateway and route 0.0.0.0/0 to it from a subnet's route table",
            c.facts.vpc.id
        ));
        return (problems, None);
    };

    let ami =
        match super::instance::resolve_ami(c.aws, c.options.os, &c.options.instance_type).await {
            Ok(ami) => Some(ami),
            Err(Error::Aws(e)) => {
                problems.push(format!("no AMI: {e}"));
                None
            }
            Err(e) => {
                note(format!("no AMI: {e}"));
                None
            }
        };

    // Permissions, by DryRun.
    let mut probe = |r: Result<(), crate::aws::AwsError>| {
        if let Err(e) = r {
            problems.push(e.to_string());
        }
    };
    probe(
        c.aws
            .ec2
            .probe_import_key_pair(&super::key_pair::key_name(c.link), c.public_key)
            .await,
    );
    probe(c.aws.ec2.probe_create_security_group(&c.facts.vpc.id).await);
    probe(c.aws.ec2.probe_allocate_address().await);
    if let Some(ami) = &ami {
        let default_sg = c
            .aws
            .ec2
            .describe_security_groups(vec![
                filter("vpc-id", &c.facts.vpc.id),
                filter("group-name", "default"),
            ])
            .await
            .ok()
            .and_then(|g| g.first().and_then(|g| g.group_id().map(str::to_string)));
        if let Some(sg) = default_sg {
            let spec = LaunchSpec {
                tags: LinkTags::new(c.link, side, ROLE_TUNNEL),
                image_id: ami.clone(),
                instance_type: c.options.instance_type.clone(),
                subnet_id: subnet.to_string(),
                security_group_id: sg,
                key_name: String::new(),
                user_data: String::new(),
                client_token: "vpclink-preflight".into(),
            };
            probe(c.aws.ec2.probe_run_instances(&spec).await);
        }
    }
    let mut note = |p: String| problems.push(format!("{side} side: {p}"));

    // Elastic IP headroom: this side needs one unless it has it already.
    match eip_headroom(c).await {
        Ok(Some(p)) => note(p),
        Ok(None) => {}
        Err(e) => problems.push(e.to_string()),
    }
    let mut note = |p: String| problems.push(format!("{side} side: {p}"));

    // Routes: no foreign route for our destinations, and room in every table.
    let eni = c.state.tunnel.as_ref().and_then(|h| h.eni_id.as_deref());
    match plan_routes(&c.facts.tables, c.destinations, eni, &c.state.routes) {
        Err(collisions) => {
            for col in collisions {
                note(format!(
                    "route collision: {col}; vpclink never overwrites a route it does not own: remove it, or choose other mapped ranges with --east-map/--west-map"
                ));
            }
        }
        Ok(actions) => {
            let limit = route_limit();
            for (table, new) in new_routes_per_table(&actions) {
                let have = c
                    .facts
                    .tables
                    .iter()
                    .find(|t| t.id == table)
                    .map_or(0, |t| t.routes.len());
                if have + new > limit {
                    note(format!(
                        "route table {table} has {have} routes and needs {new} more, over the quota of {limit}; remove unused routes or request a quota increase (then set VPCLINK_ROUTES_PER_TABLE)"
                    ));
                }
            }
        }
    }
    (problems, ami)
}

async fn eip_headroom(c: &SideCheck<'_>) -> Result<Option<String>, crate::aws::AwsError> {
    let ours = LinkTags::new(c.link, c.aws.side, ROLE_TUNNEL);
    let have_ours = c.state.eip.is_some()
        || !c
            .aws
            .ec2
            .describe_addresses(ours.filters())
            .await?
            .is_empty();
    if have_ours {
        return Ok(None);
    }
    // EC2 reports the default quota; an account whose quota was raised says so with VPCLINK_ELASTIC_IP_QUOTA.
    let raised = std::env::var("VPCLINK_ELASTIC_IP_QUOTA")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let quota = match raised {
        Some(q) => q,
        None => c.aws.ec2.elastic_ip_quota().await?.unwrap_or(5) as usize,
    };
    let used = c.aws.ec2.describe_addresses(Vec::new()).await?.len();
    Ok((used >= quota).then(|| {
        format!(
            "Elastic IP quota exhausted in {}: {used} of {quota} in use; release an unused address or request a quota increase (then set VPCLINK_ELASTIC_IP_QUOTA)",
            c.aws.region
        )
    }))
}

pub fn to_error(problems: Vec<String>) -> Option<Error> {
    (!problems.is_empty()).then(|| {
        Error::Input(format!(
            "preflight found {} problem(s); nothing was created:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        ))
    })
}
