//! `down` for names: find each side's zone (by the state's id, by the CallerReference vpclink gives its zones, and
//! by tag), show it, then empty and delete it. Like crate::teardown: read everything first, then delete in order
//! (records, then the zone: Route 53 refuses to delete a zone that holds records other than its SOA and NS,
//! HostedZoneNotEmpty: https://docs.aws.amazon.com/Route53/latest/APIReference/API_DeleteHostedZone.html).

use super::{caller_reference_prefix, zone_name, ROLE_NAMES};
use crate::aws::call_log::step;
use crate::aws::route53::bare_zone_id;
use crate::aws::tags::{LINK, ROLE, SIDE};
use crate::aws::{AwsError, SideAws};
use crate::side::{PerSide, Side};
use crate::state::LinkState;
use aws_sdk_route53::types::{ResourceRecordSet, RrType};
use serde::Serialize;
use std::time::Duration;

type R<T> = Result<T, AwsError>;

/// A names zone found for `down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundZone {
    pub side: Side,
    pub zone_id: String,
    pub zone_name: String,
}

/// Whether a zone is this link's on `side`: recorded in the state, made with vpclink's CallerReference for it, or
/// tagged for it. Pure.
pub fn is_ours(
    link: &str,
    side: Side,
    recorded: Option<&str>,
    (id, caller_reference): (&str, &str),
    tags: Option<&[(String, String)]>,
) -> bool {
    let tag =
        |k: &str| tags.and_then(|t| t.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()));
    recorded == Some(bare_zone_id(id))
        || caller_reference.starts_with(&caller_reference_prefix(link, side))
        || (tag(LINK) == Some(link)
            && tag(SIDE) == Some(side.as_str())
            && tag(ROLE) == Some(ROLE_NAMES))
}

/// The link's zones on one side. Only zones of the link's zone name need their tags read. `label`: the call-log
/// step (`c_zones` for the inventory, `l_zones` for the leak check; scripts/bench.d/aws_dag.py).
pub async fn collect(
    aws: &SideAws,
    link: &str,
    state: Option<&LinkState>,
    label: &'static str,
) -> R<Vec<FoundZone>> {
    let side = aws.side;
    let recorded = state
        .and_then(|s| s.side(side).names.as_ref())
        .and_then(|z| z.zone_id.clone());
    let name = format!("{}.", zone_name(link, side));
    let zones = step(label, aws.route53.list_hosted_zones()).await?;
    let candidates: Vec<_> = zones
        .iter()
        .filter(|z| {
            recorded.as_deref() == Some(bare_zone_id(z.id()))
                || z.name().eq_ignore_ascii_case(&name)
                || z.caller_reference()
                    .starts_with(&caller_reference_prefix(link, side))
        })
        .collect();
    let ids: Vec<String> = candidates
        .iter()
        .map(|z| bare_zone_id(z.id()).to_string())
        .collect();
    let tags = if ids.is_empty() {
        Vec::new()
    } else {
        step(label, aws.route53.zone_tags(&ids)).await?
    };
    Ok(candidates
        .into_iter()
        .filter(|z| {
            let id = bare_zone_id(z.id());
            let t = tags
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, t)| t.as_slice());
            is_ours(
                link,
                side,
                recorded.as_deref(),
                (id, z.caller_reference()),
                t,
            )
        })
        .map(|z| FoundZone {
            side,
            zone_id: bare_zone_id(z.id()).to_string(),
            zone_name: z.name().trim_end_matches('.').to_string(),
        })
        .collect())
}

/// Both sides' zones.
pub async fn collect_both(
    aws: &PerSide<SideAws>,
    link: &str,
    state: Option<&LinkState>,
) -> crate::error::Result<Vec<FoundZone>> {
    both_sides(aws, link, state, "c_zones").await
}

async fn both_sides(
    aws: &PerSide<SideAws>,
    link: &str,
    state: Option<&LinkState>,
    label: &'static str,
) -> crate::error::Result<Vec<FoundZone>> {
    // A state that records no zone on a side (an older link, or --no-dns) may come with a profile that may not read
    // Route 53: see teardown::unrecorded_denied_is_unchecked.
    let unrecorded = |side: Side| state.is_some_and(|s| s.side(side).names.is_none());
    let one = |side: Side| async move {
        crate::teardown::unrecorded_denied_is_unchecked(
            collect(aws.get(side), link, state, label)
                .await
                .map_err(crate::error::Error::from),
            side,
            unrecorded(side),
            "a Route 53 zone",
        )
    };
    let (e, w) = crate::side::both(one(Side::East), one(Side::West)).await;
    let (e, w) = crate::error::Error::both(e, w)?;
    Ok(e.into_iter().chain(w).collect())
}

/// Rows for `down`'s listing (side, resource, id).
pub fn rows(zones: &[FoundZone]) -> Vec<Vec<String>> {
    zones
        .iter()
        .map(|z| {
            vec![
                z.side.to_string(),
                "hosted-zone".into(),
                format!("{} ({})", z.zone_id, z.zone_name),
            ]
        })
        .collect()
}

/// Everything in the zone but its apex SOA and NS, in batches within ChangeResourceRecordSets' limits (100 changes,
/// 1000 records per request).
fn batches(zone: &str, sets: Vec<ResourceRecordSet>) -> Vec<Vec<ResourceRecordSet>> {
    let apex = format!("{}.", zone.trim_end_matches('.'));
    let mut out: Vec<Vec<ResourceRecordSet>> = Vec::new();
    let mut records = 0;
    for s in sets {
        let is_apex = s.name().eq_ignore_ascii_case(&apex);
        if is_apex && matches!(s.r#type(), RrType::Soa | RrType::Ns) {
            continue;
        }
        let n = s.resource_records().len().max(1);
        match out.last_mut() {
            Some(b) if b.len() < super::diff::MAX_CHANGES && records + n <= 1000 => {
                records += n;
                b.push(s);
            }
            _ => {
                records = n;
                out.push(vec![s]);
            }
        }
    }
    out
}

/// Empty each zone and delete it; a zone already gone counts as deleted. Every zone is tried; the first error is
/// returned.
pub async fn delete(aws: &PerSide<SideAws>, zones: &[FoundZone]) -> R<()> {
    let mut first = None;
    for z in zones {
        let r53 = &aws.get(z.side).route53;
        let r = async {
            let sets = match step("d_zone_records", r53.list_record_sets(&z.zone_id)).await {
                Ok(s) => s,
                Err(e) if crate::aws::route53::is_no_such_zone(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
            for b in batches(&z.zone_name, sets) {
                step("d_zone_records", r53.delete_record_sets(&z.zone_id, &b)).await?;
            }
            step("d_zone", r53.delete_hosted_zone(&z.zone_id)).await
        }
        .await;
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// After the deletes: the zones still listed (by CallerReference and tag, without the state) once `budget` has
/// passed. Route 53's reads follow its writes, but the loop costs nothing when the answer is already empty.
pub async fn left(
    aws: &PerSide<SideAws>,
    link: &str,
    budget: Duration,
) -> crate::error::Result<usize> {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        let n = both_sides(aws, link, None, "l_zones").await?.len();
        if n == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_ours_by_record_reference_or_tags_and_nothing_else() {
        let tags = |l: &str, s: &str, r: &str| {
            vec![
                (LINK.to_string(), l.to_string()),
                (SIDE.to_string(), s.to_string()),
                (ROLE.to_string(), r.to_string()),
            ]
        };
        let z = ("/hostedzone/Z1", "someone-else");
        assert!(is_ours("l", Side::East, Some("Z1"), z, None));
        assert!(!is_ours("l", Side::East, Some("Z2"), z, None));
        assert!(is_ours(
            "l",
            Side::East,
            None,
            ("Z1", "vpclink:l:east:abc"),
            None
        ));
        assert!(!is_ours(
            "l",
            Side::East,
            None,
            ("Z1", "vpclink:l:west:abc"),
            None
        ));
        assert!(!is_ours(
            "l",
            Side::East,
            None,
            ("Z1", "vpclink:l-2:east:abc"),
            None
        ));
        assert!(is_ours(
            "l",
            Side::East,
            None,
            z,
            Some(&tags("l", "east", "names"))
        ));
        assert!(!is_ours(
            "l",
            Side::East,
            None,
            z,
            Some(&tags("l", "west", "names"))
        ));
        assert!(!is_ours(
            "l",
            Side::East,
            None,
            z,
            Some(&tags("other", "east", "names"))
        ));
    }

    #[test]
    fn batches_skip_the_apex_soa_and_ns_and_keep_the_limits() {
        let set = |name: &str, t: RrType, n: usize| {
            ResourceRecordSet::builder()
                .name(name)
                .r#type(t)
                .ttl(60)
                .set_resource_records(Some(
                    (0..n)
                        .map(|i| {
                            aws_sdk_route53::types::ResourceRecord::builder()
                                .value(format!("10.0.0.{i}"))
                                .build()
                                .unwrap()
                        })
                        .collect(),
                ))
                .build()
                .unwrap()
        };
        let zone = "west.l.vpclink.internal";
        let mut sets = vec![
            set("west.l.vpclink.internal.", RrType::Soa, 1),
            set("west.l.vpclink.internal.", RrType::Ns, 4),
        ];
        sets.extend((0..150).map(|i| set(&format!("h{i}.{zone}."), RrType::A, 1)));
        sets.extend((0..3).map(|i| set(&format!("m{i}.{zone}."), RrType::A, 400)));
        let b = batches(zone, sets);
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 153);
        for batch in &b {
            assert!(batch.len() <= 100);
            assert!(
                batch
                    .iter()
                    .map(|s| s.resource_records().len())
                    .sum::<usize>()
                    <= 1000
            );
        }
    }
}
