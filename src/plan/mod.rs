//! Address planning: pick, for every CIDR of each VPC, a mapped range of the same size at which the other side
//! reaches it. Pure: no I/O, no clock, deterministic for a given input.
//!
//! Blocks are power-of-two aligned, so placing the largest blocks first, each at the lowest free address, finds a
//! fit whenever one exists (every free aligned block of a size offers the same room to smaller ones); the
//! brute-force oracle in the tests checks that claim.

mod occupied;
mod translate;

pub use occupied::{Occupant, Occupied};
pub use translate::{translate, Translation};

use crate::side::{PerSide, Side};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Where mapped ranges are taken from, in order of preference: unused RFC 1918 space, then shared address space.
pub const DEFAULT_POOLS: [Ipv4Net; 4] = [
    net(10, 0, 0, 0, 8),
    net(172, 16, 0, 0, 12),
    net(192, 168, 0, 0, 16),
    net(100, 64, 0, 0, 10),
];

/// Never usable as a mapped range, whatever the VPCs hold.
pub const RESERVED: [(Ipv4Net, &str); 4] = [
    (net(0, 0, 0, 0, 8), "this-network 0.0.0.0/8"),
    (net(127, 0, 0, 0, 8), "loopback 127.0.0.0/8"),
    (net(169, 254, 0, 0, 16), "link-local 169.254.0.0/16"),
    (net(224, 0, 0, 0, 3), "multicast and class E 224.0.0.0/3"),
];

const fn net(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len) {
        Ok(n) => n,
        Err(_) => panic!("bad constant prefix"),
    }
}

/// What one VPC already uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcAddresses {
    /// Primary and secondary IPv4 CIDR associations.
    pub cidrs: Vec<Ipv4Net>,
    /// Every IPv4 route destination in every route table of the VPC.
    pub route_destinations: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanRequest {
    pub vpcs: PerSide<VpcAddresses>,
    /// User-chosen mapped ranges, one per CIDR in the order of `cidrs`; empty means "choose for me".
    pub overrides: PerSide<Vec<Ipv4Net>>,
    /// Route destinations that belong to this link already (a re-run): they do not count as collisions.
    pub owned_routes: Vec<Ipv4Net>,
}

/// One real CIDR and the range at which the other side reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub real: Ipv4Net,
    pub mapped: Ipv4Net,
}

pub type AddressPlan = PerSide<Vec<Mapping>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the {side} VPC has no IPv4 CIDR")]
    NoCidrs { side: Side },
    #[error(
        "no free /{len} left for {side} {real} in {pools}; occupied: {}. Free space or pass --{side}-map with a range you know is unused",
        list(.occupied)
    )]
    NoFit {
        side: Side,
        real: Ipv4Net,
        len: u8,
        pools: String,
        occupied: Vec<Occupied>,
    },
    #[error("--{side}-map was given {given} time(s) but the {side} VPC has {expected} CIDR(s) ({cidrs}); give one per CIDR, in that order")]
    OverrideCount {
        side: Side,
        given: usize,
        expected: usize,
        cidrs: String,
    },
    #[error("--{side}-map {mapped} must be a /{len} like {real} it maps, written as its network address ({expected})")]
    OverrideShape {
        side: Side,
        real: Ipv4Net,
        mapped: Ipv4Net,
        len: u8,
        expected: Ipv4Net,
    },
    #[error("--{side}-map {mapped} collides with {}; pick a range that overlaps none of them", list(.with))]
    OverrideCollides {
        side: Side,
        mapped: Ipv4Net,
        with: Vec<Occupied>,
    },
}

fn list(items: &[Occupied]) -> String {
    const SHOWN: usize = 12;
    let mut s: Vec<String> = items.iter().take(SHOWN).map(|o| o.to_string()).collect();
    if items.len() > SHOWN {
        s.push(format!("and {} more", items.len() - SHOWN));
    }
    s.join(", ")
}

/// Plan with the default pools.
pub fn plan(req: &PlanRequest) -> Result<AddressPlan, PlanError> {
    plan_in(req, &DEFAULT_POOLS)
}

/// Plan, taking mapped ranges only from `pools` (tests use tiny pools so that an oracle can enumerate them).
pub fn plan_in(req: &PlanRequest, pools: &[Ipv4Net]) -> Result<AddressPlan, PlanError> {
    for side in Side::BOTH {
        if req.vpcs.get(side).cidrs.is_empty() {
            return Err(PlanError::NoCidrs { side });
        }
    }
    let mut taken = occupied::in_use(req);
    let mut out: PerSide<Vec<Option<Ipv4Net>>> = req.vpcs.map(|_, v| vec![None; v.cidrs.len()]);

    // User overrides are fixed points; check them before choosing anything.
    for side in Side::BOTH {
        let cidrs = &req.vpcs.get(side).cidrs;
        let overrides = req.overrides.get(side);
        if overrides.is_empty() {
            continue;
        }
        if overrides.len() != cidrs.len() {
            return Err(PlanError::OverrideCount {
                side,
                given: overrides.len(),
                expected: cidrs.len(),
                cidrs: join(cidrs),
            });
        }
        for (i, (&real, &mapped)) in cidrs.iter().zip(overrides).enumerate() {
            if mapped.prefix_len() != real.prefix_len() || mapped.trunc() != mapped {
                return Err(PlanError::OverrideShape {
                    side,
                    real,
                    mapped,
                    len: real.prefix_len(),
                    expected: Ipv4Net::new(mapped.network(), real.prefix_len())
                        .map(|n| n.trunc())
                        .unwrap_or(mapped),
                });
            }
            let with = occupied::colliding(&taken, mapped);
            if !with.is_empty() {
                return Err(PlanError::OverrideCollides { side, mapped, with });
            }
            taken.push(Occupied::new(mapped, Occupant::Mapped { side, real }));
            out.get_mut(side)[i] = Some(mapped);
        }
    }

    // Largest blocks first; ties broken by side then address so the result never depends on input order.
    let mut todo: Vec<(Side, usize, Ipv4Net)> = Vec::new();
    for side in Side::BOTH {
        for (i, &real) in req.vpcs.get(side).cidrs.iter().enumerate() {
            if out.get(side)[i].is_none() {
                todo.push((side, i, real));
            }
        }
    }
    todo.sort_by_key(|&(side, i, real)| (real.prefix_len(), side, real, i));

    for (side, i, real) in todo {
        let len = real.prefix_len();
        let mapped = first_fit(&taken, pools, len).ok_or_else(|| PlanError::NoFit {
            side,
            real,
            len,
            pools: join(pools),
            occupied: pools
                .iter()
                .flat_map(|p| occupied::colliding(&taken, *p))
                .collect(),
        })?;
        taken.push(Occupied::new(mapped, Occupant::Mapped { side, real }));
        out.get_mut(side)[i] = Some(mapped);
    }

    Ok(PerSide::new(
        zip_mappings(&req.vpcs.east.cidrs, &out.east),
        zip_mappings(&req.vpcs.west.cidrs, &out.west),
    ))
}

fn zip_mappings(cidrs: &[Ipv4Net], mapped: &[Option<Ipv4Net>]) -> Vec<Mapping> {
    cidrs
        .iter()
        .zip(mapped)
        .map(|(&real, m)| Mapping {
            real,
            mapped: m.expect("every CIDR was assigned or an error returned"),
        })
        .collect()
}

fn join(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lowest aligned /len inside the pools (in pool order) that overlaps nothing taken.
fn first_fit(taken: &[Occupied], pools: &[Ipv4Net], len: u8) -> Option<Ipv4Net> {
    let size = 1u64 << (32 - u32::from(len));
    for pool in pools {
        if pool.prefix_len() > len {
            continue;
        }
        let start = u64::from(u32::from(pool.network()));
        let end = start + (1u64 << (32 - u32::from(pool.prefix_len()))); // exclusive
        let mut cand = start;
        while cand + size <= end {
            let lo = cand;
            let hi = cand + size; // exclusive
                                  // Jump past everything in the way rather than stepping one block at a time.
            let blocking_end = taken
                .iter()
                .map(|o| o.span())
                .filter(|&(s, e)| s < hi && lo < e)
                .map(|(_, e)| e)
                .max();
            match blocking_end {
                None => {
                    let addr = Ipv4Addr::from(cand as u32);
                    return Some(Ipv4Net::new(addr, len).expect("len <= 32"));
                }
                Some(e) => cand = e.div_ceil(size) * size,
            }
        }
    }
    None
}

/// Is this pair of VPC address sets overlapping at all? Without overlap no mapping is needed.
pub fn vpcs_overlap(vpcs: &PerSide<VpcAddresses>) -> bool {
    vpcs.east
        .cidrs
        .iter()
        .any(|e| vpcs.west.cidrs.iter().any(|w| overlaps(*e, *w)))
}

pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests;
