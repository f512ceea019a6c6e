//! Discovery: which VPC on each side, its IPv4 CIDRs, every route table with its routes, and the subnets the hosts
//! go into. The AWS reads are a thin shell around pure selection rules, which the unit tests pin down.

use crate::aws::call_log::step;
use crate::aws::{AwsError, SideAws};
use crate::link::SidePlan;
use crate::plan::VpcAddresses;
use crate::side::Side;
use aws_sdk_ec2::types::{RouteState, RouteTable, Subnet, Vpc, VpcCidrBlockStateCode};
use ipnet::Ipv4Net;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpcInfo {
    pub id: String,
    pub is_default: bool,
    pub name: Option<String>,
    /// Associated IPv4 CIDRs, primary first.
    pub cidrs: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteEntry {
    pub destination: Ipv4Net,
    /// igw-..., eni-..., local, pcx-...: whatever the route points at.
    pub target: String,
    pub blackhole: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub id: String,
    pub main: bool,
    pub subnets: Vec<String>,
    pub routes: Vec<RouteEntry>,
}

impl Table {
    pub fn route_to(&self, destination: Ipv4Net) -> Option<&RouteEntry> {
        self.routes.iter().find(|r| r.destination == destination)
    }

    fn has_internet_route(&self) -> bool {
        self.routes.iter().any(|r| {
            r.destination.prefix_len() == 0 && r.target.starts_with("igw-") && !r.blackhole
        })
    }
}

/// Everything `up` needs to know about one side's VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideFacts {
    pub vpc: VpcInfo,
    pub tables: Vec<Table>,
    /// Subnets whose route table sends 0.0.0.0/0 to an internet gateway (sorted).
    pub public_subnets: Vec<String>,
    /// The rest (sorted).
    pub private_subnets: Vec<String>,
}

impl SideFacts {
    pub fn addresses(&self) -> VpcAddresses {
        VpcAddresses {
            cidrs: self.vpc.cidrs.clone(),
            route_destinations: self
                .tables
                .iter()
                .flat_map(|t| t.routes.iter().map(|r| r.destination))
                .collect(),
        }
    }

    pub fn table_ids(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.id.clone()).collect()
    }

    /// The tunnel host's subnet: it needs the internet gateway.
    pub fn public_subnet(&self) -> Option<&str> {
        self.public_subnets.first().map(String::as_str)
    }

    /// The test host's subnet: a private one if there is one, so it is reached only through the link.
    pub fn test_subnet(&self) -> Option<&str> {
        self.private_subnets
            .first()
            .or(self.public_subnets.first())
            .map(String::as_str)
    }

    pub fn side_plan(&self, aws: &SideAws) -> SidePlan {
        SidePlan {
            profile: aws.profile.clone(),
            region: aws.region.clone(),
            account: aws.account.clone(),
            vpc_id: self.vpc.id.clone(),
            cidrs: self.vpc.cidrs.clone(),
            mapped: Vec::new(),
            route_tables: self.table_ids(),
            public_subnet: self.public_subnet().map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoverError {
    #[error("{side} side (profile {profile}, {region}): VPC {id} not found; pass an existing --{side}-vpc (`aws ec2 describe-vpcs --profile {profile}`)")]
    VpcNotFound {
        side: Side,
        profile: String,
        region: String,
        id: String,
    },
    #[error("{side} side (profile {profile}, {region}): no VPC at all; create one or use another profile/region")]
    NoVpc {
        side: Side,
        profile: String,
        region: String,
    },
    #[error("{side} side (profile {profile}, {region}): {} VPCs could be meant: {}; pick one with --{side}-vpc", .candidates.len(), describe(.candidates))]
    SeveralVpcs {
        side: Side,
        profile: String,
        region: String,
        candidates: Vec<VpcInfo>,
    },
    #[error("{side} side: VPC {vpc} has no public subnet (none routes 0.0.0.0/0 to an internet gateway); the tunnel host needs one: attach an internet gateway and add that route to a subnet's route table")]
    NoPublicSubnet { side: Side, vpc: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

fn describe(vpcs: &[VpcInfo]) -> String {
    vpcs.iter()
        .map(|v| {
            let cidrs: Vec<String> = v.cidrs.iter().map(|c| c.to_string()).collect();
            match &v.name {
                Some(n) => format!("{} ({n}, {})", v.id, cidrs.join(" ")),
                None => format!("{} ({})", v.id, cidrs.join(" ")),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which VPC: the one asked for; else the only non-default VPC; else the default VPC.
pub fn choose_vpc(
    side: Side,
    vpcs: &[VpcInfo],
    requested: Option<&str>,
) -> Result<VpcInfo, Choice> {
    if let Some(id) = requested {
        return vpcs
            .iter()
            .find(|v| v.id == id)
            .cloned()
            .ok_or(Choice::NotFound);
    }
    let _ = side;
    let custom: Vec<&VpcInfo> = vpcs.iter().filter(|v| !v.is_default).collect();
    match custom.as_slice() {
        [only] => Ok((*only).clone()),
        [] => vpcs
            .iter()
            .find(|v| v.is_default)
            .cloned()
            .ok_or(Choice::None),
        several => Err(Choice::Several(
            several.iter().map(|v| (*v).clone()).collect(),
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    NotFound,
    None,
    Several(Vec<VpcInfo>),
}

/// Split subnets into public and private by the route table each one actually uses (its own, else the main one).
pub fn classify_subnets(subnets: &[String], tables: &[Table]) -> (Vec<String>, Vec<String>) {
    let main = tables.iter().find(|t| t.main);
    let mut public = Vec::new();
    let mut private = Vec::new();
    let mut sorted = subnets.to_vec();
    sorted.sort();
    for s in sorted {
        let table = tables.iter().find(|t| t.subnets.contains(&s)).or(main);
        if table.is_some_and(Table::has_internet_route) {
            public.push(s);
        } else {
            private.push(s);
        }
    }
    (public, private)
}

// ---- conversions from the SDK's shapes --------------------------------------------------------------------------

pub fn vpc_info(v: &Vpc) -> VpcInfo {
    let mut cidrs: Vec<Ipv4Net> = Vec::new();
    if let Some(primary) = v.cidr_block().and_then(|c| c.parse().ok()) {
        cidrs.push(primary);
    }
    for a in v.cidr_block_association_set() {
        let live = a
            .cidr_block_state()
            .and_then(|s| s.state())
            .is_none_or(|s| {
                matches!(
                    s,
                    VpcCidrBlockStateCode::Associated | VpcCidrBlockStateCode::Associating
                )
            });
        if let Some(c) = a.cidr_block().and_then(|c| c.parse::<Ipv4Net>().ok()) {
            if live && !cidrs.contains(&c) {
                cidrs.push(c);
            }
        }
    }
    VpcInfo {
        id: v.vpc_id().unwrap_or_default().to_string(),
        is_default: v.is_default().unwrap_or(false),
        name: crate::aws::tags::tag_value(v.tags(), "Name").map(str::to_string),
        cidrs,
    }
}

pub fn table(t: &RouteTable) -> Table {
    let routes = t
        .routes()
        .iter()
        .filter_map(|r| {
            let destination: Ipv4Net = r.destination_cidr_block()?.parse().ok()?;
            let target = [
                r.gateway_id(),
                r.network_interface_id(),
                r.instance_id(),
                r.nat_gateway_id(),
                r.transit_gateway_id(),
                r.vpc_peering_connection_id(),
                r.local_gateway_id(),
                r.carrier_gateway_id(),
                r.egress_only_internet_gateway_id(),
                r.core_network_arn(),
            ]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string();
            Some(RouteEntry {
                destination,
                target,
                blackhole: r.state() == Some(&RouteState::Blackhole),
            })
        })
        .collect();
    Table {
        id: t.route_table_id().unwrap_or_default().to_string(),
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        subnets: t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(str::to_string))
            .collect(),
        routes,
    }
}

fn subnet_id(s: &Subnet) -> String {
    s.subnet_id().unwrap_or_default().to_string()
}

// ---- the shell --------------------------------------------------------------------------------------------------

/// Which VPC a side means: the one the user named (or the account's only candidate), or the one a link uses.
#[derive(Debug, Clone, Copy)]
pub enum VpcChoice<'a> {
    Pick(Option<&'a str>),
    Known(&'a str),
}

/// Find the side's VPC (one DescribeVpcs).
pub async fn find_vpc(aws: &SideAws, choice: VpcChoice<'_>) -> Result<VpcInfo, DiscoverError> {
    let side = aws.side;
    let (profile, region) = (aws.profile.clone(), aws.region.clone());
    let filters = match choice {
        VpcChoice::Known(id) => vec![crate::aws::tags::filter("vpc-id", id)],
        VpcChoice::Pick(_) => Vec::new(),
    };
    let vpcs: Vec<VpcInfo> = step("vpcs", aws.ec2.describe_vpcs(filters))
        .await?
        .iter()
        .map(vpc_info)
        .collect();
    let requested = match choice {
        VpcChoice::Known(id) => {
            return vpcs.into_iter().find(|v| v.id == id).ok_or_else(|| {
                DiscoverError::VpcNotFound {
                    side,
                    profile,
                    region,
                    id: id.to_string(),
                }
            })
        }
        VpcChoice::Pick(requested) => requested,
    };
    choose_vpc(side, &vpcs, requested).map_err(|c| match c {
        Choice::NotFound => DiscoverError::VpcNotFound {
            side,
            profile,
            region,
            id: requested.unwrap_or_default().to_string(),
        },
        Choice::None => DiscoverError::NoVpc {
            side,
            profile,
            region,
        },
        Choice::Several(candidates) => DiscoverError::SeveralVpcs {
            side,
            profile,
            region,
            candidates,
        },
    })
}

/// Read one side's VPC as it is now.
pub async fn discover(aws: &SideAws, choice: VpcChoice<'_>) -> Result<SideFacts, DiscoverError> {
    read_vpc(aws, find_vpc(aws, choice).await?).await
}

/// Read a VPC's subnets and route tables (both at once).
pub async fn read_vpc(aws: &SideAws, vpc: VpcInfo) -> Result<SideFacts, DiscoverError> {
    let (subnets, tables) = tokio::try_join!(
        step("subnets", aws.ec2.describe_subnets(&vpc.id)),
        step("tables", aws.ec2.describe_route_tables(&vpc.id))
    )?;
    let mut tables: Vec<Table> = tables.iter().map(table).collect();
    tables.sort_by(|a, b| (!a.main, &a.id).cmp(&(!b.main, &b.id)));
    let subnets: Vec<String> = subnets.iter().map(subnet_id).collect();
    let (public_subnets, private_subnets) = classify_subnets(&subnets, &tables);
    Ok(SideFacts {
        vpc,
        tables,
        public_subnets,
        private_subnets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpc(id: &str, is_default: bool) -> VpcInfo {
        VpcInfo {
            id: id.into(),
            is_default,
            name: None,
            cidrs: vec!["10.0.0.0/16".parse().unwrap()],
        }
    }

    fn route(dest: &str, target: &str) -> RouteEntry {
        RouteEntry {
            destination: dest.parse().unwrap(),
            target: target.into(),
            blackhole: false,
        }
    }

    #[test]
    fn vpc_choice_follows_the_rules() {
        let d = vpc("vpc-d", true);
        let a = vpc("vpc-a", false);
        let b = vpc("vpc-b", false);
        assert_eq!(
            choose_vpc(Side::East, std::slice::from_ref(&d), None),
            Ok(d.clone())
        );
        assert_eq!(
            choose_vpc(Side::East, &[d.clone(), a.clone()], None),
            Ok(a.clone())
        );
        assert_eq!(
            choose_vpc(Side::East, &[d.clone(), a.clone(), b.clone()], None),
            Err(Choice::Several(vec![a.clone(), b.clone()]))
        );
        assert_eq!(
            choose_vpc(
                Side::East,
                &[d.clone(), a.clone(), b.clone()],
                Some("vpc-d")
            ),
            Ok(d.clone())
        );
        assert_eq!(
            choose_vpc(Side::East, &[a], Some("vpc-x")),
            Err(Choice::NotFound)
        );
        assert_eq!(choose_vpc(Side::East, &[], None), Err(Choice::None));
    }

    #[test]
    fn subnets_use_their_own_table_else_the_main_one() {
        let main = Table {
            id: "rtb-main".into(),
            main: true,
            subnets: vec![],
            routes: vec![route("10.0.0.0/16", "local")],
        };
        let public = Table {
            id: "rtb-pub".into(),
            main: false,
            subnets: vec!["subnet-b".into()],
            routes: vec![route("10.0.0.0/16", "local"), route("0.0.0.0/0", "igw-1")],
        };
        let nat = Table {
            id: "rtb-nat".into(),
            main: false,
            subnets: vec!["subnet-c".into()],
            routes: vec![route("0.0.0.0/0", "nat-1")],
        };
        let subnets = vec!["subnet-c".to_string(), "subnet-b".into(), "subnet-a".into()];
        let tables = [main.clone(), public, nat];
        assert_eq!(
            classify_subnets(&subnets, &tables),
            (
                vec!["subnet-b".into()],
                vec!["subnet-a".into(), "subnet-c".into()]
            )
        );
        // A main table with an internet route makes every unassociated subnet public.
        let mut main_igw = main;
        main_igw.routes.push(route("0.0.0.0/0", "igw-1"));
        assert_eq!(
            classify_subnets(&["subnet-a".into()], &[main_igw]).0,
            vec!["subnet-a".to_string()]
        );
    }
}
