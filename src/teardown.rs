//! `vpclink down`: collect everything the link owns on both sides first (from the state and by tag, so it works
//! without the state too), print it, then delete in dependency order and wait until each thing is gone: routes,
//! Elastic IP association and address, instances (until terminated), security groups, key pairs. Idempotent: what is
//! already gone counts as deleted. Ends by checking that nothing with the link's tags is left.

use crate::aws::ec2::Ec2;
use crate::aws::tags::{link_filters, ROLE_TEST};
use crate::aws::{AwsError, SideAws};
use crate::discover;
use crate::error::{Error, Result};
use crate::side::Side;
use crate::state::{LinkState, OwnedRoute};
use aws_sdk_ec2::types::InstanceStateName;
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
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.elastic_ips.is_empty()
            && self.instances.is_empty()
            && self.security_groups.is_empty()
            && self.key_pairs.is_empty()
    }

    pub fn count(&self) -> usize {
        self.routes.len()
            + self.elastic_ips.len()
            + self.instances.len()
            + self.security_groups.len()
            + self.key_pairs.len()
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
        rows
    }
}

fn alive(state: Option<&InstanceStateName>) -> bool {
    !matches!(state, Some(InstanceStateName::Terminated))
}

/// What the link owns on one side: the union of the state's records (where they still exist) and tagged resources.
pub async fn collect(aws: &SideAws, link: &str, state: Option<&LinkState>) -> Result<Inventory> {
    let ec2 = &aws.ec2;
    let side = aws.side;
    let recorded = state.map(|s| s.side(side).clone()).unwrap_or_default();
    let filters = || link_filters(link, Some(side));

    // Instances (and their network interfaces and VPCs, which routes point at and live in).
    let mut instances = BTreeSet::new();
    let mut enis = BTreeSet::new();
    let mut vpcs = BTreeSet::new();
    let mut found = ec2.describe_instances(filters()).await?;
    for id in [&recorded.tunnel, &recorded.test]
        .into_iter()
        .flatten()
        .filter_map(|h| h.instance_id.clone())
    {
        if let Some(i) = ec2.describe_instance(&id).await? {
            found.push(i);
        }
    }
    for i in &found {
        if !alive(i.state().and_then(|s| s.name())) {
            continue;
        }
        instances.insert(i.instance_id().unwrap_or_default().to_string());
        vpcs.extend(i.vpc_id().map(str::to_string));
        enis.extend(
            i.network_interfaces()
                .iter()
                .filter_map(|n| n.network_interface_id().map(str::to_string)),
        );
    }
    enis.extend(
        [&recorded.tunnel, &recorded.test]
            .into_iter()
            .flatten()
            .filter_map(|h| h.eni_id.clone()),
    );
    if let Some(s) = state {
        vpcs.insert(s.plan.side(side).vpc_id.clone());
    }

    // Routes: any route to our interfaces, plus recorded routes left blackholed when the host went away.
    let mut routes = Vec::new();
    for vpc in &vpcs {
        for t in ec2
            .describe_route_tables(vpc)
            .await?
            .iter()
            .map(discover::table)
        {
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

    let mut addresses = ec2.describe_addresses(filters()).await?;
    if let Some(e) = &recorded.eip {
        addresses.extend(ec2.describe_address(&e.allocation_id).await?);
    }
    let mut elastic_ips: Vec<(String, Option<String>, String)> = Vec::new();
    for a in addresses {
        let alloc = a.allocation_id().unwrap_or_default().to_string();
        if !elastic_ips.iter().any(|(x, _, _)| *x == alloc) {
            let assoc = a
                .association_id()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            elastic_ips.push((alloc, assoc, a.public_ip().unwrap_or_default().to_string()));
        }
    }

    let mut groups: Vec<(bool, String)> = Vec::new();
    for g in ec2.describe_security_groups(filters()).await? {
        let is_test =
            crate::aws::tags::tag_value(g.tags(), crate::aws::tags::ROLE) == Some(ROLE_TEST);
        groups.push((!is_test, g.group_id().unwrap_or_default().to_string()));
    }
    for (is_tunnel, id) in [(true, &recorded.tunnel_sg), (false, &recorded.test_sg)] {
        if let Some(id) = id {
            let exists = !ec2
                .describe_security_groups(vec![crate::aws::tags::filter("group-id", id)])
                .await?
                .is_empty();
            if exists && !groups.iter().any(|(_, g)| g == id) {
                groups.push((is_tunnel, id.clone()));
            }
        }
    }
    groups.sort();

    let mut key_pairs: Vec<String> = ec2
        .describe_key_pairs(filters())
        .await?
        .iter()
        .filter_map(|k| k.key_name().map(str::to_string))
        .collect();
    if recorded.key_pair_id.is_some() {
        let name = crate::provision::key_pair::key_name(link);
        let exists = !ec2
            .describe_key_pairs(vec![crate::aws::tags::filter("key-name", &name)])
            .await?
            .is_empty();
        if exists && !key_pairs.contains(&name) {
            key_pairs.push(name);
        }
    }

    Ok(Inventory {
        side: Some(side),
        routes,
        elastic_ips,
        instances: instances.into_iter().collect(),
        security_groups: groups.into_iter().map(|(_, id)| id).collect(),
        key_pairs,
    })
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

async fn wait_terminated(ec2: &Ec2, ids: &[String]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            let state = ec2
                .describe_instance(id)
                .await?
                .and_then(|i| i.state().and_then(|s| s.name().cloned()));
            if !alive(state.as_ref()) || state.is_none() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Runtime(format!(
                    "{} side: instance {id} is not terminated after 10 minutes; run `vpclink down` again",
                    ec2.side()
                )));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    Ok(())
}

/// Delete one side's inventory in dependency order.
pub async fn delete(aws: &SideAws, inv: &Inventory) -> Result<()> {
    let ec2 = &aws.ec2;
    for r in &inv.routes {
        gone_ok(
            ec2.delete_route(&r.route_table_id, &r.destination.to_string())
                .await,
        )?;
    }
    for (alloc, assoc, _) in &inv.elastic_ips {
        if let Some(assoc) = assoc {
            gone_ok(ec2.disassociate_address(assoc).await)?;
        }
        gone_ok(retry_dependency(|| ec2.release_address(alloc)).await)?;
    }
    for id in &inv.instances {
        gone_ok(ec2.terminate_instance(id).await)?;
    }
    wait_terminated(ec2, &inv.instances).await?;
    for g in &inv.security_groups {
        gone_ok(retry_dependency(|| ec2.delete_security_group(g)).await)?;
    }
    for k in &inv.key_pairs {
        gone_ok(ec2.delete_key_pair(k).await)?;
    }
    Ok(())
}
