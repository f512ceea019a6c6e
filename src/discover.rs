//! Discovery: which VPC on each side, its IPv4 CIDRs, every route table with its routes, and the subnets the hosts
//! go into. The AWS reads are a thin shell around pure selection rules, which the unit tests pin down.

use crate::aws::call_log::step;
use crate::aws::{AwsError, SideAws};
use crate::link::SidePlan;
use crate::plan::VpcAddresses;
use crate::side::Side;
use aws_sdk_ec2::types::{RouteState, RouteTable, Subnet, Vpc, VpcCidrBlockStateCode};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

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
    /// Set when the route's destination is a managed prefix list: this entry is one of the list's CIDRs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_list: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub id: String,
    pub main: bool,
    pub subnets: Vec<String>,
    /// IPv4 routes; a prefix-list route is expanded into one entry per CIDR of the list.
    pub routes: Vec<RouteEntry>,
    /// What the table's routes count against the routes-per-table quota: a prefix-list route counts as the list's
    /// maximum entries (https://docs.aws.amazon.com/vpc/latest/userguide/managed-prefix-lists.html).
    pub quota_weight: usize,
}

/// A route table associated with an internet or virtual private gateway (ingress routing). Such a table accepts
/// only routes whose destination is inside the VPC (https://docs.aws.amazon.com/vpc/latest/userguide/gateway-route-tables.html),
/// so a mapped range can never go there: it is left out of the plan, the preflight and `down`, and `plan` says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayTable {
    pub id: String,
    pub gateway: String,
}

impl std::fmt::Display for GatewayTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is associated with gateway {} (ingress routing: only destinations inside the VPC are allowed there); it gets no route",
            self.id, self.gateway
        )
    }
}

impl Table {
    pub fn route_to(&self, destination: Ipv4Net) -> Option<&RouteEntry> {
        self.routes
            .iter()
            .find(|r| r.destination == destination && r.prefix_list.is_none())
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
    /// The route tables that get the link's routes: every table of the VPC but gateway route tables.
    pub tables: Vec<Table>,
    pub gateway_tables: Vec<GatewayTable>,
    /// Subnets whose route table sends 0.0.0.0/0 to an internet gateway (sorted).
    pub public_subnets: Vec<String>,
    /// The rest (sorted).
    pub private_subnets: Vec<String>,
    /// Each subnet's availability zone.
    pub subnet_zones: std::collections::BTreeMap<String, String>,
    /// The subnets the hosts go into, once chosen (see [`SideFacts::choose_subnets`]); else the first of each kind.
    pub chosen: ChosenSubnets,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChosenSubnets {
    pub tunnel: Option<String>,
    pub test: Option<String>,
}

/// The first of `candidates` in a zone where the instance type is offered (`offered` None: not known, any zone), or
/// the one the user asked for, checked. Err says why none fits and what to do.
pub fn choose_subnet(
    candidates: &[String],
    zones: &std::collections::BTreeMap<String, String>,
    offered: Option<&std::collections::BTreeSet<String>>,
    requested: Option<&str>,
    what: &str,
) -> Result<Option<String>, String> {
    let zone = |s: &str| zones.get(s).map(String::as_str).unwrap_or("?");
    let fits = |s: &str| offered.is_none_or(|o| o.contains(zone(s)));
    let offered_list = || {
        offered
            .map(|o| o.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    if let Some(r) = requested {
        if !candidates.iter().any(|c| c == r) {
            return Err(format!(
                "subnet {r} is not a {what} of this VPC (candidates: {}); pass one of them",
                if candidates.is_empty() {
                    "none".to_string()
                } else {
                    candidates.join(" ")
                }
            ));
        }
        if !fits(r) {
            return Err(format!(
                "subnet {r} is in {}, where the instance type is not offered (offered in: {}); pass a subnet in one of those zones, or another --instance-type",
                zone(r),
                offered_list()
            ));
        }
        return Ok(Some(r.to_string()));
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    match candidates.iter().find(|c| fits(c)) {
        Some(c) => Ok(Some(c.clone())),
        None => Err(format!(
            "the instance type is not offered in the zone(s) of any {what} ({}); it is offered in: {}. Add a {what} in one of those zones, or pass another --instance-type",
            candidates
                .iter()
                .map(|c| format!("{c} in {}", zone(c)))
                .collect::<Vec<_>>()
                .join(", "),
            offered_list()
        )),
    }
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
        self.chosen
            .tunnel
            .as_deref()
            .or(self.public_subnets.first().map(String::as_str))
    }

    /// The test host's subnet: a private one if there is one, so it is reached only through the link.
    pub fn test_subnet(&self) -> Option<&str> {
        self.chosen.test.as_deref().or(self
            .private_subnets
            .first()
            .or(self.public_subnets.first())
            .map(String::as_str))
    }

    /// Choose the hosts' subnets: the tunnel host's as requested (checked) or the first public subnet in a zone that
    /// offers the instance type; the test host's the first private subnet in such a zone (else a public one).
    pub fn choose_subnets(
        &mut self,
        requested: Option<&str>,
        offered: Option<&std::collections::BTreeSet<String>>,
    ) -> Result<(), String> {
        let tunnel = choose_subnet(
            &self.public_subnets,
            &self.subnet_zones,
            offered,
            requested,
            "public subnet (one routing 0.0.0.0/0 to an internet gateway)",
        )?;
        let test = choose_subnet(
            &self.private_subnets,
            &self.subnet_zones,
            offered,
            None,
            "private subnet",
        )
        .ok()
        .flatten()
        .or_else(|| tunnel.clone());
        self.chosen = ChosenSubnets { tunnel, test };
        Ok(())
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
            skipped_tables: self.gateway_tables.clone(),
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

/// The gateway a route table is associated with (ingress routing), if any.
pub fn gateway_association(t: &RouteTable) -> Option<GatewayTable> {
    t.associations()
        .iter()
        .find_map(|a| a.gateway_id().filter(|g| !g.is_empty()))
        .map(|g| GatewayTable {
            id: t.route_table_id().unwrap_or_default().to_string(),
            gateway: g.to_string(),
        })
}

/// A managed prefix list as far as route tables care: its IPv4 CIDRs and its maximum size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixList {
    pub cidrs: Vec<Ipv4Net>,
    pub max_entries: usize,
}

/// The prefix lists the tables' routes name (to be read with GetManagedPrefixListEntries).
pub fn prefix_list_ids(tables: &[RouteTable]) -> Vec<String> {
    let mut ids: Vec<String> = tables
        .iter()
        .flat_map(|t| t.routes())
        .filter_map(|r| r.destination_prefix_list_id().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A route table as the planner sees it. Prefix-list routes become one entry per IPv4 CIDR of the list (a corporate
/// 10.0.0.0/8 to a transit gateway is as occupied as a plain route); IPv6 routes and lists are left out.
pub fn table(t: &RouteTable, lists: &std::collections::BTreeMap<String, PrefixList>) -> Table {
    let mut quota_weight = 0;
    let mut routes = Vec::new();
    for r in t.routes() {
        let target = route_target(r);
        let blackhole = r.state() == Some(&RouteState::Blackhole);
        if let Some(pl) = r.destination_prefix_list_id() {
            let list = lists.get(pl).cloned().unwrap_or_default();
            quota_weight += list.max_entries.max(1);
            routes.extend(list.cidrs.iter().map(|&destination| RouteEntry {
                destination,
                target: target.clone(),
                blackhole,
                prefix_list: Some(pl.to_string()),
            }));
            continue;
        }
        quota_weight += 1;
        if let Some(destination) = r
            .destination_cidr_block()
            .and_then(|c| c.parse::<Ipv4Net>().ok())
        {
            routes.push(RouteEntry {
                destination,
                target,
                blackhole,
                prefix_list: None,
            });
        }
    }
    Table {
        id: t.route_table_id().unwrap_or_default().to_string(),
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        subnets: t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(str::to_string))
            .collect(),
        routes,
        quota_weight,
    }
}

fn route_target(r: &aws_sdk_ec2::types::Route) -> String {
    [
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
    .to_string()
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
    let tables_and_lists = async {
        let tables = step("tables", aws.ec2.describe_route_tables(&vpc.id)).await?;
        let lists = read_prefix_lists(aws, &prefix_list_ids(&tables)).await?;
        Ok::<_, AwsError>((tables, lists))
    };
    let (subnets, (tables, lists)) = tokio::try_join!(
        step("subnets", aws.ec2.describe_subnets(&vpc.id)),
        tables_and_lists
    )?;
    let (gateway, routed): (Vec<&RouteTable>, Vec<&RouteTable>) = tables
        .iter()
        .partition(|t| gateway_association(t).is_some());
    let mut gateway_tables: Vec<GatewayTable> = gateway
        .into_iter()
        .filter_map(gateway_association)
        .collect();
    gateway_tables.sort_by(|a, b| a.id.cmp(&b.id));
    let mut tables: Vec<Table> = routed.into_iter().map(|t| table(t, &lists)).collect();
    tables.sort_by(|a, b| (!a.main, &a.id).cmp(&(!b.main, &b.id)));
    let subnet_zones = subnets
        .iter()
        .map(|s| {
            (
                subnet_id(s),
                s.availability_zone().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let subnets: Vec<String> = subnets.iter().map(subnet_id).collect();
    let (public_subnets, private_subnets) = classify_subnets(&subnets, &tables);
    Ok(SideFacts {
        vpc,
        tables,
        gateway_tables,
        public_subnets,
        private_subnets,
        subnet_zones,
        chosen: ChosenSubnets::default(),
    })
}

/// Each prefix list's entries and maximum size, all lists at once (AWS-managed lists included: their entries are
/// readable by every account).
async fn read_prefix_lists(
    aws: &SideAws,
    ids: &[String],
) -> Result<std::collections::BTreeMap<String, PrefixList>, AwsError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let (meta, entries) = tokio::try_join!(
        step("prefix_lists", aws.ec2.describe_prefix_lists(ids)),
        futures_util::future::try_join_all(ids.iter().map(|id| async move {
            let cidrs = step("prefix_entries", aws.ec2.prefix_list_entries(id)).await?;
            Ok::<_, AwsError>((id.clone(), cidrs))
        }))
    )?;
    Ok(entries
        .into_iter()
        .map(|(id, cidrs)| {
            let cidrs: Vec<Ipv4Net> = cidrs.iter().filter_map(|c| c.parse().ok()).collect();
            let max_entries = meta
                .iter()
                .find(|(m, _)| *m == id)
                .map_or(cidrs.len(), |(_, max)| *max);
            (id, PrefixList { cidrs, max_entries })
        })
        .collect())
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
            prefix_list: None,
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
            quota_weight: 1,
        };
        let public = Table {
            id: "rtb-pub".into(),
            main: false,
            subnets: vec!["subnet-b".into()],
            routes: vec![route("10.0.0.0/16", "local"), route("0.0.0.0/0", "igw-1")],
            quota_weight: 2,
        };
        let nat = Table {
            id: "rtb-nat".into(),
            main: false,
            subnets: vec!["subnet-c".into()],
            routes: vec![route("0.0.0.0/0", "nat-1")],
            quota_weight: 1,
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

    #[test]
    fn prefix_list_routes_are_expanded_and_gateway_tables_recognised() {
        use aws_sdk_ec2::types::{Route, RouteTable, RouteTableAssociation};
        let t = RouteTable::builder()
            .route_table_id("rtb-1")
            .routes(
                Route::builder()
                    .destination_cidr_block("10.0.0.0/16")
                    .gateway_id("local")
                    .build(),
            )
            .routes(
                Route::builder()
                    .destination_prefix_list_id("pl-corp")
                    .transit_gateway_id("tgw-1")
                    .build(),
            )
            .routes(
                Route::builder()
                    .destination_ipv6_cidr_block("2600:1f18::/56")
                    .gateway_id("local")
                    .build(),
            )
            .associations(
                RouteTableAssociation::builder()
                    .subnet_id("subnet-1")
                    .build(),
            )
            .build();
        let mut lists = std::collections::BTreeMap::new();
        lists.insert(
            "pl-corp".to_string(),
            PrefixList {
                cidrs: vec![
                    "10.1.0.0/16".parse().unwrap(),
                    "172.16.0.0/12".parse().unwrap(),
                ],
                max_entries: 20,
            },
        );
        assert_eq!(
            prefix_list_ids(std::slice::from_ref(&t)),
            vec!["pl-corp".to_string()]
        );
        let got = table(&t, &lists);
        let dests: Vec<String> = got
            .routes
            .iter()
            .map(|r| r.destination.to_string())
            .collect();
        // The IPv6 route is left out; the list's two CIDRs count as routes to the transit gateway.
        assert_eq!(dests, vec!["10.0.0.0/16", "10.1.0.0/16", "172.16.0.0/12"]);
        assert!(got.routes[1..].iter().all(|r| r.target == "tgw-1"));
        // A prefix-list route weighs its list's maximum entries against the routes-per-table quota.
        assert_eq!(got.quota_weight, 1 + 20 + 1);
        // A list entry is occupied space, but not "a route to" that exact destination that we could own.
        assert!(got.route_to("10.1.0.0/16".parse().unwrap()).is_none());
        assert!(gateway_association(&t).is_none());

        let edge = RouteTable::builder()
            .route_table_id("rtb-edge")
            .associations(RouteTableAssociation::builder().gateway_id("igw-1").build())
            .build();
        assert_eq!(
            gateway_association(&edge),
            Some(GatewayTable {
                id: "rtb-edge".into(),
                gateway: "igw-1".into()
            })
        );
    }

    #[test]
    fn the_subnet_is_in_a_zone_that_offers_the_instance_type() {
        let zones: std::collections::BTreeMap<String, String> =
            [("subnet-a", "eu-west-1a"), ("subnet-b", "eu-west-1b")]
                .iter()
                .map(|(s, z)| (s.to_string(), z.to_string()))
                .collect();
        let cands = vec!["subnet-a".to_string(), "subnet-b".to_string()];
        let only_b: std::collections::BTreeSet<String> = ["eu-west-1b".to_string()].into();
        let w = "public subnet";
        assert_eq!(
            choose_subnet(&cands, &zones, None, None, w),
            Ok(Some("subnet-a".into()))
        );
        assert_eq!(
            choose_subnet(&cands, &zones, Some(&only_b), None, w),
            Ok(Some("subnet-b".into()))
        );
        assert_eq!(
            choose_subnet(&cands, &zones, Some(&only_b), Some("subnet-b"), w),
            Ok(Some("subnet-b".into()))
        );
        let e = choose_subnet(&cands, &zones, Some(&only_b), Some("subnet-a"), w).unwrap_err();
        assert!(
            e.contains("eu-west-1a") && e.contains("offered in: eu-west-1b"),
            "{e}"
        );
        let e = choose_subnet(&cands, &zones, None, Some("subnet-x"), w).unwrap_err();
        assert!(e.contains("not a public subnet"), "{e}");
        let none: std::collections::BTreeSet<String> = ["eu-west-1c".to_string()].into();
        let e = choose_subnet(&cands, &zones, Some(&none), None, w).unwrap_err();
        assert!(
            e.contains("subnet-a in eu-west-1a") && e.contains("offered in: eu-west-1c"),
            "{e}"
        );
        assert_eq!(choose_subnet(&[], &zones, Some(&none), None, w), Ok(None));
    }
}
