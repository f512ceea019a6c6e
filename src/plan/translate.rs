//! Real <-> mapped translation of single addresses, for `vpclink map` and for tests.

use super::{AddressPlan, Mapping};
use crate::side::Side;
use serde::Serialize;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "direction", rename_all = "snake_case")]
pub enum Translation {
    /// `address` is a real address on `side`; the other side reaches it at `mapped`.
    RealToMapped {
        side: Side,
        real: Ipv4Addr,
        mapped: Ipv4Addr,
        mapping: Mapping,
    },
    /// `address` is a mapped address; it stands for `real` on `side`.
    MappedToReal {
        side: Side,
        mapped: Ipv4Addr,
        real: Ipv4Addr,
        mapping: Mapping,
    },
}

/// Every reading of `addr`: overlapping VPCs make a real address ambiguous, so both sides are answered.
/// An empty result means the address is outside every real and mapped range of the link.
pub fn translate(plan: &AddressPlan, addr: Ipv4Addr) -> Vec<Translation> {
    let mut out = Vec::new();
    for side in Side::BOTH {
        for m in plan.get(side) {
            if m.real.contains(&addr) {
                out.push(Translation::RealToMapped {
                    side,
                    real: addr,
                    mapped: shift(addr, m.real.network(), m.mapped.network()),
                    mapping: *m,
                });
            }
        }
    }
    for side in Side::BOTH {
        for m in plan.get(side) {
            if m.mapped.contains(&addr) {
                out.push(Translation::MappedToReal {
                    side,
                    mapped: addr,
                    real: shift(addr, m.mapped.network(), m.real.network()),
                    mapping: *m,
                });
            }
        }
    }
    out
}

fn shift(addr: Ipv4Addr, from: Ipv4Addr, to: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(to) + (u32::from(addr) - u32::from(from)))
}
