//! What a mapped range must stay clear of, with enough of a label to tell the user why.

use super::{overlaps, PlanRequest, RESERVED};
use crate::side::Side;
use ipnet::Ipv4Net;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Occupant {
    VpcCidr { side: Side },
    Route { side: Side },
    Reserved { what: &'static str },
    Mapped { side: Side, real: Ipv4Net },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occupied {
    pub range: Ipv4Net,
    #[serde(flatten)]
    pub by: Occupant,
}

impl Occupied {
    pub fn new(range: Ipv4Net, by: Occupant) -> Self {
        Occupied { range, by }
    }

    /// [start, end) as integers, end exclusive so a /0 fits.
    pub fn span(&self) -> (u64, u64) {
        let s = u64::from(u32::from(self.range.network()));
        (s, s + (1u64 << (32 - u32::from(self.range.prefix_len()))))
    }
}

impl fmt::Display for Occupied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.by {
            Occupant::VpcCidr { side } => write!(f, "{} ({side} VPC CIDR)", self.range),
            Occupant::Route { side } => write!(f, "{} ({side} route destination)", self.range),
            Occupant::Reserved { what } => write!(f, "{} (reserved: {what})", self.range),
            Occupant::Mapped { side, real } => {
                write!(f, "{} (mapped range for {side} {real})", self.range)
            }
        }
    }
}

/// Everything already in use before any mapped range is chosen.
pub(super) fn in_use(req: &PlanRequest) -> Vec<Occupied> {
    let mut v = Vec::new();
    for side in Side::BOTH {
        let vpc = req.vpcs.get(side);
        for &c in &vpc.cidrs {
            v.push(Occupied::new(c.trunc(), Occupant::VpcCidr { side }));
        }
        for &r in &vpc.route_destinations {
            // The default route covers everything and is no collision; routes this link owns are ours to reuse.
            if r.prefix_len() == 0 || req.owned_routes.contains(&r) {
                continue;
            }
            v.push(Occupied::new(r.trunc(), Occupant::Route { side }));
        }
    }
    for (r, what) in RESERVED {
        v.push(Occupied::new(r, Occupant::Reserved { what }));
    }
    v.sort_by_key(|o| (o.span(), o.range.prefix_len()));
    v.dedup_by(|a, b| a.range == b.range && a.by == b.by);
    v
}

pub(super) fn colliding(taken: &[Occupied], range: Ipv4Net) -> Vec<Occupied> {
    taken
        .iter()
        .filter(|o| overlaps(o.range, range))
        .cloned()
        .collect()
}
