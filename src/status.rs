//! `vpclink status`: every resource of the link per side, whether it is healthy, and any drift from what `up` made
//! (a missing route or a new route table without one, source/dest check back on, an instance not running, a changed
//! security group).

use crate::aws::SideAws;
use crate::discover;
use crate::error::Result;
use crate::provision::security_group::{self, diff, existing_rule};
use crate::side::Side;
use crate::state::{Host, LinkState};
use aws_sdk_ec2::types::InstanceStateName;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub side: Side,
    pub resource: String,
    pub id: String,
    pub ok: bool,
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
        self.items.push(Item {
            side: self.side,
            resource: resource.into(),
            id: id.into(),
            ok,
            detail: detail.into(),
        });
    }
}

pub async fn side_status(aws: &SideAws, state: &LinkState) -> Result<Vec<Item>> {
    let side = aws.side;
    let s = state.side(side);
    let plan = &state.plan;
    let ec2 = &aws.ec2;
    let mut out = Items {
        side,
        items: Vec::new(),
    };

    let key = crate::provision::key_pair::key_name(&state.name);
    let have_key = !ec2
        .describe_key_pairs(vec![crate::aws::tags::filter("key-name", &key)])
        .await?
        .is_empty();
    out.add(
        "key-pair",
        &key,
        have_key,
        if have_key { "present" } else { "missing" },
    );

    let peer_eip = state.side(side.peer()).eip.as_ref().map(|e| e.public_ip);
    let groups = [
        ("tunnel-sg", s.tunnel_sg.clone(), true),
        ("test-sg", s.test_sg.clone(), state.options.test_hosts),
    ];
    for (what, id, wanted) in groups {
        let Some(id) = id else {
            if wanted {
                out.add(what, "-", false, "not created yet");
            }
            continue;
        };
        let rules = ec2
            .describe_security_groups(vec![crate::aws::tags::filter("group-id", &id)])
            .await?;
        if rules.is_empty() {
            out.add(what, &id, false, "missing");
            continue;
        }
        let existing: Vec<_> = ec2
            .describe_security_group_rules(&id)
            .await?
            .iter()
            .filter_map(existing_rule)
            .collect();
        let desired = if what == "tunnel-sg" {
            match (state.options.ssh_cidr, peer_eip) {
                (Some(ssh), Some(peer)) => Some(security_group::tunnel_rules(
                    ssh,
                    peer,
                    &plan.side(side).cidrs,
                )),
                _ => None,
            }
        } else {
            s.tunnel_sg
                .as_ref()
                .map(|t| security_group::test_rules(t, &plan.side(side.peer()).mapped))
        };
        match desired.map(|d| diff(&d, &existing)) {
            Some((add, revoke)) if !add.is_empty() || !revoke.is_empty() => out.add(
                what,
                &id,
                false,
                format!(
                    "rules drifted: {} missing, {} extra",
                    add.len(),
                    revoke.len()
                ),
            ),
            _ => out.add(
                what,
                &id,
                true,
                format!("{} ingress rules as specified", existing.len()),
            ),
        }
    }

    host_status(&mut out, aws, "tunnel-host", s.tunnel.as_ref()).await?;
    if state.options.test_hosts {
        host_status(&mut out, aws, "test-host", s.test.as_ref()).await?;
    }

    let eni = s.tunnel.as_ref().and_then(|h| h.eni_id.clone());
    if let Some(eni_id) = &eni {
        match ec2.describe_network_interface(eni_id).await? {
            Some(n) if n.source_dest_check() == Some(false) => {
                out.add("source-dest-check", eni_id, true, "off")
            }
            Some(_) => out.add(
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
    match &s.eip {
        None => out.add("elastic-ip", "-", false, "not allocated yet"),
        Some(e) => match ec2.describe_address(&e.allocation_id).await? {
            None => out.add("elastic-ip", &e.allocation_id, false, "missing"),
            Some(a)
                if a.network_interface_id()
                    .is_some_and(|n| Some(n) == eni.as_deref()) =>
            {
                out.add(
                    "elastic-ip",
                    &e.allocation_id,
                    true,
                    format!("{} on {}", e.public_ip, eni.clone().unwrap_or_default()),
                )
            }
            Some(_) => out.add(
                "elastic-ip",
                &e.allocation_id,
                false,
                format!("{} not on the tunnel host", e.public_ip),
            ),
        },
    }

    // Routes: every table of the VPC as it is now, so a table added since `up` shows as drift too.
    let facts =
        discover::discover(aws, discover::VpcChoice::Known(&plan.side(side).vpc_id)).await?;
    for t in &facts.tables {
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
    Ok(out.items)
}

async fn host_status(
    out: &mut Items,
    aws: &SideAws,
    what: &str,
    host: Option<&Host>,
) -> Result<()> {
    let Some(id) = host.and_then(|h| h.instance_id.clone()) else {
        out.add(what, "-", false, "not launched yet");
        return Ok(());
    };
    match aws.ec2.describe_instance(&id).await? {
        None => out.add(what, &id, false, "missing"),
        Some(i) => {
            let state = i.state().and_then(|s| s.name()).cloned();
            let ok = state == Some(InstanceStateName::Running);
            let name = state
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "unknown".into());
            let ip = i.private_ip_address().unwrap_or("-");
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
    Ok(())
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
                if i.ok { "ok".into() } else { "DRIFT".into() },
                i.detail.clone(),
            ]
        })
        .collect();
    let mut s = crate::output::table(&["side", "resource", "id", "health", "detail"], &rows);
    let bad = r.items.iter().filter(|i| !i.ok).count();
    s.push_str(&if bad == 0 {
        format!("link '{}': everything as provisioned\n", r.name)
    } else {
        format!(
            "link '{}': {bad} item(s) drifted; `vpclink up` repairs them\n",
            r.name
        )
    });
    s
}
