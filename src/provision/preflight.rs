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
use crate::error::{Error, Problem};
use crate::state::{Options, SideState};
use ipnet::Ipv4Net;

/// The "routes per route table" quota: AWS's default, or VPCLINK_ROUTES_PER_TABLE if yours was raised (checked at
/// start-up, see crate::settings).
pub fn route_limit() -> usize {
    crate::settings::get().routes_per_table
}

/// The Elastic IP quota the user says the account has (VPCLINK_ELASTIC_IP_QUOTA; EC2 reports only the default).
pub fn raised_eip_quota() -> Option<usize> {
    crate::settings::get().elastic_ip_quota
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
    /// The link's SSH public key ("ssh-ed25519 AAAA..."): a key pair of the link's name must hold it.
    pub public_key: &'a str,
}

/// Problems found on one side (empty: go ahead). The survey's problems are included.
pub async fn check(c: &SideCheck<'_>) -> Vec<Problem> {
    let side = c.aws.side;
    let mut problems = c.survey.problems.clone();
    let Some(subnet) = c.facts.public_subnet() else {
        problems.push(Problem::Input(format!(
            "{side} side: VPC {} has no public subnet (none routes 0.0.0.0/0 to an internet gateway); the tunnel host needs one: attach an internet gateway and route 0.0.0.0/0 to it from a subnet's route table",
            c.facts.vpc.id
        )));
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
            // The profile may not exist yet: the launch permission is probed without it.
            iam_instance_profile: None,
        };
        if let Err(e) = step("probe_run", c.aws.ec2.probe_run_instances(&spec)).await {
            problems.push(e.into());
        }
    }
    // A key pair of the link's name that holds another key is another machine's: refused before anything is made.
    if let Some(kp) = &c.survey.key_pair {
        let recorded = c.state.key_pair_id.as_deref();
        if super::key_pair::judge(kp, c.public_key, recorded) == super::key_pair::Found::Foreign {
            problems.push(Problem::Input(super::key_pair::foreign_message(
                side,
                &super::key_pair::key_name(c.link),
                &c.aws.region,
                &c.aws.account,
                c.link,
            )));
        }
    }
    // The metrics role and instance profile: one of the link's name that is someone else's is refused.
    problems.extend(super::metrics::preflight(c.aws, c.link).await);
    let mut note = |p: String| problems.push(Problem::Input(format!("{side} side: {p}")));

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
                    .map_or(0, |t| t.quota_weight);
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

/// One side's claim on its region's Elastic IP pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EipNeed {
    pub side: crate::side::Side,
    pub account: String,
    pub region: String,
    /// 1 unless the side has its address already.
    pub needs: usize,
    /// Addresses the region has in use (all of them count against the quota).
    pub used: usize,
    pub quota: usize,
}

/// This side's claim: one address unless it has its own already (in the state or by tag).
pub fn eip_need(c: &SideCheck<'_>) -> EipNeed {
    let ours = LinkTags::new(c.link, c.aws.side, ROLE_TUNNEL);
    let has = c.state.eip.is_some() || !c.survey.tagged_addresses(&ours).is_empty();
    EipNeed {
        side: c.aws.side,
        account: c.aws.account.clone(),
        region: c.aws.region.clone(),
        needs: usize::from(!has),
        used: c.survey.addresses.len(),
        // EC2 reports the default quota; an account whose quota was raised says so with VPCLINK_ELASTIC_IP_QUOTA.
        quota: raised_eip_quota().or(c.survey.eip_quota).unwrap_or(5),
    }
}

/// Is there room in each pool? The quota is per account and region
/// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html#using-instance-addressing-limit),
/// so two sides in one account and region draw on one pool: their needs are added up.
pub fn eip_problems(needs: &[EipNeed]) -> Vec<String> {
    let mut pools: Vec<(&str, &str)> = needs
        .iter()
        .map(|n| (n.account.as_str(), n.region.as_str()))
        .collect();
    pools.sort_unstable();
    pools.dedup();
    let mut problems = Vec::new();
    for (account, region) in pools {
        let group: Vec<&EipNeed> = needs
            .iter()
            .filter(|n| n.account == account && n.region == region)
            .collect();
        let wanted: usize = group.iter().map(|n| n.needs).sum();
        let used = group.iter().map(|n| n.used).max().unwrap_or(0);
        let quota = group.iter().map(|n| n.quota).min().unwrap_or(0);
        if wanted == 0 || used + wanted <= quota {
            continue;
        }
        let sides: Vec<String> = group.iter().map(|n| n.side.to_string()).collect();
        let shared = if group.len() > 1 {
            format!(" ({} share this account and region)", sides.join(" and "))
        } else {
            String::new()
        };
        problems.push(format!(
            "{} {}: Elastic IP quota too small in account {account} {region}: {used} of {quota} in use and this link needs {wanted} more{shared}; release unused addresses or request a quota increase (then set VPCLINK_ELASTIC_IP_QUOTA)",
            sides.join(" and "),
            if group.len() > 1 { "sides" } else { "side" },
        ));
    }
    problems
}

pub fn to_error(problems: Vec<Problem>) -> Option<Error> {
    Error::preflight(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::side::Side;

    fn need(side: Side, account: &str, region: &str, needs: usize, used: usize) -> EipNeed {
        EipNeed {
            side,
            account: account.into(),
            region: region.into(),
            needs,
            used,
            quota: 5,
        }
    }

    #[test]
    fn sides_in_one_account_and_region_share_one_pool() {
        // One address free: enough for either side alone, not for both.
        let shared = [
            need(Side::East, "111", "eu-west-1", 1, 4),
            need(Side::West, "111", "eu-west-1", 1, 4),
        ];
        let p = eip_problems(&shared);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("4 of 5 in use and this link needs 2 more"),
            "{p:?}"
        );
        assert!(
            p[0].contains("east and west share this account and region"),
            "{p:?}"
        );
        // Two free: both fit.
        let fits = [
            need(Side::East, "111", "eu-west-1", 1, 3),
            need(Side::West, "111", "eu-west-1", 1, 3),
        ];
        assert!(eip_problems(&fits).is_empty());
        // Two regions (or accounts): two pools, one address each.
        let apart = [
            need(Side::East, "111", "eu-west-1", 1, 4),
            need(Side::West, "111", "us-east-1", 1, 4),
        ];
        assert!(eip_problems(&apart).is_empty());
        let other_account = [
            need(Side::East, "111", "eu-west-1", 1, 4),
            need(Side::West, "222", "eu-west-1", 1, 4),
        ];
        assert!(eip_problems(&other_account).is_empty());
        // A side that has its address needs none (its address is among those in use).
        let resumed = [
            need(Side::East, "111", "eu-west-1", 0, 4),
            need(Side::West, "111", "eu-west-1", 1, 4),
        ];
        assert!(eip_problems(&resumed).is_empty());
        let resumed_full = [
            need(Side::East, "111", "eu-west-1", 0, 5),
            need(Side::West, "111", "eu-west-1", 1, 5),
        ];
        assert!(eip_problems(&resumed_full)[0].contains("needs 1 more"));
        let full = [need(Side::East, "111", "eu-west-1", 1, 5)];
        assert!(eip_problems(&full)[0].starts_with("east side: Elastic IP quota too small"));
    }
}
