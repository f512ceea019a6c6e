//! The tunnel host's Elastic IP: allocated early (the peer's security group needs it), associated once the host runs.

use super::Step;
use crate::aws::call_log::step as label;
use crate::aws::ec2::retry_not_found;
use crate::aws::tags::{LinkTags, ROLE_TUNNEL};
use crate::error::{Error, Result};
use crate::state::ElasticIp;
use aws_sdk_ec2::types::Address;

fn from_address(a: &Address) -> Option<ElasticIp> {
    Some(ElasticIp {
        allocation_id: a.allocation_id()?.to_string(),
        public_ip: a.public_ip()?.parse().ok()?,
        association_id: a
            .association_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

/// The side's Elastic IP exists: the recorded one if the survey saw it, else one found by tag, else a new one.
pub async fn ensure_allocated(step: &Step<'_>) -> Result<ElasticIp> {
    let tags = LinkTags::new(step.link(), step.side(), ROLE_TUNNEL);
    let recorded = step
        .side_state(|s| s.eip.clone())
        .and_then(|r| step.survey.address(&r.allocation_id).and_then(from_address));
    let eip = match recorded.or_else(|| {
        step.survey
            .tagged_addresses(&tags)
            .into_iter()
            .find_map(from_address)
    }) {
        Some(eip) => eip,
        None => {
            let (allocation_id, ip) =
                label("eip_alloc", step.aws.ec2.allocate_address(&tags)).await?;
            ElasticIp {
                allocation_id,
                public_ip: ip.parse().map_err(|_| {
                    Error::Runtime(format!("{}: AllocateAddress returned {ip:?}", step.side()))
                })?,
                association_id: None,
            }
        }
    };
    step.record(|s| s.eip = Some(eip.clone()))?;
    Ok(eip)
}

/// The Elastic IP is on the tunnel host's network interface (the survey shows an association made earlier).
pub async fn ensure_associated(step: &Step<'_>, eni_id: &str) -> Result<()> {
    let Some(eip) = step.side_state(|s| s.eip.clone()) else {
        return Err(Error::Runtime(format!(
            "{}: no Elastic IP in the state to associate",
            step.side()
        )));
    };
    let association_id = match step.survey.address(&eip.allocation_id) {
        Some(a) if a.network_interface_id() == Some(eni_id) => {
            a.association_id().map(str::to_string)
        }
        _ => Some(
            label(
                "eip_assoc",
                retry_not_found(|| step.aws.ec2.associate_address(&eip.allocation_id, eni_id)),
            )
            .await?,
        ),
    };
    step.record(|s| {
        s.eip
            .as_mut()
            .into_iter()
            .for_each(|e| e.association_id = association_id.clone())
    })?;
    Ok(())
}
