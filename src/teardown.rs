//! `vpclink down`: collect everything the link owns on both sides first (from the state and by tag, so it works
//! without the state too), print it, then delete in dependency order and wait until each thing is gone: routes,
//! Elastic IP association and address, instances (until terminated) and key pairs at once, then security groups. Idempotent: what is
//! already gone counts as deleted. Ends by checking that nothing with the link's tags is left.

use crate::aws::call_log::step;
use crate::aws::ec2::Ec2;
use crate::aws::tags::{filter, link_filters, routes_of, tag_value, ROLE, ROLE_TEST};
use crate::aws::{AwsError, SideAws};
use crate::discover;
use crate::error::{Error, Result};
use crate::side::Side;
use crate::state::{LinkState, OwnedRoute, SideState};
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use futures_util::future::join_all;
use ipnet::Ipv4Net;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// Everything one side of a link owns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub side: Option<Side>,
    pub routes: Vec<OwnedRoute>,
    /// (allocation id, association id, public ip)
    pub elastic_ips: Vec<(String, Option<String>, String)>,
    pub instances: Vec<String>,
    /// Test host's group first: it refers to the tunnel host's.
    pub security_groups: Vec<String>,
    pub key_pairs: Vec<String>,
    /// The tunnel-down alarm (CloudWatch, this side's region).
    pub alarms: Vec<String>,
    /// The tunnel host's instance profile and role (IAM, this side's account), by name.
    pub instance_profiles: Vec<String>,
    pub iam_roles: Vec<String>,
}

impl Inventory {
    pub fn count(&self) -> usize {
        self.routes.len()
            + self.elastic_ips.len()
            + self.instances.len()
            + self.security_groups.len()
            + self.key_pairs.len()
            + self.alarms.len()
            + self.instance_profiles.len()
            + self.iam_roles.len()
    }

    pub fn rows(&self) -> Vec<Vec<String>> {
        let side = self.side.map(|s| s.to_string()).unwrap_or_default();
        let mut rows = Vec::new();
        let mut row = |kind: &str, id: String| rows.push(vec![side.clone(), kind.to_string(), id]);
        for r in &self.routes {
            row("route", format!("{} {}", r.route_table_id, r.destination));
        }
        for (alloc, _, ip) in &self.elastic_ips {
            row("elastic-ip", format!("{alloc} ({ip})"));
        }
        for i in &self.instances {
            row("instance", i.clone());
        }
        for g in &self.security_groups {
            row("security-group", g.clone());
        }
        for k in &self.key_pairs {
            row("key-pair", k.clone());
        }
        for a in &self.alarms {
            row("alarm", a.clone());
        }
        for p in &self.instance_profiles {
            row("instance-profile", p.clone());
        }
        for r in &self.iam_roles {
            row("iam-role", r.clone());
        }
        rows
    }
}

fn alive(state: Option<&InstanceStateName>) -> bool {
    !matches!(state, Some(InstanceStateName::Terminated))
}

/// Why a side is being collected: to show and delete it, or to check that nothing is left. Only the call log's step
/// names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Inventory,
    LeakCheck,
}

impl Purpose {
    fn step(self, inventory: &'static str, leak_check: &'static str) -> &'static str {
        match self {
            Purpose::Inventory => inventory,
            Purpose::LeakCheck => leak_check,
        }
    }
}

/// A read `down` makes for a kind of resource that the state says this link never had (`unrecorded`: a link made
/// before vpclink made alarms, instance profiles or zones, or with `--no-dns`): a profile written for that link may
/// lack the permission. Denied, it is a warning naming what was not checked, not a `down` that fails before deleting
/// anything. Without a state (resources found by tag) or with a state that records the kind, a denial stays an error.
pub fn unrecorded_denied_is_unchecked<T: Default>(
    r: Result<T>,
    side: Side,
    unrecorded: bool,
    what: &str,
) -> Result<T> {
    match r {
        Err(Error::Aws(e)) if unrecorded && e.is_denied() => {
            tracing::warn!(
                "{side} side: not checked for {what} (the state records none): {e}; grant the permission and run \
                 `vpclink down` again if this link may have one"
            );
            Ok(T::default())
        }
        r => r,
    }
}

/// What the link owns on one side: the union of the state's records (where they still exist) and tagged resources.
/// The four kinds are read at once; routes once the instances (whose interfaces they point at) are known.
pub async fn collect(
    aws: &SideAws,
    link: &str,
    state: Option<&LinkState>,
    purpose: Purpose,
) -> Result<Inventory> {
    let recorded = state.map(|s| s.side(aws.side).clone()).unwrap_or_default();
    let vpc = state.map(|s| s.plan.side(aws.side).vpc_id.clone());
    let metrics = async {
        unrecorded_denied_is_unchecked(
            crate::provision::metrics::collect(
                aws,
                link,
                recorded.metrics.as_ref(),
                purpose == Purpose::LeakCheck,
            )
            .await,
            aws.side,
            state.is_some() && recorded.metrics.is_none(),
            "an instance profile, IAM role or alarm",
        )
    };
    let (routes, elastic_ips, groups, key_pairs, metrics) = tokio::try_join!(
        instances_and_routes(aws, link, &recorded, vpc, purpose),
        addresses(aws, link, &recorded, purpose),
        groups(aws, link, &recorded, purpose),
        key_pairs(aws, link, &recorded, purpose),
        metrics,
    )?;
    let Found {
        instances,
        mut routes,
        tables,
        enis,
    } = routes;
    let (groups, destinations) = groups;
    for r in left_behind(aws, link, &destinations, tables, &enis, purpose).await? {
        if !routes.contains(&r) {
            routes.push(r);
        }
    }
    Ok(Inventory {
        side: Some(aws.side),
        routes,
        elastic_ips,
        instances,
        security_groups: groups,
        key_pairs,
        alarms: metrics.alarms,
        instance_profiles: metrics.instance_profiles,
        iam_roles: metrics.roles,
    })
}

/// The tables that can hold the link's routes: gateway route tables never do (see discover::GatewayTable), and the
/// link's routes are plain CIDR routes, so prefix lists need no reading here.
fn link_tables(tables: &[aws_sdk_ec2::types::RouteTable]) -> Vec<discover::Table> {
    tables
        .iter()
        .filter(|t| discover::gateway_association(t).is_none())
        .map(|t| discover::table(t, &Default::default()))
        .collect()
}

/// The link's live instances, and every route to their interfaces plus recorded routes left blackholed when the
/// host went away. Also the route tables read, by VPC.
async fn instances_and_routes(
    aws: &SideAws,
    link: &str,
    recorded: &SideState,
    vpc: Option<String>,
    purpose: Purpose,
) -> Result<Found> {
    let ec2 = &aws.ec2;
    let hosts: Vec<&crate::state::Host> = [&recorded.tunnel, &recorded.test]
        .into_iter()
        .flatten()
        .collect();
    let read_tables = |vpc: String, label: &'static str| async move {
        let tables = step(label, ec2.describe_route_tables(&vpc)).await?;
        Ok::<_, AwsError>((vpc, link_tables(&tables)))
    };
    // The state's VPC is known: its tables are read beside the instances.
    let tagged = step(
        purpose.step("c_inst_find", "l_inst"),
        ec2.describe_instances(link_filters(link, Some(aws.side))),
    );
    let by_record = hosts
        .iter()
        .filter_map(|h| h.instance_id.as_deref())
        .map(|id| step("c_inst_rec", ec2.describe_instance(id)));
    let known = purpose.step("c_tables", "l_tables");
    let known_tables = join_all(vpc.clone().map(|v| read_tables(v, known)));
    let (tagged, by_record, mut tables) = tokio::join!(tagged, join_all(by_record), known_tables);
    let mut found = tagged?;
    for i in by_record {
        found.extend(i?);
    }

    let mut instances = BTreeSet::new();
    let mut enis: BTreeSet<String> = hosts.iter().filter_map(|h| h.eni_id.clone()).collect();
    let mut vpcs = BTreeSet::new();
    for i in found
        .iter()
        .filter(|i| alive(i.state().and_then(|s| s.name())))
    {
        instances.insert(i.instance_id().unwrap_or_default().to_string());
        vpcs.extend(i.vpc_id().map(str::to_string));
        enis.extend(
            i.network_interfaces()
                .iter()
                .filter_map(|n| n.network_interface_id().map(str::to_string)),
        );
    }
    // VPCs known only from an instance (no state): read now.
    let more = vpcs.into_iter().filter(|v| vpc.as_ref() != Some(v));
    let later = purpose.step("c_tables_more", "l_tables");
    tables.extend(join_all(more.map(|v| read_tables(v, later))).await);
    let tables: TablesRead = tables.into_iter().collect::<std::result::Result<_, _>>()?;

    let mut routes = Vec::new();
    for (_, ts) in &tables {
        for t in ts {
            for r in &t.routes {
                let route = OwnedRoute {
                    route_table_id: t.id.clone(),
                    destination: r.destination,
                };
                let ours = enis.contains(&r.target) || instances.contains(&r.target);
                let recorded_dead = recorded.routes.contains(&route) && r.blackhole;
                if (ours || recorded_dead) && !routes.contains(&route) {
                    routes.push(route);
                }
            }
        }
    }
    Ok(Found {
        instances: instances.into_iter().collect(),
        routes,
        tables,
        enis,
    })
}

/// What [`instances_and_routes`] found.
struct Found {
    instances: Vec<String>,
    routes: Vec<OwnedRoute>,
    tables: TablesRead,
    /// The interfaces of the link's live instances (and those the state records).
    enis: BTreeSet<String>,
}

/// Route tables read, by VPC.
type TablesRead = Vec<(String, Vec<discover::Table>)>;

/// Routes the link left behind when its host went away, found without the state file: in a tunnel group's VPC, to a
/// destination its [`crate::aws::tags::ROUTES`] tags name, pointing at no live host of the link, and either a
/// blackhole (AWS, once the interface is deleted) or to an interface that is gone or still attached to this link's
/// terminated host (emulators keep the interface). Any other route there (a live host's, a detached or
/// service-managed interface's: someone else's) is left alone with a warning. Reads a VPC's tables only if they
/// were not read already.
async fn left_behind(
    aws: &SideAws,
    link: &str,
    wanted: &[(String, Vec<Ipv4Net>)],
    mut read: TablesRead,
    ours: &BTreeSet<String>,
    purpose: Purpose,
) -> Result<Vec<OwnedRoute>> {
    let tables_step = purpose.step("c_tables_tag", "l_tables_tag");
    let mut out = Vec::new();
    let mut suspects: Vec<(OwnedRoute, String)> = Vec::new();
    for (vpc, destinations) in wanted {
        if !read.iter().any(|(v, _)| v == vpc) {
            let tables = step(tables_step, aws.ec2.describe_route_tables(vpc)).await?;
            read.push((vpc.clone(), link_tables(&tables)));
        }
        let tables = read.iter().filter(|(v, _)| v == vpc).flat_map(|(_, t)| t);
        for t in tables {
            for r in &t.routes {
                if !destinations.contains(&r.destination) || ours.contains(&r.target) {
                    continue;
                }
                let route = OwnedRoute {
                    route_table_id: t.id.clone(),
                    destination: r.destination,
                };
                if r.blackhole {
                    out.push(route);
                } else if r.target.starts_with("eni-") {
                    suspects.push((route, r.target.clone()));
                }
            }
        }
    }
    let check = purpose.step("c_orphans", "l_orphans");
    let orphaned = join_all(
        suspects
            .iter()
            .map(|(_, eni)| step(check, orphaned(aws, link, eni))),
    )
    .await;
    for ((route, eni), orphan) in suspects.into_iter().zip(orphaned) {
        if orphan? {
            out.push(route);
        } else {
            tracing::warn!(
                "{} side: {} {} points at {eni}, which is not this link's; left alone",
                aws.side,
                route.route_table_id,
                route.destination
            );
        }
    }
    Ok(out)
}

/// Whether an interface is gone, or attached to this link's host on this side that is terminated (or going).
async fn orphaned(aws: &SideAws, link: &str, eni: &str) -> Result<bool> {
    let Some(nic) = aws.ec2.describe_network_interface(eni).await? else {
        return Ok(true);
    };
    let Some(instance) = nic.attachment().and_then(|a| a.instance_id()) else {
        return Ok(false); // detached or service-managed: not a host of ours
    };
    let Some(i) = aws.ec2.describe_instance(instance).await? else {
        return Ok(false); // long gone: nothing says whose it was
    };
    let ours = tag_value(i.tags(), crate::aws::tags::LINK) == Some(link)
        && tag_value(i.tags(), crate::aws::tags::SIDE) == Some(aws.side.as_str());
    let gone = matches!(
        i.state().and_then(|s| s.name()),
        Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
    );
    Ok(ours && gone)
}

/// (allocation id, association id, public ip) of the link's Elastic IPs.
async fn addresses(
    aws: &SideAws,
    link: &str,
    recorded: &SideState,
    purpose: Purpose,
) -> Result<Vec<(String, Option<String>, String)>> {
    let ec2 = &aws.ec2;
    let tagged = step(
        purpose.step("c_eip_find", "l_eip"),
        ec2.describe_addresses(link_filters(link, Some(aws.side))),
    );
    let by_record = async {
        match &recorded.eip {
            Some(e) => step("c_eip_rec", ec2.describe_address(&e.allocation_id)).await,
            None => Ok(None),
        }
    };
    let (tagged, by_record) = tokio::try_join!(tagged, by_record)?;
    let mut out: Vec<(String, Option<String>, String)> = Vec::new();
    for a in tagged.into_iter().chain(by_record) {
        let alloc = a.allocation_id().unwrap_or_default().to_string();
        if !out.iter().any(|(x, _, _)| *x == alloc) {
            let assoc = a
                .association_id()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            out.push((alloc, assoc, a.public_ip().unwrap_or_default().to_string()));
        }
    }
    Ok(out)
}

/// The link's security groups, the test host's first (it refers to the tunnel host's); and, for each tunnel group
/// that names its side's route destinations, its VPC and those destinations.
async fn groups(
    aws: &SideAws,
    link: &str,
    recorded: &SideState,
    purpose: Purpose,
) -> Result<(Vec<String>, Vec<(String, Vec<Ipv4Net>)>)> {
    let ec2 = &aws.ec2;
    let tagged = step(
        purpose.step("c_sg_find", "l_sg"),
        ec2.describe_security_groups(link_filters(link, Some(aws.side))),
    );
    let wanted: Vec<(bool, &String)> = [(true, &recorded.tunnel_sg), (false, &recorded.test_sg)]
        .into_iter()
        .filter_map(|(t, id)| id.as_ref().map(|id| (t, id)))
        .collect();
    let by_record = wanted.iter().map(|(_, id)| {
        step(
            "c_sg_rec",
            ec2.describe_security_groups(vec![filter("group-id", id)]),
        )
    });
    let (tagged, by_record) = tokio::join!(tagged, join_all(by_record));
    let mut groups: Vec<(bool, String)> = Vec::new();
    let mut routes = Vec::new();
    for g in tagged? {
        let is_test = tag_value(g.tags(), ROLE) == Some(ROLE_TEST);
        groups.push((!is_test, g.group_id().unwrap_or_default().to_string()));
        let destinations = routes_of(g.tags());
        if let (false, Some(vpc)) = (destinations.is_empty(), g.vpc_id()) {
            routes.push((vpc.to_string(), destinations));
        }
    }
    for ((is_tunnel, id), found) in wanted.into_iter().zip(by_record) {
        if !found?.is_empty() && !groups.iter().any(|(_, g)| g == id) {
            groups.push((is_tunnel, id.clone()));
        }
    }
    groups.sort();
    Ok((groups.into_iter().map(|(_, id)| id).collect(), routes))
}

/// The link's key pair in this region (by tag, or by name when the state says we imported it).
async fn key_pairs(
    aws: &SideAws,
    link: &str,
    recorded: &SideState,
    purpose: Purpose,
) -> Result<Vec<String>> {
    let ec2 = &aws.ec2;
    let name = crate::provision::key_pair::key_name(link);
    let tagged = step(
        purpose.step("c_kp_find", "l_kp"),
        ec2.describe_key_pairs(link_filters(link, Some(aws.side))),
    );
    let by_record = async {
        if recorded.key_pair_id.is_none() {
            return Ok(Vec::new());
        }
        step(
            "c_kp_rec",
            ec2.describe_key_pairs(vec![filter("key-name", &name)]),
        )
        .await
    };
    let (tagged, by_record) = tokio::try_join!(tagged, by_record)?;
    let mut out: Vec<String> = tagged
        .iter()
        .filter_map(|k| k.key_name().map(str::to_string))
        .collect();
    if !by_record.is_empty() && !out.contains(&name) {
        out.push(name);
    }
    Ok(out)
}

/// Treat "already gone" as done.
fn gone_ok(r: std::result::Result<(), AwsError>) -> std::result::Result<(), AwsError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Retry while AWS reports a dependency that is still going away (ENIs detach a while after termination).
async fn retry_dependency<F, Fut>(mut f: F) -> std::result::Result<(), AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), AwsError>>,
{
    let mut delay = Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        match f().await {
            Err(e)
                if matches!(
                    e.code(),
                    "DependencyViolation" | "InvalidIPAddress.InUse" | "InvalidAddress.Locked"
                ) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(15));
            }
            other => return other,
        }
    }
}

/// Poll until none of `ids` is alive (one DescribeInstances for all of them per round).
async fn wait_terminated(ec2: &Ec2, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let f = Filter::builder()
            .name("instance-id")
            .set_values(Some(ids.to_vec()))
            .build();
        let alive_ids: Vec<String> = ec2
            .describe_instances(vec![f])
            .await?
            .iter()
            .filter(|i| alive(i.state().and_then(|s| s.name())))
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if alive_ids.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Runtime(format!(
                "{} side: instance(s) {} not terminated after 10 minutes; run `vpclink down` again",
                ec2.side(),
                alive_ids.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Read both sides again until nothing of the link is listed, or `budget` has passed; returns what is still listed.
/// A read right after a delete may still list it (eventual consistency), so one non-empty answer is not a leak.
pub async fn leak_check(
    aws: &crate::side::PerSide<SideAws>,
    link: &str,
    budget: Duration,
) -> Result<usize> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut delay = Duration::from_millis(500);
    loop {
        let (e, w) = crate::side::both(
            collect(&aws.east, link, None, Purpose::LeakCheck),
            collect(&aws.west, link, None, Purpose::LeakCheck),
        )
        .await;
        let left = e?.count() + w?.count();
        if left == 0 || tokio::time::Instant::now() + delay > deadline {
            return Ok(left);
        }
        tracing::debug!("leak check: {left} resource(s) still listed; reading again in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(8));
    }
}

/// Delete one side's inventory in dependency order: routes, Elastic IPs (disassociated first), instances and key
/// pairs at once; the groups last, once the instances using them are terminated and the routes are gone (the tunnel
/// group names the routes for a `down` without state). Every branch runs to its end even when another fails, so one
/// run deletes all it can; the first error is returned.
pub async fn delete(aws: &SideAws, inv: &Inventory) -> Result<()> {
    let ec2 = &aws.ec2;
    let routes = join_all(inv.routes.iter().map(|r| {
        let destination = r.destination.to_string();
        step("d_routes", async move {
            gone_ok(ec2.delete_route(&r.route_table_id, &destination).await)
        })
    }));
    let addresses = join_all(inv.elastic_ips.iter().map(|(alloc, assoc, _)| async move {
        if let Some(assoc) = assoc {
            step("d_disassoc", async {
                gone_ok(ec2.disassociate_address(assoc).await)
            })
            .await?;
        }
        step("d_release", async {
            gone_ok(retry_dependency(|| ec2.release_address(alloc)).await)
        })
        .await
    }));
    let hosts = async {
        let terminated = join_all(inv.instances.iter().map(|id| {
            step("d_term", async move {
                gone_ok(ec2.terminate_instance(id).await)
            })
        }))
        .await;
        terminated
            .into_iter()
            .collect::<std::result::Result<(), AwsError>>()?;
        step("d_wait", wait_terminated(ec2, &inv.instances)).await
    };
    let key_pairs = join_all(
        inv.key_pairs
            .iter()
            .map(|k| step("d_kp", async move { gone_ok(ec2.delete_key_pair(k).await) })),
    );
    let metrics = crate::provision::metrics::Owned {
        alarms: inv.alarms.clone(),
        instance_profiles: inv.instance_profiles.clone(),
        roles: inv.iam_roles.clone(),
    };
    let alarms = crate::provision::metrics::delete_alarms(aws, &metrics);
    let (routes, addresses, hosts, key_pairs, alarms) =
        tokio::join!(routes, addresses, hosts, key_pairs, alarms);
    for r in routes.into_iter().chain(addresses).chain(key_pairs) {
        r?;
    }
    alarms?;
    hosts?;
    // The instance profile and role once no instance uses them.
    crate::provision::metrics::delete_iam(aws, &metrics).await?;
    for g in &inv.security_groups {
        step("d_sg", async {
            gone_ok(retry_dependency(|| ec2.delete_security_group(g)).await)
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(code: &str) -> Result<Vec<String>> {
        Err(Error::Aws(AwsError {
            side: Side::East,
            profile: "old".into(),
            action: "iam:ListRoles",
            resource: "/vpclink/".into(),
            code: Some(code.into()),
            message: "no".into(),
        }))
    }

    #[test]
    fn a_denied_read_of_what_the_state_never_had_is_unchecked_not_a_failed_down() {
        let what = "an IAM role";
        // The state records none of them: a warning, and nothing found.
        let r = unrecorded_denied_is_unchecked(denied("AccessDenied"), Side::East, true, what);
        assert_eq!(r.unwrap(), Vec::<String>::new());
        // The state records them, or there is no state (found by tag): still an error.
        assert!(
            unrecorded_denied_is_unchecked(denied("AccessDenied"), Side::East, false, what)
                .is_err()
        );
        // Anything but a denial stays an error too.
        assert!(
            unrecorded_denied_is_unchecked(denied("Throttling"), Side::East, true, what).is_err()
        );
        // An answer passes through.
        let ok = unrecorded_denied_is_unchecked(Ok(vec!["r".to_string()]), Side::East, true, what);
        assert_eq!(ok.unwrap(), vec!["r".to_string()]);
    }
}
