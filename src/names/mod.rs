//! Names (issue 13): each side gets a Route 53 private zone, in its own account and associated with its own VPC,
//! holding an A record for every network interface of the OTHER VPC at the address this side reaches it at (mapped).
//! The zone for the west VPC's hosts, made in the east account, is `west.NAME.vpclink.internal`, and the other way
//! round.
//!
//! [`label`], [`records`] and [`diff`] are pure; [`sync`] reads both VPCs and the zones, and applies the changes;
//! [`teardown`] finds and deletes the zones for `down`.

pub mod diff;
pub mod label;
pub mod records;
pub mod sync;
pub mod teardown;

use crate::side::Side;
use serde::{Deserialize, Serialize};

/// Under a name no one owns on the internet: the zone is private, answered only inside its VPC.
pub const DOMAIN: &str = "vpclink.internal";

/// The tag `vpclink:role` of a names zone.
pub const ROLE_NAMES: &str = "names";

/// What the state records about one side's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneState {
    /// `west.NAME.vpclink.internal` in the east side's state: the names of the other side's hosts.
    pub zone_name: String,
    /// Chosen and saved before CreateHostedZone and kept for the zone's life, so that a run retried after a crash
    /// presents the same one (Route 53 then answers HostedZoneAlreadyExists instead of making a second zone) and can
    /// find the zone it made by it. A new link of the same name draws a new one.
    pub caller_reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
}

/// Whether `up` makes names: `--dns` and `--no-dns` say so (the last given wins); with neither, the link keeps the
/// choice its state remembers (a link made with `--no-dns` stays without), else names are made.
pub fn wanted(dns: bool, no_dns: bool, state: &crate::state::LinkState) -> bool {
    match (dns, no_dns) {
        (true, _) => true,
        (_, true) => false,
        _ => !Side::BOTH.iter().any(|s| state.side(*s).no_names),
    }
}

/// The zone on `side`, which holds the names of the other side's hosts. Lower case: Route 53 answers names in lower
/// case, and a link may be called `Prod` (names compare case-insensitively, RFC 4343; the diff compares what Route 53
/// returns with what vpclink wants, so both must be spelled alike).
pub fn zone_name(link: &str, side: Side) -> String {
    format!("{}.{}.{DOMAIN}", side.peer(), link.to_ascii_lowercase())
}

/// Every CallerReference vpclink uses for the zone on `side` starts so: how `down` recognises a zone made by an
/// attempt that crashed before it could tag it or record its id.
pub fn caller_reference_prefix(link: &str, side: Side) -> String {
    format!("vpclink:{link}:{side}:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_name_in_capitals_gives_a_lower_case_zone() {
        assert_eq!(
            zone_name("Prod-1", Side::East),
            "west.prod-1.vpclink.internal"
        );
        assert_eq!(
            zone_name("prod-1", Side::West),
            "east.prod-1.vpclink.internal"
        );
    }

    #[test]
    fn each_side_names_the_other() {
        assert_eq!(zone_name("l", Side::East), "west.l.vpclink.internal");
        assert_eq!(zone_name("l", Side::West), "east.l.vpclink.internal");
        assert!(!caller_reference_prefix("a", Side::East)
            .starts_with(&caller_reference_prefix("a-b", Side::East)));
    }
}
