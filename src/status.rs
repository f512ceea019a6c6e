//! `vpclink status`: every resource of the link per side, whether it is healthy, and any drift from what `up` made
//! (a missing route or a new route table without one, source/dest check back on, an instance not running, a changed
//! security group).

use crate::aws::SideAws;
use crate::discover;
use crate::error::Result;
use crate::provision::security_group::{self, diff, existing_rule, Rule};
use crate::side::Side;
use crate::state::{Host, LinkState};
use aws_sdk_ec2::types::InstanceStateName;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Drift,
    /// What it should be is not known (the state lacks what decides it): neither ok nor drift; the detail says why.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub side: Side,
    pub resource: String,
    pub id: String,
    /// True only when judged healthy (false for drift and for unknown).
    pub ok: bool,
    pub health: Health,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub name: String,
    pub ok: bool,
    pub items: Vec<Item>,
}

struct Items {
    side: Side,
    items: Vec<Item>,
}

impl Items {
    fn add(&mut self, resource: &str, id: &str, ok: bool, detail: impl Into<String>) {
        let health = if ok { Health::Ok } else { Health::Drift };
        self.push(resource, id, health, detail);
    }

    fn unknown(&mut self, resource: &str, id: &str, detail: impl Into<String>) {
        self.push(resource, id, Health::Unknown, detail);
    }

    fn push(&mut self, resource: &str, id: &str, health: Health, detail: impl Into<String>) {
        self.items.push(Item {
            side: self.side,
            resource: resource.into(),
            id: id.into(),
            ok: health == Health::Ok,
            health,
            detail: detail.into(),
        });
    }
}

/// A security group as read: None when it is gone.
#[derive(Debug, Clone, Default)]
pub struct GroupSeen {
    pub rules: Option<Vec<(String, Rule)>>,
}

/// An instance as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSeen {
    pub state: Option<String>,
    pub private_ip: Option<String>,
}

/// Everything `status` reads on one side, before judging any of it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub key_pair: bool,
    /// The tunnel group, if the state records one.
    pub tunnel_sg: Option<GroupSeen>,
    pub test_sg: Option<GroupSeen>,
    /// Outer None: no instance id in the state; inner None: the instance is gone.
    pub tunnel: Option<Option<InstanceSeen>>,
    pub test: Option<Option<InstanceSeen>>,
    /// The tunnel ENI's source/dest check (outer None: no ENI in the state; inner None: the ENI is gone).
    pub source_dest_check: Option<Option<bool>>,
    /// The Elastic IP's network interface (outer None: no address in the state; inner None: the address is gone).
    pub eip_eni: Option<Option<Option<String>>>,
    /// Every route table of the VPC as it is now.
    pub tables: Vec<discover::Table>,
}

/// Read everything `status` judges on one side.
pub async fn read_side(aws: &SideAws, state: &LinkState) -> Result<Seen> {
    let side = aws.side;
    let s = state.side(side);
    let ec2 = &aws.ec2;
    let key = crate::provision::key_pair::key_name(&state.name);
    let key_pair = !ec2
        .describe_key_pairs(vec![crate::aws::tags::filter("key-name", &key)])
        .await?
        .is_empty();
    let group = |id: Option<String>| async move {
        let Some(id) = id else {
            return Ok::<_, crate::error::Error>(None);
        };
        let found = ec2
            .describe_security_groups(vec![crate::aws::tags::filter("group-id", &id)])
            .await?;
        if found.is_empty() {
            return Ok(Some(GroupSeen { rules: None }));
        }
        let rules = ec2
            .describe_security_group_rules(&id)
            .await?
            .iter()
            .filter_map(existing_rule)
            .collect();
        Ok(Some(GroupSeen { rules: Some(rules) }))
    };
    let tunnel_sg = group(s.tunnel_sg.clone()).await?;
    let test_sg = group(s.test_sg.clone()).await?;
    let instance = |h: Option<&Host>| {
        let id = h.and_then(|h| h.instance_id.clone());
        async move {
            let Some(id) = id else {
                return Ok::<_, crate::error::Error>(None);
            };
            Ok(Some(ec2.describe_instance(&id).await?.map(|i| {
                InstanceSeen {
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string()),
                    private_ip: i.private_ip_address().map(str::to_string),
                }
            })))
        }
    };
    let tunnel = instance(s.tunnel.as_ref()).await?;
    let test = instance(s.test.as_ref()).await?;
    let source_dest_check = match s.tunnel.as_ref().and_then(|h| h.eni_id.as_deref()) {
        Some(eni) => Some(
            ec2.describe_network_interface(eni)
                .await?
                .map(|n| n.source_dest_check() != Some(false)),
        ),
        None => None,
    };
    let eip_eni = match &s.eip {
        Some(e) => Some(
            ec2.describe_address(&e.allocation_id)
                .await?
                .map(|a| a.network_interface_id().map(str::to_string)),
        ),
        None => None,
    };
    // Routes: every table of the VPC as it is now, so a table added since `up` shows as drift too.
    let facts = discover::discover(
        aws,
        discover::VpcChoice::Known(&state.plan.side(side).vpc_id),
    )
    .await?;
    Ok(Seen {
        key_pair,
        tunnel_sg,
        test_sg,
        tunnel,
        test,
        source_dest_check,
        eip_eni,
        tables: facts.tables,
    })
}

/// Judge what was read against what `up` made (pure). An item whose desired form the state cannot tell is
/// "unknown", with the reason, never "ok".
pub fn judge(side: Side, state: &LinkState, seen: &Seen) -> Vec<Item> {
    let s = state.side(side);
    let plan = &state.plan;
    let mut out = Items {
        side,
        items: Vec::new(),
    };

    let key = crate::provision::key_pair::key_name(&state.name);
    out.add(
        "key-pair",
        &key,
        seen.key_pair,
        if seen.key_pair { "present" } else { "missing" },
    );

    let peer_eip = state.side(side.peer()).eip.as_ref().map(|e| e.public_ip);
    let groups = [
        ("tunnel-sg", &s.tunnel_sg, &seen.tunnel_sg, true),
        (
            "test-sg",
            &s.test_sg,
            &seen.test_sg,
            state.options.test_hosts,
        ),
    ];
    for (what, id, group, wanted) in groups {
        let Some(id) = id else {
            if wanted {
                out.add(what, "-", false, "not created yet");
            }
            continue;
        };
        let Some(existing) = group.as_ref().and_then(|g| g.rules.as_ref()) else {
            out.add(what, id, false, "missing");
            continue;
        };
        let desired = if what == "tunnel-sg" {
            match (state.options.ssh_cidr, peer_eip) {
                (Some(ssh), Some(peer)) => Ok(security_group::tunnel_rules(
                    ssh,
                    peer,
                    &plan.side(side).cidrs,
                )),
                (None, _) => Err(
                    "the state records no SSH source (options.ssh_cidr); `vpclink up` records it"
                        .to_string(),
                ),
                (_, None) => Err(format!(
                    "the {} side has no Elastic IP in the state yet; `vpclink up` allocates it",
                    side.peer()
                )),
            }
        } else {
            s.tunnel_sg
                .as_ref()
                .map(|t| security_group::test_rules(t, &plan.side(side.peer()).mapped))
                .ok_or_else(|| {
                    "the state records no tunnel group, which the test group's rules name; `vpclink up` creates it"
                        .to_string()
                })
        };
        match desired.map(|d| diff(&d, existing)) {
            Err(why) => out.unknown(
                what,
                id,
                format!(
                    "desired rules unknown: {why} ({} ingress rules now)",
                    existing.len()
                ),
            ),
            Ok((add, revoke)) if !add.is_empty() || !revoke.is_empty() => out.add(
                what,
                id,
                false,
                format!(
                    "rules drifted: {} missing, {} extra",
                    add.len(),
                    revoke.len()
                ),
            ),
            Ok(_) => out.add(
                what,
                id,
                true,
                format!("{} ingress rules as specified", existing.len()),
            ),
        }
    }

    host_status(
        &mut out,
        "tunnel-host",
        s.tunnel.as_ref(),
        seen.tunnel.as_ref(),
    );
    if state.options.test_hosts {
        host_status(&mut out, "test-host", s.test.as_ref(), seen.test.as_ref());
    }

    let eni = s.tunnel.as_ref().and_then(|h| h.eni_id.clone());
    if let (Some(eni_id), Some(check)) = (&eni, seen.source_dest_check) {
        match check {
            Some(false) => out.add("source-dest-check", eni_id, true, "off"),
            Some(true) => out.add(
                "source-dest-check",
                eni_id,
                false,
                "back on: the tunnel host drops forwarded traffic",
            ),
            None => out.add(
                "source-dest-check",
                eni_id,
                false,
                "network interface missing",
            ),
        }
    }
    match (&s.eip, &seen.eip_eni) {
        (None, _) => out.add("elastic-ip", "-", false, "not allocated yet"),
        (Some(e), None | Some(None)) => out.add("elastic-ip", &e.allocation_id, false, "missing"),
        (Some(e), Some(Some(on))) if on.is_some() && *on == eni => out.add(
            "elastic-ip",
            &e.allocation_id,
            true,
            format!("{} on {}", e.public_ip, eni.clone().unwrap_or_default()),
        ),
        (Some(e), Some(Some(_))) => out.add(
            "elastic-ip",
            &e.allocation_id,
            false,
            format!("{} not on the tunnel host", e.public_ip),
        ),
    }

    for t in &seen.tables {
        for &d in &plan.side(side.peer()).mapped {
            let id = format!("{} {d}", t.id);
            match t.route_to(d) {
                Some(r) if Some(&r.target) == eni.as_ref() && !r.blackhole => {
                    out.add("route", &id, true, format!("-> {}", r.target))
                }
                Some(r) if r.blackhole => {
                    out.add("route", &id, false, format!("blackhole (-> {})", r.target))
                }
                Some(r) => out.add(
                    "route",
                    &id,
                    false,
                    format!("points at {}, not the tunnel host", r.target),
                ),
                None => out.add("route", &id, false, "missing"),
            }
        }
    }
    out.items
}

/// Read one side and judge it.
pub async fn side_status(aws: &SideAws, state: &LinkState) -> Result<Vec<Item>> {
    let seen = read_side(aws, state).await?;
    Ok(judge(aws.side, state, &seen))
}

fn host_status(
    out: &mut Items,
    what: &str,
    host: Option<&Host>,
    seen: Option<&Option<InstanceSeen>>,
) {
    let (Some(id), Some(seen)) = (host.and_then(|h| h.instance_id.clone()), seen) else {
        out.add(what, "-", false, "not launched yet");
        return;
    };
    match seen {
        None => out.add(what, &id, false, "missing"),
        Some(i) => {
            let ok = i.state.as_deref() == Some(InstanceStateName::Running.as_str());
            let name = i.state.clone().unwrap_or_else(|| "unknown".into());
            let ip = i.private_ip.as_deref().unwrap_or("-");
            out.add(
                what,
                &id,
                ok,
                if ok {
                    format!("running, {ip}")
                } else {
                    format!("{name}: start it or run `vpclink up`")
                },
            );
        }
    }
}

pub fn human(r: &StatusReport) -> String {
    let rows: Vec<Vec<String>> = r
        .items
        .iter()
        .map(|i| {
            vec![
                i.side.to_string(),
                i.resource.clone(),
                i.id.clone(),
                match i.health {
                    Health::Ok => "ok".into(),
                    Health::Drift => "DRIFT".into(),
                    Health::Unknown => "UNKNOWN".into(),
                },
                i.detail.clone(),
            ]
        })
        .collect();
    let mut s = crate::output::table(&["side", "resource", "id", "health", "detail"], &rows);
    let count = |h: Health| r.items.iter().filter(|i| i.health == h).count();
    let (bad, unknown) = (count(Health::Drift), count(Health::Unknown));
    if bad == 0 && unknown == 0 {
        s.push_str(&format!("link '{}': everything as provisioned\n", r.name));
    }
    if bad > 0 {
        s.push_str(&format!(
            "link '{}': {bad} item(s) drifted; `vpclink up` repairs them\n",
            r.name
        ));
    }
    if unknown > 0 {
        s.push_str(&format!(
            "link '{}': {unknown} item(s) could not be judged (see detail); status is unknown, not ok\n",
            r.name
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{RouteEntry, Table};
    use crate::link::{LinkPlan, SidePlan};
    use crate::state::{ElasticIp, Options, Os};

    fn side_plan(side: &str, mapped: &str) -> SidePlan {
        SidePlan {
            profile: side.into(),
            region: "eu-west-1".into(),
            account: "1".into(),
            vpc_id: format!("vpc-{side}"),
            cidrs: vec!["10.0.0.0/16".parse().unwrap()],
            mapped: vec![mapped.parse().unwrap()],
            route_tables: vec!["rtb-1".into()],
            public_subnet: None,
            skipped_tables: Vec::new(),
        }
    }

    fn host(id: &str, eni: &str) -> Host {
        Host {
            instance_id: Some(id.into()),
            eni_id: Some(eni.into()),
            private_ip: "10.0.0.10".parse().unwrap(),
            public_ip: None,
            os: Os::Al2023,
            ssh: None,
            host_key: None,
            uplink: None,
            ipsec_pubkey: None,
            libreswan: None,
        }
    }

    /// A link as `up` leaves it, seen from the east side, and what a read finds when all is well.
    fn healthy() -> (LinkState, Seen) {
        let plan = LinkPlan {
            name: "l".into(),
            overlapping: true,
            east: side_plan("east", "10.1.0.0/16"),
            west: side_plan("west", "10.2.0.0/16"),
        };
        let mut state = LinkState::new(
            plan,
            Options {
                os: Os::Al2023,
                instance_type: "t3.micro".into(),
                test_hosts: true,
                ssh_cidr: Some("198.51.100.7/32".parse().unwrap()),
            },
        );
        for (side, ip) in [(Side::East, "203.0.113.1"), (Side::West, "203.0.113.2")] {
            let s = state.side_mut(side);
            s.tunnel_sg = Some("sg-t".into());
            s.test_sg = Some("sg-x".into());
            s.tunnel = Some(host("i-t", "eni-t"));
            s.test = Some(host("i-x", "eni-x"));
            s.eip = Some(ElasticIp {
                allocation_id: "eipalloc-1".into(),
                public_ip: ip.parse().unwrap(),
                association_id: None,
            });
        }
        let rules = |r: Vec<Rule>| GroupSeen {
            rules: Some(
                r.into_iter()
                    .enumerate()
                    .map(|(i, r)| (format!("sgr-{i}"), r))
                    .collect(),
            ),
        };
        let running = Some(Some(InstanceSeen {
            state: Some("running".into()),
            private_ip: Some("10.0.0.10".into()),
        }));
        let seen = Seen {
            key_pair: true,
            tunnel_sg: Some(rules(security_group::tunnel_rules(
                "198.51.100.7/32".parse().unwrap(),
                "203.0.113.2".parse().unwrap(),
                &["10.0.0.0/16".parse().unwrap()],
            ))),
            test_sg: Some(rules(security_group::test_rules(
                "sg-t",
                &["10.2.0.0/16".parse().unwrap()],
            ))),
            tunnel: running.clone(),
            test: running,
            source_dest_check: Some(Some(false)),
            eip_eni: Some(Some(Some("eni-t".into()))),
            tables: vec![Table {
                id: "rtb-1".into(),
                main: true,
                subnets: Vec::new(),
                routes: vec![RouteEntry {
                    destination: "10.2.0.0/16".parse().unwrap(),
                    target: "eni-t".into(),
                    blackhole: false,
                    prefix_list: None,
                }],
                quota_weight: 2,
            }],
        };
        (state, seen)
    }

    fn health(items: &[Item], resource: &str) -> (Health, String) {
        let i = items
            .iter()
            .find(|i| i.resource == resource)
            .unwrap_or_else(|| panic!("no {resource} in {items:?}"));
        assert_eq!(i.ok, i.health == Health::Ok);
        (i.health, i.detail.clone())
    }

    #[test]
    fn a_healthy_side_is_ok() {
        let (state, seen) = healthy();
        let items = judge(Side::East, &state, &seen);
        assert_eq!(items.len(), 8, "{items:?}");
        assert!(items.iter().all(|i| i.health == Health::Ok), "{items:?}");
    }

    #[test]
    fn desired_rules_unknown_is_unknown_with_the_reason_never_ok() {
        // No SSH source in the state: the tunnel group's rules cannot be judged.
        let (mut state, seen) = healthy();
        state.options.ssh_cidr = None;
        let (h, detail) = health(&judge(Side::East, &state, &seen), "tunnel-sg");
        assert_eq!(h, Health::Unknown, "{detail}");
        assert!(
            detail.contains("desired rules unknown") && detail.contains("ssh_cidr"),
            "{detail}"
        );
        // The peer has no Elastic IP yet.
        let (mut state, seen) = healthy();
        state.west.eip = None;
        let (h, detail) = health(&judge(Side::East, &state, &seen), "tunnel-sg");
        assert_eq!(h, Health::Unknown, "{detail}");
        assert!(detail.contains("west side has no Elastic IP"), "{detail}");
        // The test group's rules name the tunnel group, which the state lacks.
        let (mut state, seen) = healthy();
        state.east.tunnel_sg = None;
        let items = judge(Side::East, &state, &seen);
        let (h, detail) = health(&items, "test-sg");
        assert_eq!(h, Health::Unknown, "{detail}");
        assert!(detail.contains("no tunnel group"), "{detail}");
        let report = StatusReport {
            name: "l".into(),
            ok: items.iter().all(|i| i.ok),
            items,
        };
        assert!(!report.ok);
        assert!(human(&report).contains("UNKNOWN"));
        assert!(human(&report).contains("could not be judged"));
    }

    #[test]
    fn drift_is_drift() {
        let (state, mut seen) = healthy();
        seen.key_pair = false;
        seen.source_dest_check = Some(Some(true));
        seen.tunnel = Some(Some(InstanceSeen {
            state: Some("stopped".into()),
            private_ip: None,
        }));
        seen.test = Some(None);
        seen.eip_eni = Some(Some(Some("eni-other".into())));
        seen.tables[0].routes[0].blackhole = true;
        if let Some(g) = seen.tunnel_sg.as_mut() {
            g.rules.as_mut().unwrap().pop();
        }
        seen.test_sg = Some(GroupSeen { rules: None });
        let items = judge(Side::East, &state, &seen);
        for (what, says) in [
            ("key-pair", "missing"),
            ("source-dest-check", "back on"),
            ("tunnel-host", "stopped"),
            ("test-host", "missing"),
            ("elastic-ip", "not on the tunnel host"),
            ("route", "blackhole"),
            ("tunnel-sg", "1 missing"),
            ("test-sg", "missing"),
        ] {
            let (h, detail) = health(&items, what);
            assert_eq!(h, Health::Drift, "{what}: {detail}");
            assert!(detail.contains(says), "{what}: {detail}");
        }
        // A route table added since `up`, without our route.
        let (state, mut seen) = healthy();
        let mut t = seen.tables[0].clone();
        t.id = "rtb-new".into();
        t.routes.clear();
        seen.tables.push(t);
        let items = judge(Side::East, &state, &seen);
        assert!(items.iter().any(|i| i.id == "rtb-new 10.2.0.0/16"
            && i.health == Health::Drift
            && i.detail == "missing"));
    }
}
