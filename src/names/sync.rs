//! The imperative shell of names: read the other VPC's interfaces and this side's zone, compute with the pure core
//! ([`super::records`], [`super::diff`]), apply, report. Used by `up` (after provisioning), `sync` and `status`.

use super::diff::{self, Change, Seen};
use super::records::{self, Desired, Interface, NotMade};
use super::{caller_reference_prefix, zone_name, ZoneState, ROLE_NAMES};
use crate::aws::call_log::step;
use crate::aws::route53::{ARecordChange, Route53, ZoneSpec};
use crate::aws::tags::{tag_value, LINK, ROLE, SIDE};
use crate::aws::{AwsError, SideAws};
use crate::error::{Error, Result};
use crate::plan::{translate, AddressPlan, Translation};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};
use crate::status::{Health, Item};
use aws_sdk_ec2::types::{Filter, NetworkInterface};
use aws_sdk_route53::types::{ChangeAction, ResourceRecordSet};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long a run waits for its last change to reach every Route 53 server of the zone (INSYNC); AWS: "changes
/// generally propagate to all Route 53 name servers within 60 seconds".
const IN_SYNC_WAIT: Duration = Duration::from_secs(180);

/// One side's zone after a run (or, for `--dry-run`, what the run would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideNames {
    pub side: Side,
    pub zone_name: String,
    /// None under `--dry-run` before the zone exists.
    pub zone_id: Option<String>,
    pub zone_created: bool,
    /// vpclink's records in the zone afterwards.
    pub records: usize,
    pub changes: Vec<Change>,
    pub not_made: Vec<NotMade>,
    /// Why this side's VPC will not resolve the zone, with the fix; None when its DNS attributes allow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_dns: Option<String>,
}

/// Why a VPC whose DNS attributes are these will not answer its private hosted zones, and the fix; None when both
/// are on (see [`crate::aws::Ec2::vpc_dns_attributes`]). vpclink does not change them: they are the VPC's own.
pub fn vpc_dns_problem(vpc: &str, support: bool, hostnames: bool) -> Option<String> {
    let off: Vec<&str> = [
        (support, "enableDnsSupport"),
        (hostnames, "enableDnsHostnames"),
    ]
    .into_iter()
    .filter(|(on, _)| !on)
    .map(|(_, name)| name)
    .collect();
    if off.is_empty() {
        return None;
    }
    let flags: Vec<String> = off
        .iter()
        .map(|a| {
            let flag = if *a == "enableDnsSupport" {
                "--enable-dns-support"
            } else {
                "--enable-dns-hostnames"
            };
            format!("aws ec2 modify-vpc-attribute --vpc-id {vpc} {flag} '{{\"Value\":true}}'")
        })
        .collect();
    Some(format!(
        "{vpc} has {} off, so its resolver will not answer the zone's names; fix: {}",
        off.join(" and "),
        flags.join(" && ")
    ))
}

impl SideNames {
    fn count(&self, f: fn(&Change) -> bool) -> usize {
        self.changes.iter().filter(|c| f(c)).count()
    }
    pub fn added(&self) -> usize {
        self.count(|c| matches!(c, Change::Create { .. }))
    }
    pub fn changed(&self) -> usize {
        self.count(|c| matches!(c, Change::Upsert { .. }))
    }
    pub fn removed(&self) -> usize {
        self.count(|c| matches!(c, Change::Delete { .. }))
    }
}

/// The address `side`'s real address `a` is reached at from the other side; None outside the link's mapped ranges.
pub fn mapped(plan: &AddressPlan, side: Side, a: Ipv4Addr) -> Option<Ipv4Addr> {
    translate(plan, a).into_iter().find_map(|t| match t {
        Translation::RealToMapped {
            side: s, mapped, ..
        } if s == side => Some(mapped),
        _ => None,
    })
}

/// One interface as the pure core takes it; `names`: instance id -> Name tag.
pub fn interface(n: &NetworkInterface, names: &BTreeMap<String, String>) -> Interface {
    let primary: Option<Ipv4Addr> = n.private_ip_address().and_then(|a| a.parse().ok());
    let mut addresses: Vec<Ipv4Addr> = primary.into_iter().collect();
    for a in n.private_ip_addresses() {
        if let Some(ip) = a.private_ip_address().and_then(|a| a.parse().ok()) {
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    Interface {
        eni_id: n.network_interface_id().unwrap_or_default().to_string(),
        addresses,
        private_dns_name: n.private_dns_name().map(str::to_string),
        instance_name: n
            .attachment()
            .and_then(|a| a.instance_id())
            .and_then(|i| names.get(i).cloned()),
        interface_type: n.interface_type().map(|t| t.as_str().to_string()),
        description: n.description().unwrap_or_default().to_string(),
        requester_managed: n.requester_managed().unwrap_or(false),
    }
}

/// Every interface of the VPC, with the Name tags of the instances they are attached to (DescribeInstances by
/// instance-id filter, at most 200 values per filter: "You can specify up to 200 values for a filter", EC2 API
/// reference, Filter: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Filter.html).
pub async fn interfaces(
    aws: &SideAws,
    vpc_id: &str,
) -> std::result::Result<Vec<Interface>, AwsError> {
    // Call-log steps (scripts/bench.d/aws_dag.py): names_enis, names_instances, names_zone_read, names_zone,
    // names_records_read, names_records.
    let enis = step(
        "names_enis",
        aws.ec2.describe_vpc_network_interfaces(vpc_id),
    )
    .await?;
    let ids: Vec<String> = enis
        .iter()
        .filter_map(|n| n.attachment()?.instance_id().map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut names = BTreeMap::new();
    for chunk in ids.chunks(200) {
        let filter = Filter::builder()
            .name("instance-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        for i in step("names_instances", aws.ec2.describe_instances(vec![filter])).await? {
            if let (Some(id), Some(name)) = (i.instance_id(), tag_value(i.tags(), "Name")) {
                names.insert(id.to_string(), name.to_string());
            }
        }
    }
    Ok(enis.iter().map(|n| interface(n, &names)).collect())
}

/// The records the zone on `side` should hold: read from the other side's VPC.
pub async fn desired(state: &LinkState, aws: &PerSide<SideAws>, side: Side) -> Result<Desired> {
    let other = side.peer();
    let ifs = interfaces(aws.get(other), &state.plan.side(other).vpc_id).await?;
    let plan = state.plan.mappings();
    Ok(records::desired(&zone_name(&state.name, side), &ifs, |a| {
        mapped(&plan, other, a)
    }))
}

fn seen(s: &ResourceRecordSet) -> Seen {
    Seen {
        name: diff::normalise(s.name()),
        kind: s.r#type().as_str().to_string(),
        values: s
            .resource_records()
            .iter()
            .map(|r| r.value().to_string())
            .collect(),
        ttl: s.ttl(),
        alias: s.alias_target().is_some(),
        set_identifier: s.set_identifier().is_some(),
    }
}

type Owned = BTreeMap<String, (Ipv4Addr, i64)>;

/// vpclink's records in the zone, and the names other records hold.
pub async fn read_zone(
    r53: &Route53,
    zone_id: &str,
    zone: &str,
) -> std::result::Result<(Owned, Vec<String>), AwsError> {
    let sets = step("names_records_read", r53.list_record_sets(zone_id)).await?;
    let seen: Vec<Seen> = sets.iter().map(seen).collect();
    Ok(diff::owned(zone, &seen))
}

/// The changes to make, and what cannot be made: a desired name another record holds is left to it and reported.
pub fn plan_changes(
    mut desired: Desired,
    owned: &Owned,
    foreign: &[String],
) -> (Vec<Change>, Vec<NotMade>) {
    for name in foreign {
        if let Some(value) = desired.records.remove(name) {
            desired.not_made.push(NotMade {
                name: name.clone(),
                eni_id: String::new(),
                address: value,
                reason: "a record vpclink did not make holds this name; vpclink leaves it alone"
                    .into(),
            });
        }
    }
    desired.not_made.sort();
    (diff::diff(&desired.records, owned), desired.not_made)
}

fn wrapper_change(c: &Change) -> ARecordChange {
    let (action, name, value, ttl) = match c {
        Change::Create { name, value } => (ChangeAction::Create, name, value, diff::TTL),
        Change::Upsert { name, value, .. } => (ChangeAction::Upsert, name, value, diff::TTL),
        Change::Delete { name, value, ttl } => (ChangeAction::Delete, name, value, *ttl),
    };
    ARecordChange {
        action,
        name: name.clone(),
        value: value.to_string(),
        ttl,
    }
}

/// Apply in batches within Route 53's limits, then wait until the last one is INSYNC (changes are applied in the
/// order they are submitted, so the last one in sync means all are).
async fn apply(
    r53: &Route53,
    zone_id: &str,
    changes: &[Change],
) -> std::result::Result<(), AwsError> {
    let mut last = None;
    for batch in diff::batches(changes) {
        let batch: Vec<ARecordChange> = batch.iter().map(wrapper_change).collect();
        last = step("names_records", r53.change_records(zone_id, &batch))
            .await?
            .or(last);
    }
    if let Some(id) = last {
        step("names_records", r53.wait_in_sync(&id, IN_SYNC_WAIT)).await?;
    }
    Ok(())
}

fn zone_tags(link: &str, side: Side) -> Vec<(String, String)> {
    vec![
        ("Name".into(), format!("vpclink-{link}-{side}-{ROLE_NAMES}")),
        (LINK.into(), link.into()),
        (SIDE.into(), side.to_string()),
        (ROLE.into(), ROLE_NAMES.into()),
    ]
}

/// 16 random hex digits: what makes one zone's CallerReference its own.
fn nonce() -> String {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fresh_zone(link: &str, side: Side) -> ZoneState {
    ZoneState {
        zone_name: zone_name(link, side),
        caller_reference: format!("{}{}", caller_reference_prefix(link, side), nonce()),
        zone_id: None,
    }
}

/// What the state should say before anything is created: the recorded zone when it still exists (its id), a zone
/// started by a run that crashed before recording its id (same CallerReference, no id), else a new one with a new
/// CallerReference (a zone deleted by hand must not be answered for by its old reference).
async fn prepare(
    aws: &SideAws,
    link: &str,
    recorded: Option<ZoneState>,
) -> std::result::Result<ZoneState, AwsError> {
    match recorded {
        None => Ok(fresh_zone(link, aws.side)),
        Some(z) => match z.zone_id.as_deref() {
            None => Ok(z),
            Some(id) => match step("names_zone_read", aws.route53.get_hosted_zone(id)).await? {
                Some(_) => Ok(z),
                None => Ok(fresh_zone(link, aws.side)),
            },
        },
    }
}

/// The zone made with this CallerReference, if any (ListHostedZonesByName answers each zone's CallerReference).
async fn made_by(r53: &Route53, z: &ZoneState) -> std::result::Result<Option<String>, AwsError> {
    Ok(step("names_zone_read", r53.zones_by_name(&z.zone_name))
        .await?
        .into_iter()
        .find(|h| h.caller_reference() == z.caller_reference)
        .map(|h| crate::aws::route53::bare_zone_id(h.id()).to_string()))
}

/// The zone's id, creating and tagging it when it does not exist yet. None under `--dry-run` for a zone not made.
async fn ensure(
    aws: &SideAws,
    state: &LinkState,
    z: &ZoneState,
) -> std::result::Result<(Option<String>, bool), AwsError> {
    if let Some(id) = &z.zone_id {
        return Ok((Some(id.clone()), false));
    }
    let r53 = &aws.route53;
    let plan = state.plan.side(aws.side);
    let spec = ZoneSpec {
        name: z.zone_name.clone(),
        vpc_id: plan.vpc_id.clone(),
        vpc_region: plan.region.clone(),
        caller_reference: z.caller_reference.clone(),
        comment: format!(
            "vpclink {}: names of the {} side's hosts at their mapped addresses",
            state.name,
            aws.side.peer()
        ),
    };
    let id = match made_by(r53, z).await? {
        Some(id) => id,
        None => match step("names_zone", r53.create_hosted_zone(&spec)).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                r53.tag_zone(
                    &format!("<new {} hosted zone>", aws.side),
                    &zone_tags(&state.name, aws.side),
                )
                .await?;
                return Ok((None, true));
            }
            // An earlier attempt with this reference got through: that zone is ours.
            Err(e) if e.code() == "HostedZoneAlreadyExists" => made_by(r53, z).await?.ok_or(e)?,
            Err(e) => return Err(e),
        },
    };
    step(
        "names_zone",
        r53.tag_zone(&id, &zone_tags(&state.name, aws.side)),
    )
    .await?;
    Ok((Some(id), true))
}

/// Bring one side's zone up to date (its id: None only under `--dry-run` for a zone not made yet).
async fn sync_side(
    state: &LinkState,
    aws: &PerSide<SideAws>,
    side: Side,
    zone_id: Option<&str>,
    created: bool,
) -> Result<SideNames> {
    let zone = zone_name(&state.name, side);
    let r53 = &aws.get(side).route53;
    let want = desired(state, aws, side).await?;
    let (owned, foreign) = match zone_id {
        Some(id) => read_zone(r53, id, &zone).await?,
        None => Default::default(),
    };
    let (changes, not_made) = plan_changes(want, &owned, &foreign);
    let vpc = &state.plan.side(side).vpc_id;
    let (support, hostnames) =
        step("names_vpc_dns", aws.get(side).ec2.vpc_dns_attributes(vpc)).await?;
    let target = zone_id
        .map(str::to_string)
        .unwrap_or_else(|| format!("<new {side} hosted zone>"));
    apply(r53, &target, &changes).await?;
    Ok(SideNames {
        side,
        zone_name: zone,
        zone_id: zone_id.map(str::to_string),
        zone_created: created,
        records: diff::apply(&owned, &changes).len(),
        changes,
        not_made,
        vpc_dns: vpc_dns_problem(vpc, support, hostnames),
    })
}

/// Make (or find) both zones, record them in the state (saved through `files`; None under `--dry-run`), and bring
/// their records up to date with both VPCs.
pub async fn sync_link(
    files: Option<&StateFiles>,
    state: &mut LinkState,
    aws: &PerSide<SideAws>,
) -> Result<PerSide<SideNames>> {
    let link = state.name.clone();
    let (e, w) = crate::side::both(
        prepare(&aws.east, &link, state.east.names.clone()),
        prepare(&aws.west, &link, state.west.names.clone()),
    )
    .await;
    let (e, w) = Error::both(e.map_err(Error::from), w.map_err(Error::from))?;
    state.east.names = Some(e);
    state.west.names = Some(w);
    if let Some(f) = files {
        f.save(state)?;
    }
    let zones = PerSide::new(
        state.east.names.clone().expect("set above"),
        state.west.names.clone().expect("set above"),
    );
    let (e, w) = crate::side::both(
        ensure(&aws.east, state, &zones.east),
        ensure(&aws.west, state, &zones.west),
    )
    .await;
    let (e, w) = Error::both(e.map_err(Error::from), w.map_err(Error::from))?;
    let made = PerSide::new(e, w);
    for side in Side::BOTH {
        if let (Some(z), Some(id)) = (state.side_mut(side).names.as_mut(), &made.get(side).0) {
            z.zone_id = Some(id.clone());
        }
    }
    if let Some(f) = files {
        f.save(state)?;
    }
    let st: &LinkState = state;
    let (e, w) = crate::side::both(
        sync_side(st, aws, Side::East, made.east.0.as_deref(), made.east.1),
        sync_side(st, aws, Side::West, made.west.0.as_deref(), made.west.1),
    )
    .await;
    let (e, w) = Error::both(e, w)?;
    Ok(PerSide::new(e, w))
}

/// `status`: per side, the zone (there, associated with the side's VPC) and the records that drifted.
pub async fn status_items(state: &LinkState, aws: &PerSide<SideAws>) -> Result<Vec<Item>> {
    let (e, w) = crate::side::both(
        side_status(state, aws, Side::East),
        side_status(state, aws, Side::West),
    )
    .await;
    let (e, w) = Error::both(e, w)?;
    Ok(e.into_iter().chain(w).collect())
}

fn item(side: Side, id: &str, health: Health, detail: String) -> Item {
    Item {
        side,
        resource: "names-zone".into(),
        id: id.into(),
        ok: health == Health::Ok,
        health,
        detail,
    }
}

async fn side_status(state: &LinkState, aws: &PerSide<SideAws>, side: Side) -> Result<Vec<Item>> {
    let Some(z) = &state.side(side).names else {
        return Ok(vec![item(
            side,
            "-",
            Health::Ok,
            "no names: the link was made with --no-dns (or before names existed)".into(),
        )]);
    };
    let Some(id) = &z.zone_id else {
        return Ok(vec![item(
            side,
            "-",
            Health::Drift,
            format!("zone {} was never made; `vpclink up` makes it", z.zone_name),
        )]);
    };
    let r53 = &aws.get(side).route53;
    let Some((_, vpcs)) = r53.get_hosted_zone(id).await? else {
        return Ok(vec![item(
            side,
            id,
            Health::Drift,
            format!(
                "zone {} is missing; `vpclink up` makes it again",
                z.zone_name
            ),
        )]);
    };
    let vpc = &state.plan.side(side).vpc_id;
    if !vpcs.contains(vpc) {
        return Ok(vec![item(
            side,
            id,
            Health::Drift,
            format!(
                "zone {} is not associated with {vpc} (it is with: {}); `vpclink down` and `up` make it again",
                z.zone_name,
                if vpcs.is_empty() { "none".to_string() } else { vpcs.join(" ") }
            ),
        )]);
    }
    let want = desired(state, aws, side).await?;
    let (owned, foreign) = read_zone(r53, id, &z.zone_name).await?;
    let (changes, not_made) = plan_changes(want, &owned, &foreign);
    let (support, hostnames) = aws.get(side).ec2.vpc_dns_attributes(vpc).await?;
    let r = SideNames {
        side,
        zone_name: z.zone_name.clone(),
        zone_id: Some(id.clone()),
        zone_created: false,
        records: owned.len(),
        changes,
        not_made,
        vpc_dns: vpc_dns_problem(vpc, support, hostnames),
    };
    // The records may be right and still unanswered: the VPC's own DNS attributes decide.
    if let Some(problem) = &r.vpc_dns {
        return Ok(vec![item(side, id, Health::Drift, problem.clone())]);
    }
    let not_made = match r.not_made.len() {
        0 => String::new(),
        n => format!("; {n} name(s) not made (`vpclink sync` lists why)"),
    };
    Ok(vec![if r.changes.is_empty() {
        item(
            side,
            id,
            Health::Ok,
            format!("{}: {} records, in sync{not_made}", z.zone_name, r.records),
        )
    } else {
        item(
            side,
            id,
            Health::Drift,
            format!(
                "{}: {} to add, {} to change, {} to remove ({}); `vpclink sync --name {}` fixes it{not_made}",
                z.zone_name,
                r.added(),
                r.changed(),
                r.removed(),
                r.changes
                    .iter()
                    .map(|c| c.name().split('.').next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" "),
                state.name
            ),
        )
    }])
}

/// The table `up` and `sync` print.
pub fn human(r: &PerSide<SideNames>) -> String {
    let mut rows = Vec::new();
    let mut not_made = Vec::new();
    for side in Side::BOTH {
        let s = r.get(side);
        rows.push(vec![
            side.to_string(),
            s.zone_name.clone(),
            s.zone_id.clone().unwrap_or_else(|| "(new)".into()),
            s.records.to_string(),
            s.added().to_string(),
            s.changed().to_string(),
            s.removed().to_string(),
            s.not_made.len().to_string(),
        ]);
        for n in &s.not_made {
            not_made.push(vec![
                side.to_string(),
                if n.name.is_empty() {
                    "-".into()
                } else {
                    n.name.clone()
                },
                if n.eni_id.is_empty() {
                    "-".into()
                } else {
                    n.eni_id.clone()
                },
                n.address.to_string(),
                n.reason.clone(),
            ]);
        }
    }
    let mut s = crate::output::table(
        &[
            "side", "zone", "id", "records", "added", "changed", "removed", "not made",
        ],
        &rows,
    );
    for side in Side::BOTH {
        if let Some(w) = &r.get(side).vpc_dns {
            s.push_str(&format!("warning: {side} side: {w}\n"));
        }
    }
    if !not_made.is_empty() {
        s.push_str("\nnames not made:\n");
        s.push_str(&crate::output::table(
            &["side", "name", "interface", "address", "why"],
            &not_made,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vpc_without_dns_host_names_is_named_with_the_exact_fix() {
        assert_eq!(vpc_dns_problem("vpc-1", true, true), None);
        assert_eq!(
            vpc_dns_problem("vpc-1", true, false).unwrap(),
            "vpc-1 has enableDnsHostnames off, so its resolver will not answer the zone's names; fix: \
             aws ec2 modify-vpc-attribute --vpc-id vpc-1 --enable-dns-hostnames '{\"Value\":true}'"
        );
        let both = vpc_dns_problem("vpc-1", false, false).unwrap();
        assert!(
            both.contains("enableDnsSupport and enableDnsHostnames off"),
            "{both}"
        );
        assert!(
            both.contains("--enable-dns-support '{\"Value\":true}' && aws ec2"),
            "{both}"
        );
    }
    use crate::plan::Mapping;

    #[test]
    fn a_foreign_record_keeps_its_name_and_the_loss_is_reported() {
        let zone = "west.l.vpclink.internal";
        let mut d = Desired::default();
        d.records
            .insert(format!("web.{zone}"), "10.2.0.5".parse().unwrap());
        d.records
            .insert(format!("ip-10-0-0-5.{zone}"), "10.2.0.5".parse().unwrap());
        let (changes, not_made) = plan_changes(d, &Owned::new(), &[format!("web.{zone}")]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].name(), format!("ip-10-0-0-5.{zone}"));
        assert_eq!(not_made.len(), 1);
        assert!(not_made[0].reason.contains("did not make"));
    }

    #[test]
    fn mapped_uses_the_other_sides_mapping_only() {
        let m = |r: &str, t: &str| Mapping {
            real: r.parse().unwrap(),
            mapped: t.parse().unwrap(),
        };
        let plan = PerSide::new(
            vec![m("10.0.0.0/16", "10.1.0.0/16")],
            vec![m("10.0.0.0/16", "10.2.0.0/16")],
        );
        let a = "10.0.3.4".parse().unwrap();
        assert_eq!(
            mapped(&plan, Side::West, a),
            Some("10.2.3.4".parse().unwrap())
        );
        assert_eq!(
            mapped(&plan, Side::East, a),
            Some("10.1.3.4".parse().unwrap())
        );
        assert_eq!(
            mapped(&plan, Side::East, "192.168.0.1".parse().unwrap()),
            None
        );
    }
}
