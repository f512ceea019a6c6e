//! Routes for the remote side's mapped ranges, to the tunnel host's network interface, in EVERY route table of the
//! VPC (per-subnet tables are the ones people forget). A route for such a range that this link does not own is
//! never touched: that is an input error, reported before anything is created.

use super::Step;
use crate::aws::call_log::step as label;
use crate::discover::Table;
use crate::error::{Error, Result};
use crate::state::OwnedRoute;
use ipnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Already there, pointing at our tunnel host.
    Keep(OwnedRoute),
    Create(OwnedRoute),
    /// Ours (in the state) and blackholed: its tunnel host was replaced. A live route to anything else is never ours
    /// to change, even if we once made it.
    Replace(OwnedRoute),
}

/// A route for one of our destinations that belongs to someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub route_table_id: String,
    pub destination: Ipv4Net,
    pub target: String,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already routes {} to {}",
            self.route_table_id, self.destination, self.target
        )
    }
}

/// What to do in each table for each destination. `eni` is None before the tunnel host exists (preflight).
pub fn plan_routes(
    tables: &[Table],
    destinations: &[Ipv4Net],
    eni: Option<&str>,
    owned: &[OwnedRoute],
) -> std::result::Result<Vec<RouteAction>, Vec<Collision>> {
    let mut actions = Vec::new();
    let mut collisions = Vec::new();
    for t in tables {
        for &d in destinations {
            let route = OwnedRoute {
                route_table_id: t.id.clone(),
                destination: d,
            };
            match t.route_to(d) {
                None => actions.push(RouteAction::Create(route)),
                Some(r) if Some(r.target.as_str()) == eni => actions.push(RouteAction::Keep(route)),
                Some(r) if r.blackhole && owned.contains(&route) => {
                    actions.push(RouteAction::Replace(route))
                }
                Some(r) => collisions.push(Collision {
                    route_table_id: t.id.clone(),
                    destination: d,
                    target: r.target.clone(),
                }),
            }
        }
    }
    if collisions.is_empty() {
        Ok(actions)
    } else {
        Err(collisions)
    }
}

/// A collision found while creating routes: preflight found none, so the route appeared since (or a read lagged),
/// and resources were created already. A failure at run time (exit 1), not bad input: re-running resumes.
pub fn collision_error(side: crate::side::Side, collisions: &[Collision]) -> Error {
    let list: Vec<String> = collisions.iter().map(|c| c.to_string()).collect();
    Error::Runtime(format!(
        "{side} side: route collision found while creating routes: {}. vpclink never overwrites a route it does not own; what was created so far is in the state: remove that route and run `vpclink up` again (it resumes), or `vpclink down`",
        list.join("; ")
    ))
}

/// Routes the tables need beyond what they hold, per table (for the route-table quota check).
pub fn new_routes_per_table(actions: &[RouteAction]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in actions {
        if let RouteAction::Create(r) = a {
            *m.entry(r.route_table_id.clone()).or_insert(0) += 1;
        }
    }
    m
}

/// Make every table route the remote side's mapped ranges to `eni`, all tables at once, recording each route as it
/// is made.
pub async fn ensure(
    step: &Step<'_>,
    tables: &[Table],
    destinations: &[Ipv4Net],
    eni: &str,
) -> Result<()> {
    let owned = step.side_state(|s| s.routes.clone());
    let actions = plan_routes(tables, destinations, Some(eni), &owned)
        .map_err(|c| collision_error(step.side(), &c))?;
    let made = actions.into_iter().map(|action| async move {
        let route = match action {
            RouteAction::Keep(r) => r,
            RouteAction::Create(r) => {
                let destination = r.destination.to_string();
                let made = crate::aws::ec2::retry_not_found(|| {
                    step.aws
                        .ec2
                        .create_route(&r.route_table_id, &destination, eni)
                });
                match label("routes", made).await {
                    // Made by an earlier run that died before recording it; it points at our ENI or we would
                    // have seen it above.
                    Err(e) if e.is_duplicate() => {}
                    other => other?,
                }
                r
            }
            RouteAction::Replace(r) => {
                let destination = r.destination.to_string();
                let replaced = step
                    .aws
                    .ec2
                    .replace_route(&r.route_table_id, &destination, eni);
                label("routes", replaced).await?;
                r
            }
        };
        step.record(|s| {
            if !s.routes.contains(&route) {
                s.routes.push(route.clone())
            }
        })?;
        Ok::<_, Error>(())
    });
    for r in futures_util::future::join_all(made).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::RouteEntry;

    fn table(id: &str, routes: &[(&str, &str)]) -> Table {
        Table {
            id: id.into(),
            main: false,
            subnets: vec![],
            routes: routes
                .iter()
                .map(|(d, t)| RouteEntry {
                    destination: d.parse().unwrap(),
                    target: t.to_string(),
                    blackhole: t.ends_with("-old"),
                    prefix_list: None,
                })
                .collect(),
            quota_weight: routes.len(),
        }
    }

    #[test]
    fn every_table_gets_every_destination_and_foreign_routes_collide() {
        let d: Ipv4Net = "172.16.0.0/16".parse().unwrap();
        let tables = [
            table("rtb-a", &[("10.0.0.0/16", "local")]),
            table("rtb-b", &[("172.16.0.0/16", "eni-ours")]),
            table("rtb-c", &[("172.16.0.0/16", "eni-old")]),
            table("rtb-d", &[("172.16.0.0/16", "igw-someone")]),
        ];
        let owned: Vec<OwnedRoute> = ["rtb-c", "rtb-d"]
            .iter()
            .map(|t| OwnedRoute {
                route_table_id: t.to_string(),
                destination: d,
            })
            .collect();
        // Recorded as ours, but someone pointed rtb-d elsewhere since: a collision, not ours to overwrite.
        assert_eq!(
            plan_routes(&tables, &[d], Some("eni-ours"), &owned).unwrap_err(),
            vec![Collision {
                route_table_id: "rtb-d".into(),
                destination: d,
                target: "igw-someone".into()
            }]
        );
        let actions = plan_routes(&tables[..3], &[d], Some("eni-ours"), &owned).unwrap();
        let r = |id: &str| OwnedRoute {
            route_table_id: id.into(),
            destination: d,
        };
        assert_eq!(
            actions,
            vec![
                RouteAction::Create(r("rtb-a")),
                RouteAction::Keep(r("rtb-b")),
                RouteAction::Replace(r("rtb-c"))
            ]
        );

        let err = plan_routes(&tables[..3], &[d], Some("eni-ours"), &[]).unwrap_err();
        assert_eq!(
            err,
            vec![Collision {
                route_table_id: "rtb-c".into(),
                destination: d,
                target: "eni-old".into()
            }]
        );
        // Before the host exists (preflight), a route to an ENI not in our state is foreign.
        assert_eq!(
            plan_routes(&tables[..2], &[d], None, &[])
                .unwrap_err()
                .len(),
            1
        );
    }
}
