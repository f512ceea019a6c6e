//! The link as planned: which VPC on each side, its addresses, and the mapped ranges. This is what `plan --json`
//! prints and what the state file carries; every later step reads it, none re-derives it.

use crate::plan::{AddressPlan, Mapping};
use crate::side::{PerSide, Side};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub const DEFAULT_NAME: &str = "vpclink";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPlan {
    pub name: String,
    /// False when the two VPCs share no addresses: mapping is then optional, and only done on request.
    pub overlapping: bool,
    pub east: SidePlan,
    pub west: SidePlan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidePlan {
    pub profile: String,
    pub region: String,
    pub account: String,
    pub vpc_id: String,
    /// This VPC's IPv4 CIDRs.
    pub cidrs: Vec<Ipv4Net>,
    /// Same length as `cidrs`: the range at which the OTHER side reaches each of them.
    pub mapped: Vec<Ipv4Net>,
    /// Every route table of the VPC; each gets a route for the remote side's mapped ranges.
    pub route_tables: Vec<String>,
    /// The public subnet (default route to an internet gateway) chosen for the tunnel host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_subnet: Option<String>,
    /// Route tables of the VPC that get no route, and why (gateway route tables: see discover::GatewayTable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_tables: Vec<crate::discover::GatewayTable>,
}

impl LinkPlan {
    pub fn side(&self, side: Side) -> &SidePlan {
        match side {
            Side::East => &self.east,
            Side::West => &self.west,
        }
    }

    pub fn side_mut(&mut self, side: Side) -> &mut SidePlan {
        match side {
            Side::East => &mut self.east,
            Side::West => &mut self.west,
        }
    }

    pub fn mappings(&self) -> AddressPlan {
        PerSide::new(self.east.mappings(), self.west.mappings())
    }
}

impl SidePlan {
    pub fn mappings(&self) -> Vec<Mapping> {
        self.cidrs
            .iter()
            .zip(&self.mapped)
            .map(|(&real, &mapped)| Mapping { real, mapped })
            .collect()
    }
}
