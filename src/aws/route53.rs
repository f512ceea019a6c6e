//! A thin wrapper over the Route 53 client: one method per API call, each returning [`AwsError`] with the side,
//! profile, IAM action and resource. Like [`super::Ec2`], with a [`DryRunLog`] the calls that change something are
//! recorded instead of made.
//!
//! Route 53 is a global service: its API has one endpoint, route53.amazonaws.com, signed for us-east-1 ("Amazon
//! Route 53 endpoints and quotas", https://docs.aws.amazon.com/general/latest/gr/r53.html). The SDK's endpoint
//! rules resolve every commercial region to it, so the side's own SdkConfig (its region, and its endpoint_url, which
//! LocalStack uses) is all the client needs. The VPC a private zone is for is named with its own region.

use super::caller::Caller;
use super::ec2::DryRunLog;
use super::error::AwsError;
use crate::side::Side;
use aws_sdk_route53::client::Waiters;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HostedZone, HostedZoneConfig, ResourceRecord,
    ResourceRecordSet, RrType, Tag, TagResourceType, Vpc, VpcRegion,
};
use aws_sdk_route53::Client;
use std::time::Duration;

type R<T> = Result<T, AwsError>;

/// A record change as the wrapper takes it: action, fully qualified name, one IPv4 value, TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ARecordChange {
    pub action: ChangeAction,
    pub name: String,
    pub value: String,
    pub ttl: i64,
}

/// What a private zone is for: the private zone's name, its VPC and that VPC's region, and the CallerReference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpec {
    pub name: String,
    pub vpc_id: String,
    pub vpc_region: String,
    pub caller_reference: String,
    pub comment: String,
}

#[derive(Debug, Clone)]
pub struct Route53 {
    client: Client,
    caller: Caller,
}

/// The zone id without the "/hostedzone/" prefix Route 53 puts on it in some answers.
pub fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

impl Route53 {
    pub fn new(client: Client, side: Side, profile: &str, dry: Option<DryRunLog>) -> Self {
        Route53 {
            client,
            caller: Caller::new(side, profile, dry),
        }
    }

    pub fn side(&self) -> Side {
        self.caller.side
    }

    pub fn is_dry_run(&self) -> bool {
        self.caller.is_dry_run()
    }

    /// CreateHostedZone, private, associated with the VPC. "CallerReference ... allows failed CreateHostedZone
    /// requests to be retried without the risk of executing the operation twice"; a repeated reference is answered
    /// with HostedZoneAlreadyExists (API reference, CreateHostedZone:
    /// https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHostedZone.html), which the caller turns into
    /// "find the zone made by the earlier attempt" ([`Self::zones_by_name`] answers CallerReference). Returns the id,
    /// or None under dry run.
    pub async fn create_hosted_zone(&self, spec: &ZoneSpec) -> R<Option<String>> {
        let detail = format!(
            "{} private, vpc {} ({}), CallerReference {}",
            spec.name, spec.vpc_id, spec.vpc_region, spec.caller_reference
        );
        if self.caller.planned("route53:CreateHostedZone", detail) {
            return Ok(None);
        }
        let out = self
            .client
            .create_hosted_zone()
            .name(&spec.name)
            .caller_reference(&spec.caller_reference)
            .vpc(
                Vpc::builder()
                    .vpc_id(&spec.vpc_id)
                    .vpc_region(VpcRegion::from(spec.vpc_region.as_str()))
                    .build(),
            )
            .hosted_zone_config(
                HostedZoneConfig::builder()
                    .private_zone(true)
                    .comment(&spec.comment)
                    .build(),
            )
            .send()
            .await
            .map_err(self.caller.err("route53:CreateHostedZone", &spec.name))?;
        Ok(out.hosted_zone().map(|z| bare_zone_id(z.id()).to_string()))
    }

    /// ChangeTagsForResource: add tags to a hosted zone (CreateHostedZone takes none).
    pub async fn tag_zone(&self, zone_id: &str, tags: &[(String, String)]) -> R<()> {
        let detail = format!(
            "{zone_id} {}",
            tags.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if self.caller.planned("route53:ChangeTagsForResource", detail) {
            return Ok(());
        }
        self.client
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(bare_zone_id(zone_id))
            .set_add_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(self.caller.err("route53:ChangeTagsForResource", zone_id))?;
        Ok(())
    }

    /// ListHostedZonesByName from `name` on (sorted by name), keeping only zones of exactly that name. One page of up
    /// to 100 is enough: a zone name is this link's and side's own.
    pub async fn zones_by_name(&self, name: &str) -> R<Vec<HostedZone>> {
        let out = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(name)
            .max_items(100)
            .send()
            .await
            .map_err(self.caller.err("route53:ListHostedZonesByName", name))?;
        let want = format!("{}.", name.trim_end_matches('.'));
        Ok(out
            .hosted_zones()
            .iter()
            .filter(|z| z.name().eq_ignore_ascii_case(&want) || z.name().eq_ignore_ascii_case(name))
            .cloned()
            .collect())
    }

    /// ListHostedZones, every page: the account's zones (to find a link's zones by tag when the state is lost).
    pub async fn list_hosted_zones(&self) -> R<Vec<HostedZone>> {
        self.client
            .list_hosted_zones()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(self.caller.err("route53:ListHostedZones", "hosted zones"))
    }

    /// ListTagsForResources: the tags of up to 10 hosted zones per request (API reference, ListTagsForResources:
    /// "ResourceIds ... Maximum number of 10 items"), so larger lists go in several requests.
    pub async fn zone_tags(&self, zone_ids: &[String]) -> R<Vec<(String, Vec<(String, String)>)>> {
        let mut out = Vec::new();
        for chunk in zone_ids.chunks(10) {
            let r = self
                .client
                .list_tags_for_resources()
                .resource_type(TagResourceType::Hostedzone)
                .set_resource_ids(Some(
                    chunk.iter().map(|z| bare_zone_id(z).to_string()).collect(),
                ))
                .send()
                .await
                .map_err(
                    self.caller
                        .err("route53:ListTagsForResources", chunk.join(" ")),
                )?;
            for set in r.resource_tag_sets() {
                out.push((
                    bare_zone_id(set.resource_id().unwrap_or_default()).to_string(),
                    set.tags()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or_default().to_string(),
                                t.value().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
                ));
            }
        }
        Ok(out)
    }

    /// GetHostedZone: the zone and the VPCs it is associated with; None when it is gone (NoSuchHostedZone).
    pub async fn get_hosted_zone(&self, zone_id: &str) -> R<Option<(HostedZone, Vec<String>)>> {
        match self
            .client
            .get_hosted_zone()
            .id(bare_zone_id(zone_id))
            .send()
            .await
        {
            Ok(out) => Ok(out.hosted_zone().cloned().map(|z| {
                (
                    z,
                    out.vpcs()
                        .iter()
                        .filter_map(|v| v.vpc_id().map(str::to_string))
                        .collect(),
                )
            })),
            Err(e) => {
                let e = self.caller.err("route53:GetHostedZone", zone_id)(e);
                if is_no_such_zone(&e) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// ListResourceRecordSets, every page. The operation has no SDK paginator: each answer that IsTruncated names
    /// where the next page starts (NextRecordName, NextRecordType, NextRecordIdentifier), passed back as
    /// StartRecordName/Type/Identifier (API reference, ListResourceRecordSets:
    /// https://docs.aws.amazon.com/Route53/latest/APIReference/API_ListResourceRecordSets.html).
    pub async fn list_record_sets(&self, zone_id: &str) -> R<Vec<ResourceRecordSet>> {
        let mut all = Vec::new();
        let mut start: Option<(String, RrType, Option<String>)> = None;
        loop {
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(bare_zone_id(zone_id));
            if let Some((name, kind, ident)) = start.take() {
                req = req
                    .start_record_name(name)
                    .start_record_type(kind)
                    .set_start_record_identifier(ident);
            }
            let out = req
                .send()
                .await
                .map_err(self.caller.err("route53:ListResourceRecordSets", zone_id))?;
            all.extend(out.resource_record_sets().iter().cloned());
            match (
                out.is_truncated(),
                out.next_record_name(),
                out.next_record_type(),
            ) {
                (true, Some(name), Some(kind)) => {
                    start = Some((
                        name.to_string(),
                        kind.clone(),
                        out.next_record_identifier().map(str::to_string),
                    ))
                }
                _ => return Ok(all),
            }
        }
    }

    /// ChangeResourceRecordSets: one batch (the caller keeps it within the documented limits, see
    /// names::diff::MAX_CHANGES). A batch is transactional: all of it or none. Returns the change id (None under dry
    /// run).
    pub async fn change_records(
        &self,
        zone_id: &str,
        changes: &[ARecordChange],
    ) -> R<Option<String>> {
        let detail = format!(
            "{zone_id}: {}",
            changes
                .iter()
                .map(|c| format!("{} {} A {}", c.action.as_str(), c.name, c.value))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self
            .caller
            .planned("route53:ChangeResourceRecordSets", detail)
        {
            return Ok(None);
        }
        let built: Result<Vec<Change>, _> = changes
            .iter()
            .map(|c| {
                let set = ResourceRecordSet::builder()
                    .name(&c.name)
                    .r#type(RrType::A)
                    .ttl(c.ttl)
                    .resource_records(ResourceRecord::builder().value(&c.value).build()?)
                    .build()?;
                Change::builder()
                    .action(c.action.clone())
                    .resource_record_set(set)
                    .build()
            })
            .collect();
        let internal = |e: String| {
            self.caller.error(
                "route53:ChangeResourceRecordSets",
                zone_id,
                Some("InvalidInput"),
                format!("internal: {e}"),
            )
        };
        let built = built.map_err(|e| internal(format!("a change could not be built: {e}")))?;
        let batch = ChangeBatch::builder()
            .set_changes(Some(built))
            .build()
            .map_err(|e| internal(format!("the batch could not be built: {e}")))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(bare_zone_id(zone_id))
            .change_batch(batch)
            .send()
            .await
            .map_err(self.caller.err("route53:ChangeResourceRecordSets", zone_id))?;
        Ok(out.change_info().map(|c| c.id().to_string()))
    }

    /// GetChange until INSYNC, through the SDK's ResourceRecordSetsChanged waiter: "the change ... has propagated to
    /// all Route 53 DNS servers managing the hosted zone" (API reference, GetChange:
    /// https://docs.aws.amazon.com/Route53/latest/APIReference/API_GetChange.html). Bounded by `max`.
    pub async fn wait_in_sync(&self, change_id: &str, max: Duration) -> R<()> {
        self.client
            .wait_until_resource_record_sets_changed()
            .id(change_id.trim_start_matches("/change/"))
            .wait(max)
            .await
            .map(|_| ())
            .map_err(|e| {
                self.caller.error(
                    "route53:GetChange",
                    change_id,
                    None,
                    format!(
                        "the change did not reach INSYNC within {} s: {e}",
                        max.as_secs()
                    ),
                )
            })
    }

    /// ChangeResourceRecordSets with DELETE of record sets exactly as ListResourceRecordSets returned them ("you must
    /// specify the same values ... as when you created it", API reference, ChangeResourceRecordSets), in one batch
    /// that the caller keeps within the limits. For `down`, which empties the zone before deleting it.
    pub async fn delete_record_sets(&self, zone_id: &str, sets: &[ResourceRecordSet]) -> R<()> {
        let detail = format!(
            "{zone_id}: {}",
            sets.iter()
                .map(|s| format!("DELETE {} {}", s.name(), s.r#type().as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self
            .caller
            .planned("route53:ChangeResourceRecordSets", detail)
        {
            return Ok(());
        }
        let changes: Result<Vec<Change>, _> = sets
            .iter()
            .map(|s| {
                Change::builder()
                    .action(ChangeAction::Delete)
                    .resource_record_set(s.clone())
                    .build()
            })
            .collect();
        let internal = |e: String| {
            self.caller.error(
                "route53:ChangeResourceRecordSets",
                zone_id,
                Some("InvalidInput"),
                format!("internal: {e}"),
            )
        };
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes.map_err(|e| internal(e.to_string()))?))
            .build()
            .map_err(|e| internal(e.to_string()))?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(bare_zone_id(zone_id))
            .change_batch(batch)
            .send()
            .await
            .map_err(self.caller.err("route53:ChangeResourceRecordSets", zone_id))?;
        Ok(())
    }

    /// DeleteHostedZone. Route 53 refuses a zone that holds records other than its SOA and NS (HostedZoneNotEmpty),
    /// so the caller deletes vpclink's records first. A zone already gone counts as deleted.
    pub async fn delete_hosted_zone(&self, zone_id: &str) -> R<()> {
        if self
            .caller
            .planned("route53:DeleteHostedZone", zone_id.to_string())
        {
            return Ok(());
        }
        match self
            .client
            .delete_hosted_zone()
            .id(bare_zone_id(zone_id))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = self.caller.err("route53:DeleteHostedZone", zone_id)(e);
                if is_no_such_zone(&e) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

pub fn is_no_such_zone(e: &AwsError) -> bool {
    e.code() == "NoSuchHostedZone"
}
