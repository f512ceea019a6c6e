//! Security groups: the exact ingress rules each host gets, as data (pure), and the calls that make a group match
//! them (add what is missing, revoke what is not wanted: these groups belong to the link alone).

use super::Step;
use crate::aws::call_log::step as label;
use crate::aws::ec2::{Id, Made};
use crate::aws::tags::{route_tags, routes_of, LinkTags, ROLE_TUNNEL};
use crate::error::Result;
use aws_sdk_ec2::types::{IpPermission, IpRange, SecurityGroupRule, UserIdGroupPair};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Cidr(Ipv4Net),
    Group(String),
}

/// One ingress rule. Ports are -1 where the protocol has none; ICMP uses (type, code).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub source: Source,
    pub description: String,
}

impl Rule {
    fn new(protocol: &str, from: i32, to: i32, source: Source, description: &str) -> Self {
        Rule {
            protocol: protocol.into(),
            from,
            to,
            source,
            description: description.into(),
        }
    }

    /// Equal as AWS sees it (descriptions aside).
    fn same(&self, other: &Rule) -> bool {
        (&self.protocol, self.from, self.to, &self.source)
            == (&other.protocol, other.from, other.to, &other.source)
    }

    pub fn permission(&self) -> IpPermission {
        let b = IpPermission::builder()
            .ip_protocol(&self.protocol)
            .from_port(self.from)
            .to_port(self.to);
        match &self.source {
            Source::Cidr(c) => b.ip_ranges(
                IpRange::builder()
                    .cidr_ip(c.to_string())
                    .description(&self.description)
                    .build(),
            ),
            Source::Group(g) => b.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .description(&self.description)
                    .build(),
            ),
        }
        .build()
    }

    /// Whether the rule's source is exactly this address (a rule that waits for the peer's Elastic IP).
    pub fn names(&self, ip: Ipv4Addr) -> bool {
        self.source == Source::Cidr(host(ip))
    }

    pub fn summary(&self) -> String {
        let src = match &self.source {
            // The placeholder address of an Elastic IP that --dry-run did not allocate.
            Source::Cidr(c) if c.addr().is_unspecified() => "<peer Elastic IP>/32".to_string(),
            Source::Cidr(c) => c.to_string(),
            Source::Group(g) => g.clone(),
        };
        format!("{} {}..{} from {src}", self.protocol, self.from, self.to)
    }
}

fn host(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).expect("/32")
}

/// The tunnel host: SSH from the operator; IKE (UDP 500, 4500 for NAT traversal, which EC2's 1:1 NAT always
/// needs), ESP and ICMP echo from the peer tunnel host only; everything from its own VPC, whose traffic it forwards.
/// ESP is protocol 50 with ports -1: emulators fail without them, and AWS ignores them.
pub fn tunnel_rules(ssh_cidr: Ipv4Net, peer_eip: Ipv4Addr, own_cidrs: &[Ipv4Net]) -> Vec<Rule> {
    let peer = Source::Cidr(host(peer_eip));
    let mut rules = vec![
        Rule::new(
            "tcp",
            22,
            22,
            Source::Cidr(ssh_cidr),
            "vpclink: SSH from the operator",
        ),
        Rule::new(
            "udp",
            500,
            500,
            peer.clone(),
            "vpclink: IKE from the peer tunnel host",
        ),
        Rule::new(
            "udp",
            4500,
            4500,
            peer.clone(),
            "vpclink: IKE/ESP NAT traversal from the peer tunnel host",
        ),
        Rule::new(
            "50",
            -1,
            -1,
            peer.clone(),
            "vpclink: ESP from the peer tunnel host",
        ),
        Rule::new(
            "icmp",
            8,
            -1,
            peer,
            "vpclink: ping from the peer tunnel host",
        ),
    ];
    for &c in own_cidrs {
        rules.push(Rule::new(
            "-1",
            -1,
            -1,
            Source::Cidr(c),
            "vpclink: traffic this host forwards",
        ));
    }
    rules
}

/// A test host: SSH from its tunnel host (configure and verify hop through it) and anything from the remote side's
/// mapped ranges (what its traffic looks like after crossing the link).
pub fn test_rules(tunnel_group: &str, remote_mapped: &[Ipv4Net]) -> Vec<Rule> {
    let mut rules = vec![Rule::new(
        "tcp",
        22,
        22,
        Source::Group(tunnel_group.into()),
        "vpclink: SSH from the tunnel host",
    )];
    for &m in remote_mapped {
        rules.push(Rule::new(
            "-1",
            -1,
            -1,
            Source::Cidr(m),
            "vpclink: the remote side, as mapped",
        ));
    }
    rules
}

/// An existing ingress rule in our shape, with its id; None for egress and for rules we never write (IPv6, lists).
pub fn existing_rule(r: &SecurityGroupRule) -> Option<(String, Rule)> {
    if r.is_egress() == Some(true) {
        return None;
    }
    let source = match (
        r.cidr_ipv4(),
        r.referenced_group_info().and_then(|g| g.group_id()),
    ) {
        (Some(c), _) => Source::Cidr(c.parse().ok()?),
        (None, Some(g)) => Source::Group(g.to_string()),
        _ => return None,
    };
    let protocol = match r.ip_protocol()? {
        "all" => "-1".to_string(),
        p => p.to_string(),
    };
    let id = r.security_group_rule_id()?.to_string();
    Some((
        id,
        Rule::new(
            &protocol,
            r.from_port().unwrap_or(-1),
            r.to_port().unwrap_or(-1),
            source,
            r.description().unwrap_or(""),
        ),
    ))
}

/// What to add and which rule ids to revoke so that `existing` becomes `desired`.
pub fn diff(desired: &[Rule], existing: &[(String, Rule)]) -> (Vec<Rule>, Vec<String>) {
    let add = desired
        .iter()
        .filter(|d| !existing.iter().any(|(_, e)| e.same(d)))
        .cloned()
        .collect();
    let revoke = existing
        .iter()
        .filter(|(_, e)| !desired.iter().any(|d| d.same(e)))
        .map(|(id, _)| id.clone())
        .collect();
    (add, revoke)
}

/// The group named like ours that CreateSecurityGroup says exists: read until listed, and taken only if it carries
/// this link's tags (a group of that name that is not ours is reported, never used).
async fn adopt_group(
    step: &Step<'_>,
    tags: &LinkTags,
    duplicate: crate::aws::AwsError,
) -> Result<String> {
    let name = tags.name();
    let found = super::until_listed(std::time::Duration::from_secs(30), || async {
        let listed = label(
            "sg_find_again",
            step.aws.ec2.describe_security_groups(vec![
                crate::aws::tags::filter("vpc-id", step.vpc_id()),
                crate::aws::tags::filter("group-name", &name),
            ]),
        )
        .await?;
        Ok(listed.into_iter().next())
    })
    .await?;
    match found {
        Some(g) if tags.matches(g.tags()) => Ok(g.group_id().unwrap_or_default().to_string()),
        Some(g) => Err(crate::error::Error::Input(format!(
            "{} side: security group {name} ({}) exists in VPC {} without this link's tags; it is not vpclink's to use: rename or delete it, or pick another --name",
            step.side(),
            g.group_id().unwrap_or("?"),
            step.vpc_id()
        ))),
        None => Err(duplicate.into()),
    }
}

/// The group for `role` exists: the recorded one if the survey saw it, else one found by tag, else a new one.
/// Returns its id (under --dry-run, a planned one when it would be created).
pub async fn ensure_group(step: &Step<'_>, role: &'static str) -> Result<Id> {
    let is_tunnel = role == ROLE_TUNNEL;
    let recorded = step.side_state(|s| {
        if is_tunnel {
            s.tunnel_sg.clone()
        } else {
            s.test_sg.clone()
        }
    });
    let mut tags = LinkTags::new(step.link(), step.side(), role);
    if is_tunnel {
        tags = tags.with_routes(&step.plan().side(step.side().peer()).mapped);
    }
    let found: Vec<&str> = step
        .survey
        .group(&tags)
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    let id = match found
        .iter()
        .find(|id| recorded.as_deref() == Some(**id))
        .or(found.first())
    {
        Some(id) => {
            // A group made before the routes were named on it, or for other mapped ranges: name today's.
            let named = step
                .survey
                .groups
                .iter()
                .find(|g| g.group_id() == Some(*id))
                .map(|g| routes_of(g.tags()))
                .unwrap_or_default();
            if is_tunnel && named != tags.routes {
                let retag = step.aws.ec2.create_tags(id, route_tags(&tags.routes));
                label("sg_tag", retag).await?;
            }
            Made::Real(id.to_string())
        }
        None => {
            let (what, create_step) = if is_tunnel {
                ("tunnel host", "sg_tunnel_create")
            } else {
                ("test host", "sg_test_create")
            };
            let name = format!("vpclink {} {what}", step.link());
            let made = step
                .aws
                .ec2
                .create_security_group(step.vpc_id(), &name, &tags);
            match label(create_step, made).await {
                Ok(id) => id,
                // Made by an earlier run that died before the survey could list it (reads lag creates: eventual
                // consistency, https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
                Err(e) if e.code() == "InvalidGroup.Duplicate" => {
                    Made::Real(adopt_group(step, &tags, e).await?)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    step.record(|s| {
        let text = Some(id.as_str().to_string());
        if is_tunnel {
            s.tunnel_sg = text
        } else {
            s.test_sg = text
        }
    })?;
    Ok(id)
}

/// Make the group's ingress rules exactly `desired`, adding the missing ones at once. A group the survey did not
/// see was made by this run and has no ingress rules yet, and neither has one a dry run only planned. `step_of` names
/// each added rule's step (for the call log).
pub async fn ensure_rules(
    step: &Step<'_>,
    group: &Id,
    desired: &[Rule],
    step_of: &dyn Fn(&Rule) -> &'static str,
) -> Result<()> {
    let group_id = group.as_str();
    let surveyed = |id: &&str| step.survey.groups.iter().any(|g| g.group_id() == Some(*id));
    let existing: Vec<(String, Rule)> = match group.real().filter(surveyed) {
        None => Vec::new(),
        Some(real) => {
            let read = crate::aws::ec2::retry_not_found(|| {
                step.aws.ec2.describe_security_group_rules(real)
            });
            label("rules_read", read)
                .await?
                .iter()
                .filter_map(existing_rule)
                .collect()
        }
    };
    let (add, revoke) = diff(desired, &existing);
    if !revoke.is_empty() {
        label(
            "rules_revoke",
            step.aws.ec2.revoke_ingress(group_id, revoke),
        )
        .await?;
    }
    // One call per rule: a rule that appeared meanwhile (Duplicate) does not hold back the others. A group just
    // created may not be visible yet (NotFound): retried.
    let adds = add.iter().map(|rule| {
        let (permission, summary) = (rule.permission(), rule.summary());
        let made = async move {
            let r = crate::aws::ec2::retry_not_found(|| {
                step.aws
                    .ec2
                    .authorize_ingress(group_id, vec![permission.clone()], &summary)
            })
            .await;
            match r {
                Err(e) if e.is_duplicate() => Ok(()),
                other => other,
            }
        };
        label(step_of(rule), made)
    });
    for r in futures_util::future::join_all(adds).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_rules_are_exactly_as_specified() {
        let rules = tunnel_rules(
            "203.0.113.7/32".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
            &[
                "10.0.0.0/16".parse().unwrap(),
                "10.5.0.0/16".parse().unwrap(),
            ],
        );
        let s: Vec<String> = rules.iter().map(Rule::summary).collect();
        assert_eq!(
            s,
            [
                "tcp 22..22 from 203.0.113.7/32",
                "udp 500..500 from 198.51.100.9/32",
                "udp 4500..4500 from 198.51.100.9/32",
                "50 -1..-1 from 198.51.100.9/32",
                "icmp 8..-1 from 198.51.100.9/32",
                "-1 -1..-1 from 10.0.0.0/16",
                "-1 -1..-1 from 10.5.0.0/16",
            ]
        );
    }

    #[test]
    fn diff_adds_missing_and_revokes_extra_ignoring_descriptions() {
        let want = test_rules("sg-1", &["172.16.0.0/16".parse().unwrap()]);
        let mut have: Vec<(String, Rule)> = vec![
            ("sgr-a".into(), want[0].clone()),
            (
                "sgr-b".into(),
                Rule::new(
                    "tcp",
                    80,
                    80,
                    Source::Cidr("0.0.0.0/0".parse().unwrap()),
                    "",
                ),
            ),
        ];
        have[0].1.description = "other words".into();
        let (add, revoke) = diff(&want, &have);
        assert_eq!(add, vec![want[1].clone()]);
        assert_eq!(revoke, vec!["sgr-b".to_string()]);
        let all: Vec<(String, Rule)> = want
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (format!("sgr-{i}"), r))
            .collect();
        assert_eq!(diff(&want, &all), (vec![], vec![]));
    }
}
