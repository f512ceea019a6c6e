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
    /// Each side's latest figures from its tunnel host and its alarm's state (shown, not judged).
    pub metrics: Vec<SideFigures>,
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
    /// The tunnel host's instance profile, role policy, alarm and latest figures (issue 13).
    pub metrics: MetricsSeen,
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
    let (facts, metrics) = tokio::try_join!(
        async {
            Ok::<_, crate::error::Error>(
                discover::discover(
                    aws,
                    discover::VpcChoice::Known(&state.plan.side(side).vpc_id),
                )
                .await?,
            )
        },
        read_metrics(aws, state),
    )?;
    Ok(Seen {
        key_pair,
        tunnel_sg,
        test_sg,
        tunnel,
        test,
        source_dest_check,
        eip_eni,
        tables: facts.tables,
        metrics,
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
    judge_metrics(state, &seen.metrics, &mut out);
    out.items
}

/// Read one side and judge it; with the tunnel host's latest figures and the alarm's state.
pub async fn side_report(aws: &SideAws, state: &LinkState) -> Result<(Vec<Item>, SideFigures)> {
    let seen = read_side(aws, state).await?;
    Ok((
        judge(aws.side, state, &seen),
        side_figures(aws.side, &state.name, &seen.metrics),
    ))
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
    if !r.metrics.is_empty() {
        s.push('\n');
        s.push_str(&figures_human(&r.metrics));
        s.push('\n');
    }
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

/// The tunnel host's metrics plumbing and figures as read (issue 13).
#[derive(Debug, Clone, Default)]
pub struct MetricsSeen {
    /// The roles in the instance profile `vpclink-<link>-<side>-host`; None when the profile is gone.
    pub profile_roles: Option<Vec<String>>,
    /// The role's inline policy document, decoded; None when the role or the policy is gone.
    pub policy: Option<String>,
    /// The instance profile associated with the tunnel host (its ARN); None when none is.
    pub associated: Option<String>,
    /// The tunnel-down alarm; None when it is gone.
    pub alarm: Option<AlarmSeen>,
    /// The latest datapoint of each contract metric that has one in the last 10 minutes.
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSeen {
    /// Configured as the contract says (metric, statistic, periods, threshold, missing data, the topic).
    pub as_specified: bool,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub reason: String,
}

/// One metric's latest datapoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub metric: String,
    /// How the minute's datapoints are summed up (Minimum, Sum, Maximum, Average).
    pub statistic: String,
    pub value: f64,
    /// The datapoint's minute, RFC 3339.
    pub at: String,
}

/// What `status` shows of one side's tunnel host figures and alarm (`--json`: `metrics`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideFigures {
    pub side: Side,
    pub alarm: String,
    /// The alarm's state (OK, ALARM, INSUFFICIENT_DATA); None when the alarm is missing.
    pub alarm_state: Option<String>,
    /// The latest figures; empty: no data yet.
    pub figures: Vec<Figure>,
    pub no_data: bool,
}

/// Read the tunnel host's instance profile, role policy and association, the alarm, and the last 10 minutes of
/// figures, all at once. Names are the contract's, so an older state without them is read (and judged) too.
async fn read_metrics(aws: &SideAws, state: &LinkState) -> Result<MetricsSeen> {
    use crate::provision::metrics::{self as m, alarm_name, host_name, NAMESPACE, POLICY_NAME};
    let side = aws.side;
    let name = host_name(&state.name, side);
    let alarm = alarm_name(&state.name, side);
    let topic = state
        .side(side)
        .metrics
        .as_ref()
        .and_then(|x| x.alarm_topic.clone());
    let instance = state
        .side(side)
        .tunnel
        .as_ref()
        .and_then(|h| h.instance_id.clone());
    let profile = async {
        Ok::<_, crate::error::Error>(aws.iam.get_instance_profile(&name).await?.map(|p| {
            p.roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .collect()
        }))
    };
    let policy = async {
        Ok::<_, crate::error::Error>(
            aws.iam
                .get_role_policy(&name, POLICY_NAME)
                .await?
                .map(|d| crate::aws::iam::url_decode(&d)),
        )
    };
    let associated = async {
        let Some(id) = instance else {
            return Ok::<_, crate::error::Error>(None);
        };
        Ok(aws
            .ec2
            .describe_iam_instance_profile_associations(&id)
            .await?
            .iter()
            .filter(|a| {
                matches!(
                    a.state().map(|s| s.as_str()),
                    Some("associating" | "associated")
                )
            })
            .find_map(|a| a.iam_instance_profile().and_then(|p| p.arn()))
            .map(str::to_string))
    };
    let alarm_seen = async {
        let spec = m::alarm_spec(&state.name, side, topic.as_deref());
        let found = aws.cloudwatch.describe_alarms(&alarm).await?;
        Ok::<_, crate::error::Error>(
            found
                .iter()
                .find(|a| a.alarm_name() == Some(alarm.as_str()))
                .map(|a| AlarmSeen {
                    as_specified: spec.matches(a),
                    state: a
                        .state_value()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                }),
        )
    };
    let figures = async {
        let stats: Vec<(&str, aws_sdk_cloudwatch::types::Statistic)> = m::FIGURES
            .iter()
            .map(|(n, s)| (*n, aws_sdk_cloudwatch::types::Statistic::from(*s)))
            .collect();
        // The last 10 whole minutes, and the current one to its end (a datum of this second is in it; CloudWatch
        // takes an end time in the future).
        let minute = |t: std::time::SystemTime| {
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs - secs % 60)
        };
        let now = std::time::SystemTime::now();
        let start = minute(now - std::time::Duration::from_secs(600));
        let end = minute(now) + std::time::Duration::from_secs(60);
        let latest = aws
            .cloudwatch
            .get_metric_data(
                NAMESPACE,
                &m::dimensions(&state.name, side),
                &stats,
                (start, end),
                60,
            )
            .await?;
        Ok::<_, crate::error::Error>(
            latest
                .into_iter()
                .zip(m::FIGURES)
                .filter_map(|((metric, v), (_, stat))| {
                    let (t, value) = v?;
                    let at = aws_smithy_types::DateTime::from_secs(t)
                        .fmt(aws_smithy_types::date_time::Format::DateTime)
                        .ok()?;
                    Some(Figure {
                        metric,
                        statistic: stat.to_string(),
                        value,
                        at,
                    })
                })
                .collect(),
        )
    };
    let (profile_roles, policy, associated, alarm, figures) =
        tokio::try_join!(profile, policy, associated, alarm_seen, figures)?;
    Ok(MetricsSeen {
        profile_roles,
        policy,
        associated,
        alarm,
        figures,
    })
}

/// The instance profile (with its role, policy and host) and the alarm, judged against the contract (pure). The
/// alarm's state is shown, not judged: a link provisioned without `configure` has no figures yet, and that is not
/// drift of what `up` made.
fn judge_metrics(state: &LinkState, seen: &MetricsSeen, out: &mut Items) {
    use crate::provision::metrics::{alarm_name, host_name, host_policy, same_policy, POLICY_NAME};
    let side = out.side;
    let recorded = state.side(side).metrics.as_ref();
    let missing = |made: bool| {
        if made {
            "missing; `vpclink up` makes it again"
        } else {
            "not created yet; `vpclink up` makes it"
        }
    };
    let name = host_name(&state.name, side);
    let instance = state
        .side(side)
        .tunnel
        .as_ref()
        .and_then(|h| h.instance_id.clone());
    let profile_made = recorded.is_some_and(|m| m.instance_profile.is_some());
    match &seen.profile_roles {
        None => out.add("instance-profile", &name, false, missing(profile_made)),
        Some(roles) if !roles.contains(&name) => out.add(
            "instance-profile",
            &name,
            false,
            format!("does not hold role {name}; `vpclink up` adds it"),
        ),
        Some(_) => match (&seen.policy, &instance, &seen.associated) {
            (None, _, _) => out.add(
                "instance-profile",
                &name,
                false,
                format!("role {name} or its policy {POLICY_NAME} is missing; `vpclink up` puts it back"),
            ),
            (Some(p), _, _) if !same_policy(p, &host_policy()) => out.add(
                "instance-profile",
                &name,
                false,
                format!("policy {POLICY_NAME} differs from what vpclink sets (cloudwatch:PutMetricData in namespace vpclink only); `vpclink up` puts it back"),
            ),
            (Some(_), Some(id), a) if !a.as_deref().is_some_and(|a| a.ends_with(&format!("/{name}"))) => out.add(
                "instance-profile",
                &name,
                false,
                match a {
                    Some(other) => format!("tunnel host {id} has {other} instead; it cannot publish the link's figures"),
                    None => format!("not attached to tunnel host {id}; `vpclink up` attaches it"),
                },
            ),
            (Some(_), id, _) => out.add(
                "instance-profile",
                &name,
                true,
                format!(
                    "role {name}, policy {POLICY_NAME}{}",
                    id.as_ref().map(|i| format!(", on {i}")).unwrap_or_default()
                ),
            ),
        },
    }
    let alarm = alarm_name(&state.name, side);
    let alarm_made = recorded.is_some_and(|m| m.alarm.is_some());
    let topic = recorded
        .and_then(|m| m.alarm_topic.as_deref())
        .map(|t| format!(", notifies {t}"))
        .unwrap_or_default();
    match &seen.alarm {
        None => out.add("alarm", &alarm, false, missing(alarm_made)),
        Some(a) if !a.as_specified => out.add(
            "alarm",
            &alarm,
            false,
            format!(
                "settings differ from what vpclink sets (state {}); `vpclink up` puts them back",
                a.state
            ),
        ),
        Some(a) => out.add("alarm", &alarm, true, format!("state {}{topic}", a.state)),
    }
}

/// The side's figures as `status` shows them (pure).
pub fn side_figures(side: Side, link: &str, seen: &MetricsSeen) -> SideFigures {
    SideFigures {
        side,
        alarm: crate::provision::metrics::alarm_name(link, side),
        alarm_state: seen.alarm.as_ref().map(|a| a.state.clone()),
        figures: seen.figures.clone(),
        no_data: seen.figures.is_empty(),
    }
}

/// The figures table: one row per metric with data, "no data yet" for a side without any.
pub fn figures_human(all: &[SideFigures]) -> String {
    let mut rows = Vec::new();
    for f in all {
        rows.push(vec![
            f.side.to_string(),
            "alarm".to_string(),
            f.alarm_state.clone().unwrap_or_else(|| "missing".into()),
            String::new(),
        ]);
        if f.no_data {
            rows.push(vec![
                f.side.to_string(),
                "figures".into(),
                "no data yet".into(),
                "the tunnel host publishes every 60 s once configured".into(),
            ]);
        }
        for x in &f.figures {
            rows.push(vec![
                f.side.to_string(),
                x.metric.clone(),
                format!("{}", x.value),
                format!("{} ({})", x.at, x.statistic),
            ]);
        }
    }
    crate::output::table(&["side", "metric", "latest", "at"], &rows)
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
        let link = state.name.clone();
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
            s.metrics = Some(crate::state::MetricsState {
                instance_profile: Some(crate::provision::metrics::host_name(&link, side)),
                alarm: Some(crate::provision::metrics::alarm_name(&link, side)),
                ..Default::default()
            });
        }
        let host = crate::provision::metrics::host_name(&state.name, Side::East);
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
            metrics: MetricsSeen {
                profile_roles: Some(vec![host.clone()]),
                policy: Some(crate::provision::metrics::host_policy()),
                associated: Some(format!(
                    "arn:aws:iam::123456789012:instance-profile/vpclink/{host}"
                )),
                alarm: Some(AlarmSeen {
                    as_specified: true,
                    state: "INSUFFICIENT_DATA".into(),
                    reason: "Unchecked: Initial alarm creation".into(),
                }),
                figures: Vec::new(),
            },
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
        assert_eq!(items.len(), 10, "{items:?}");
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
            metrics: Vec::new(),
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

    #[test]
    fn the_metrics_plumbing_is_judged_and_the_figures_shown_not_judged() {
        let (state, seen) = healthy();
        let items = judge(Side::East, &state, &seen);
        assert!(health(&items, "instance-profile").1.contains("on i-t"));
        assert!(health(&items, "alarm").1.contains("INSUFFICIENT_DATA"));
        for (change, what, says) in [
            (
                0,
                "instance-profile",
                "missing; `vpclink up` makes it again",
            ),
            (1, "instance-profile", "policy vpclink-metrics differs"),
            (2, "instance-profile", "not attached to tunnel host i-t"),
            (3, "alarm", "settings differ"),
            (4, "alarm", "missing"),
            (
                5,
                "instance-profile",
                "or its policy vpclink-metrics is missing",
            ),
        ] {
            let (state, mut seen) = healthy();
            match change {
                0 => seen.metrics.profile_roles = None,
                1 => seen.metrics.policy = Some(crate::provision::metrics::trust_policy()),
                2 => seen.metrics.associated = None,
                3 => seen.metrics.alarm.as_mut().unwrap().as_specified = false,
                4 => seen.metrics.alarm = None,
                _ => seen.metrics.policy = None,
            }
            let (h, detail) = health(&judge(Side::East, &state, &seen), what);
            assert_eq!(h, Health::Drift, "{what}: {detail}");
            assert!(detail.contains(says), "{what}: {detail}");
        }
        // A link from before: nothing recorded, nothing there: "not created yet", drift.
        let (mut state, mut seen) = healthy();
        state.east.metrics = None;
        seen.metrics = MetricsSeen::default();
        let items = judge(Side::East, &state, &seen);
        assert!(health(&items, "alarm").1.contains("not created yet"));
        // Figures: shown with their minute, or "no data yet"; never judged.
        let none = side_figures(Side::East, "l", &seen.metrics);
        assert!(none.no_data && none.alarm == "vpclink-l-east-tunnel-down");
        assert!(figures_human(&[none]).contains("no data yet"));
        seen.metrics.figures.push(Figure {
            metric: "TunnelUp".into(),
            statistic: "Minimum".into(),
            value: 1.0,
            at: "2026-01-01T00:00:00Z".into(),
        });
        let some = side_figures(Side::East, "l", &seen.metrics);
        assert!(!some.no_data);
        let text = figures_human(&[some]);
        assert!(
            text.contains("TunnelUp") && text.contains("2026-01-01T00:00:00Z"),
            "{text}"
        );
    }
}
