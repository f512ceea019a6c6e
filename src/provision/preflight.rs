//! Everything that can be known to fail before anything is created: permissions (DryRun; not for routes, which
//! emulators create even on DryRun), Elastic IP and route-table headroom, route collisions, the AMI. Judged from the
//! survey, plus the one probe that needs its findings (launching). Every problem on both sides is collected, so one
//! run tells the user everything to fix.

use super::route::{new_routes_per_table, plan_routes};
use super::survey::Survey;
use crate::aws::call_log::step;
use crate::aws::ec2::LaunchSpec;
use crate::aws::tags::{LinkTags, ROLE_TUNNEL};
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

/// The Elastic IP quota the user says the account has (EC2 reports only the default).
pub fn raised_eip_quota() -> Option<usize> {
    std::env::var("VPCLINK_ELASTIC_IP_QUOTA")
        .ok()
        .and_then(|v| v.parse().ok())
}

pub struct SideCheck<'a> {
    pub aws: &'a SideAws,
    pub facts: &'a SideFacts,
    pub survey: &'a Survey,
    pub link: &'a str,
    pub options: &'a Options,
    pub state: &'a SideState,
    /// The remote side's mapped ranges: what this side's tables must route.
    pub destinations: &'a [Ipv4Net],
}

/// Problems found on one side (empty: go ahead). The survey's problems are included.
pub async fn check(c: &SideCheck<'_>) -> Vec<String> {
    let side = c.aws.side;
    let mut problems = c.survey.problems.clone();
    let Some(subnet) = c.facts.public_subnet() else {
        problems.push(format!(
            "{side} side: VPC {} has no public subnet (none routes 0.0.0.0/0 to an internet gateway); the tunnel host needs one: attach an internet gateway and route 0.0.0.0/0 to it from a subnet's route table",
            c.facts.vpc.id
        ));
        return problems;
    };
    // Launch permission, by DryRun, with the VPC's default group (ours may not exist yet).
    if let (Some(ami), Some(sg)) = (&c.survey.ami, c.survey.default_group()) {
        let spec = LaunchSpec {
            tags: LinkTags::new(c.link, side, ROLE_TUNNEL),
            image_id: ami.clone(),
            instance_type: c.options.instance_type.clone(),
            subnet_id: subnet.to_string(),
            security_group_id: sg.to_string(),
            key_name: String::new(),
            user_data: String::new(),
            client_token: "vpclink-preflight".into(),
        };
        if let Err(e) = step("probe_run", c.aws.ec2.probe_run_instances(&spec)).await {
            problems.push(e.to_string());
        }
    }
    let mut note = |p: String| problems.push(format!("{side} side: {p}"));
    if let Some(p) = eip_headroom(c) {
        note(p);
    }

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
    problems
}

/// This side needs one Elastic IP unless it has its own already; is there room under the quota?
fn eip_headroom(c: &SideCheck<'_>) -> Option<String> {
    let ours = LinkTags::new(c.link, c.aws.side, ROLE_TUNNEL);
    if c.state.eip.is_some() || !c.survey.tagged_addresses(&ours).is_empty() {
        return None;
    }
    // EC2 reports the default quota; an account whose quota was raised says so with VPCLINK_ELASTIC_IP_QUOTA.
    let quota = raised_eip_quota().or(c.survey.eip_quota).unwrap_or(5);
    let used = c.survey.addresses.len();
    (used >= quota).then(|| {
        format!(
            "Elastic IP quota exhausted in {}: {used} of {quota} in use; release an unused address or request a quota increase (then set VPCLINK_ELASTIC_IP_QUOTA)",
            c.aws.region
        )
    })
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
