//! The tunnel host's Elastic IP: allocated early (the peer's security group needs it), associated once the host runs.

use super::Step;
use crate::aws::call_log::step as label;
use crate::aws::ec2::{retry_not_found, Id, Made};
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
    let recorded = match step.side_state(|s| s.eip.clone()) {
        Some(r) => match step.survey.address(&r.allocation_id).and_then(from_address) {
            Some(a) => Some(a),
            // Recorded, yet not listed: allocated a moment ago by a run that died (reads lag; eventual
            // consistency), or released by hand. Read it by id for a while before allocating another.
            None => match Id::from_state(&r.allocation_id).real() {
                Some(id) => recorded_address(step, id).await?,
                None => None,
            },
        },
        None => None,
    };
    let found = recorded.or_else(|| {
        step.survey
            .tagged_addresses(&tags)
            .into_iter()
            .find_map(from_address)
    });
    let found = match found {
        Some(eip) => Some(eip),
        // An earlier run was allocating when it stopped: its address may exist without being listed yet.
        None if step.side_state(|s| s.eip_allocating) => allocated_earlier(step, &tags).await?,
        None => None,
    };
    let eip = match found {
        Some(eip) => eip,
        None => {
            step.record(|s| s.eip_allocating = true)?;
            match label("eip_alloc", step.aws.ec2.allocate_address(&tags)).await? {
                Made::Real((allocation_id, ip)) => ElasticIp {
                    allocation_id,
                    public_ip: ip.parse().map_err(|_| {
                        Error::Runtime(format!("{}: AllocateAddress returned {ip:?}", step.side()))
                    })?,
                    association_id: None,
                },
                // Planned by --dry-run: no address yet (the peer's rules show it as `<peer Elastic IP>`).
                Made::Planned(allocation_id) => ElasticIp {
                    allocation_id,
                    public_ip: std::net::Ipv4Addr::UNSPECIFIED,
                    association_id: None,
                },
            }
        }
    };
    step.record(|s| {
        s.eip = Some(eip.clone());
        s.eip_allocating = false;
    })?;
    Ok(eip)
}

/// How long a run looks for the address an interrupted run may have allocated before allocating another.
const EARLIER_ALLOCATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The address an interrupted run allocated, once listed by tag; None if none shows within the wait.
async fn allocated_earlier(step: &Step<'_>, tags: &LinkTags) -> Result<Option<ElasticIp>> {
    super::until_listed(EARLIER_ALLOCATION_WAIT, || async {
        let listed = label("eip_read", step.aws.ec2.describe_addresses(tags.filters())).await?;
        Ok(listed.iter().find_map(from_address))
    })
    .await
}

/// The recorded address, read by id until listed (a few seconds at most); None when it is really gone.
async fn recorded_address(step: &Step<'_>, allocation_id: &str) -> Result<Option<ElasticIp>> {
    super::until_listed(std::time::Duration::from_secs(10), || async {
        let a = label("eip_read", step.aws.ec2.describe_address(allocation_id)).await?;
        Ok(a.as_ref().and_then(from_address))
    })
    .await
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
            .await?
            .into_string(),
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
