//! `vpclink plan`: connect, discover both VPCs and plan the link; `up` plans the same way, with a survey.

use super::{connect, existing_state};
use crate::aws::{DryRunLog, SideAws, SideTarget};
use crate::cli::{CostArgs, PlanArgs, PlanCommandArgs};
use crate::cost::{self, lookup::Asker, model::CostInput};
use crate::discover::{self, SideFacts};
use crate::error::{Error, Result};
use crate::link::LinkPlan;
use crate::output::{table, Output};
use crate::plan::{self, PlanRequest};
use crate::provision::{self, Connected};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};

pub(super) fn targets(a: &PlanArgs) -> PerSide<SideTarget> {
    let p = &a.profiles;
    PerSide::new(
        SideTarget {
            side: Side::East,
            profile: p.east.clone(),
            region: p.east_region.clone(),
        },
        SideTarget {
            side: Side::West,
            profile: p.west.clone(),
            region: p.west_region.clone(),
        },
    )
}

/// Connect, discover both VPCs and plan the link; an existing link's plan is kept (its mapped ranges are in use).
pub async fn connect_and_plan(
    a: &PlanArgs,
    files: &StateFiles,
    dry: Option<DryRunLog>,
) -> Result<Connected> {
    let existing = existing_state(files)?;
    let aws = connect(targets(a), dry).await?;
    plan_connected(a, existing, aws, None).await
}

/// Discover both connected sides (and survey them for `up`) and plan the link.
pub(super) async fn plan_connected(
    a: &PlanArgs,
    existing: Option<LinkState>,
    aws: PerSide<SideAws>,
    survey: Option<&provision::survey::SurveyRequest>,
) -> Result<Connected> {
    let requested = PerSide::new(a.east_vpc.clone(), a.west_vpc.clone());

    if let Some(state) = &existing {
        for side in Side::BOTH {
            let map = if side == Side::East {
                &a.east_map
            } else {
                &a.west_map
            };
            let mapped = &state.plan.side(side).mapped;
            if !map.is_empty() && map != mapped {
                let list: Vec<String> = mapped.iter().map(|m| m.to_string()).collect();
                return Err(Error::Input(format!(
                    "link '{}' maps the {side} VPC at {}; mapped ranges cannot change while the link exists. Drop --{side}-map, or `vpclink down --name {}` first",
                    state.name,
                    list.join(" "),
                    state.name
                )));
            }
        }
        for side in Side::BOTH {
            let was = state.plan.side(side);
            let asked = requested.get(side).as_deref();
            let now = aws.get(side);
            if asked.is_some_and(|v| v != was.vpc_id)
                || now.account != was.account
                || now.region != was.region
            {
                return Err(Error::Input(format!(
                    "link '{}' already links {side} VPC {} in account {} ({}); this run asks for {} in account {} ({}). Use another --name, or `vpclink down --name {}` first",
                    state.name, was.vpc_id, was.account, was.region, asked.unwrap_or(&was.vpc_id), now.account, now.region, state.name
                )));
            }
        }
    }

    let choice = |side: Side| match &existing {
        Some(s) => discover::VpcChoice::Known(&s.plan.side(side).vpc_id),
        None => discover::VpcChoice::Pick(requested.get(side).as_deref()),
    };
    // `up` surveys each side beside its discovery (provision::survey); the other commands only discover.
    let aws_ref = &aws;
    let side_facts = |side: Side| async move {
        let aws = aws_ref.get(side);
        match survey {
            Some(req) => provision::survey::discover_and_survey(aws, choice(side), req)
                .await
                .map(|(f, s)| (f, Some(s))),
            None => Ok((discover::discover(aws, choice(side)).await?, None)),
        }
    };
    let (east, west) = crate::side::both(side_facts(Side::East), side_facts(Side::West)).await;
    // Both sides' errors together, each keeping its kind (a throttled read stays a run-time failure).
    let ((east, east_survey), (west, west_survey)) = Error::both(east, west)?;
    let mut facts = PerSide::new(east, west);
    let mut survey = east_survey
        .zip(west_survey)
        .map(|(e, w)| PerSide::new(e, w));
    // The hosts' subnets: in a zone that offers the instance type (known to `up`'s survey), or as asked.
    for side in Side::BOTH {
        let requested = match side {
            Side::East => a.east_subnet.as_deref(),
            Side::West => a.west_subnet.as_deref(),
        };
        let offered = survey
            .as_ref()
            .and_then(|s| s.get(side).offered_zones.clone());
        if let Err(p) = facts
            .get_mut(side)
            .choose_subnets(requested, offered.as_ref())
        {
            let problem = format!("{side} side: {p}");
            match survey.as_mut() {
                Some(s) => s.get_mut(side).problems.push(problem.into()),
                None => return Err(Error::Input(problem)),
            }
        }
    }

    let plan = match &existing {
        Some(state) => refreshed(&state.plan, &facts),
        None => new_plan(a, &aws, &facts)?,
    };
    Ok(Connected {
        aws,
        facts,
        survey,
        plan,
        existing,
    })
}

/// An existing plan with today's route tables (a table added since the last run gets the routes too).
fn refreshed(old: &LinkPlan, facts: &PerSide<SideFacts>) -> LinkPlan {
    let mut plan = old.clone();
    for side in Side::BOTH {
        let p = plan.side_mut(side);
        p.route_tables = facts.get(side).table_ids();
        let f = facts.get(side);
        p.skipped_tables = f.gateway_tables.clone();
        if !p
            .public_subnet
            .as_ref()
            .is_some_and(|s| f.public_subnets.contains(s))
        {
            p.public_subnet = f.public_subnet().map(str::to_string);
        }
    }
    plan
}

fn new_plan(a: &PlanArgs, aws: &PerSide<SideAws>, facts: &PerSide<SideFacts>) -> Result<LinkPlan> {
    let vpcs = facts.map(|_, f| f.addresses());
    let overlapping = plan::vpcs_overlap(&vpcs);
    if !overlapping && !a.allow_disjoint {
        let list = |s: Side| {
            facts
                .get(s)
                .vpc
                .cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(Error::Input(format!(
            "the VPCs do not overlap (east {} {}, west {} {}): plain VPC peering or a transit gateway links them without address mapping. To link them with vpclink anyway, pass --allow-disjoint",
            facts.east.vpc.id,
            list(Side::East),
            facts.west.vpc.id,
            list(Side::West)
        )));
    }
    let req = PlanRequest {
        vpcs,
        overrides: PerSide::new(a.east_map.clone(), a.west_map.clone()),
        owned_routes: Vec::new(),
    };
    let mapped = plan::plan(&req)?;
    let side_plan = |side: Side| {
        let mut p = facts.get(side).side_plan(aws.get(side));
        p.mapped = mapped.get(side).iter().map(|m| m.mapped).collect();
        p
    };
    Ok(LinkPlan {
        name: a.name.name.clone(),
        overlapping,
        east: side_plan(Side::East),
        west: side_plan(Side::West),
    })
}

pub(super) fn plan_human(plan: &LinkPlan) -> String {
    let mut rows = Vec::new();
    for side in Side::BOTH {
        let p = plan.side(side);
        for (i, (c, m)) in p.cidrs.iter().zip(&p.mapped).enumerate() {
            let first = i == 0;
            let cell = |s: String| if first { s } else { String::new() };
            rows.push(vec![
                cell(side.to_string()),
                cell(p.profile.clone()),
                cell(format!("{} {}", p.account, p.region)),
                cell(p.vpc_id.clone()),
                c.to_string(),
                format!("{} reaches it at {m}", side.peer()),
            ]);
        }
    }
    let mut s = table(
        &["side", "profile", "account/region", "vpc", "cidr", "mapped"],
        &rows,
    );
    for side in Side::BOTH {
        let p = plan.side(side);
        s.push_str(&format!(
            "{side}: routes to the {} side's mapped ranges go into {} route table(s): {}; tunnel host subnet {}\n",
            side.peer(),
            p.route_tables.len(),
            p.route_tables.join(" "),
            p.public_subnet.as_deref().unwrap_or("(none: no public subnet)")
        ));
        for t in &p.skipped_tables {
            s.push_str(&format!("{side}: skipped: {t}\n"));
        }
    }
    s
}

/// What `plan --json` prints: the plan's fields, and the cost table as `cost` (absent with --no-cost).
#[derive(serde::Serialize)]
struct PlanOutput<'a> {
    #[serde(flatten)]
    plan: &'a LinkPlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<&'a cost::CostReport>,
}

/// The cost table for the planned link: prices through the east profile, else the west one, else built in.
async fn cost_report(a: &CostArgs, aws: &PerSide<SideAws>) -> cost::CostReport {
    let input = CostInput {
        east_region: aws.east.region.clone(),
        west_region: aws.west.region.clone(),
        instance_type: a.instance_type.clone(),
        traffic_gb: a.traffic,
        ha: a.ha,
    };
    let mut askers = vec![Asker {
        side: Side::East,
        profile: aws.east.profile.clone(),
    }];
    if aws.west.profile != aws.east.profile {
        askers.push(Asker {
            side: Side::West,
            profile: aws.west.profile.clone(),
        });
    }
    cost::estimate(&askers, &input).await
}

pub(super) async fn plan(a: PlanCommandArgs, out: &Output) -> Result<()> {
    let PlanCommandArgs { plan: a, cost: c } = a;
    let files = StateFiles::for_link(&a.name.name)?;
    let connected = connect_and_plan(&a, &files, None).await?;
    let cost = if c.no_cost {
        None
    } else {
        let pb = out.spinner(format!(
            "cost: asking the AWS Price List API (at most {} s)",
            cost::lookup::LOOKUP_TIMEOUT.as_secs()
        ));
        let r = cost_report(&c, &connected.aws).await;
        pb.finish_and_clear();
        Some(r)
    };
    let shown = PlanOutput {
        plan: &connected.plan,
        cost: cost.as_ref(),
    };
    out.emit(&shown, || {
        let mut s = plan_human(&connected.plan);
        if let Some(r) = &cost {
            s.push_str(&cost::render::human(r));
        }
        s
    });
    Ok(())
}
