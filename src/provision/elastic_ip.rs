//! The tunnel host's Elastic IP: allocated early (the peer's security group needs it), associated once the host runs.

use super::Step;
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

/// The side's Elastic IP exists: from the state, else found by tag, else allocated.
pub async fn ensure_allocated(step: &Step<'_>) -> Result<ElasticIp> {
    let tags = LinkTags::new(step.link(), step.side(), ROLE_TUNNEL);
    if let Some(recorded) = step.side_state(|s| s.eip.clone()) {
        if let Some(eip) = step
            .aws
            .ec2
            .describe_address(&recorded.allocation_id)
            .await?
            .as_ref()
            .and_then(from_address)
        {
            step.record(|s| s.eip = Some(eip.clone()))?;
            return Ok(eip);
        }
    }
    let tagged = step.aws.ec2.describe_addresses(tags.filters()).await?;
    let eip = match tagged.iter().find_map(from_address) {
        Some(eip) => eip,
        None => {
            let (allocation_id, ip) = step.aws.ec2.allocate_address(&tags).await?;
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

/// The Elastic IP is on the tunnel host's network interface.
pub async fn ensure_associated(step: &Step<'_>, eni_id: &str) -> Result<()> {
    let Some(eip) = step.side_state(|s| s.eip.clone()) else {
        return Err(Error::Runtime(format!(
            "{}: no Elastic IP in the state to associate",
            step.side()
        )));
    };
    if let Some(a) = step.aws.ec2.describe_address(&eip.allocation_id).await? {
        if a.network_interface_id() == Some(eni_id) {
            let association_id = a.association_id().map(str::to_string);
            step.record(|s| {
                s.eip
                    .as_mut()
                    .into_iter()
                    .for_each(|e| e.association_id = association_id.clone())
            })?;
            return Ok(());
        }
    }
    let association_id =
        retry_not_found(|| step.aws.ec2.associate_address(&eip.allocation_id, eni_id)).await?;
    step.record(|s| {
        s.eip
            .as_mut()
            .into_iter()
            .for_each(|e| e.association_id = Some(association_id.clone()))
    })?;
    Ok(())
}
