//! Real <-> mapped translation of single addresses, for `vpclink map` and for tests.

use super::{AddressPlan, Mapping};
use crate::side::Side;
use ipnet::Ipv4Net;
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
                    mapped: shift(addr, m.real, m.mapped),
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
                    real: shift(addr, m.mapped, m.real),
                    mapping: *m,
                });
            }
        }
    }
    out
}

/// `addr`'s offset in `from`, placed at the same offset in `to`. Total for any input: the offset is kept to `to`'s
/// host bits, so ranges of different sizes (a hand-edited state; `state::load` refuses those) give an address inside
/// `to` instead of an overflow.
fn shift(addr: Ipv4Addr, from: Ipv4Net, to: Ipv4Net) -> Ipv4Addr {
    let offset = u32::from(addr).wrapping_sub(u32::from(from.network()));
    Ipv4Addr::from(u32::from(to.network()) | (offset & u32::from(to.hostmask())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::side::PerSide;
    use proptest::prelude::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn a_mapping_with_a_longer_mapped_prefix_does_not_panic() {
        // A hand-edited state: the mapped range is smaller than the real one and sits at the top of the space.
        let m = Mapping {
            real: net("10.0.0.0/8"),
            mapped: net("255.255.255.0/24"),
        };
        let plan = PerSide::new(vec![m], Vec::new());
        let t = translate(&plan, "10.255.1.2".parse().unwrap());
        assert_eq!(t.len(), 1);
        // The other direction, with the real range the smaller one.
        let m = Mapping {
            real: net("255.255.255.0/24"),
            mapped: net("0.0.0.0/0"),
        };
        let plan = PerSide::new(Vec::new(), vec![m]);
        assert_eq!(translate(&plan, "1.2.3.4".parse().unwrap()).len(), 1);
    }

    #[test]
    fn shift_keeps_the_offset_within_equal_sized_ranges() {
        assert_eq!(
            shift(
                "10.0.1.20".parse().unwrap(),
                net("10.0.0.0/16"),
                net("10.2.0.0/16")
            ),
            "10.2.1.20".parse::<Ipv4Addr>().unwrap()
        );
    }

    proptest! {
        /// shift and translate are total: no input panics, and a result always lies in the target range.
        #[test]
        fn translate_never_panics(
            a in any::<u32>(), al in 0u8..=32, b in any::<u32>(), bl in 0u8..=32, addr in any::<u32>()
        ) {
            let real = Ipv4Net::new(Ipv4Addr::from(a), al).unwrap();
            let mapped = Ipv4Net::new(Ipv4Addr::from(b), bl).unwrap();
            let m = Mapping { real, mapped };
            let plan = PerSide::new(vec![m], vec![m]);
            for t in translate(&plan, Ipv4Addr::from(addr)) {
                match t {
                    Translation::RealToMapped { mapped: out, .. } => prop_assert!(mapped.contains(&out)),
                    Translation::MappedToReal { real: out, .. } => prop_assert!(real.contains(&out)),
                }
            }
        }
    }
}
