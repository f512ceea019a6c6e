use super::*;
use proptest::prelude::*;

fn n(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn req(east: &[&str], west: &[&str]) -> PlanRequest {
    PlanRequest {
        vpcs: PerSide::new(
            VpcAddresses {
                cidrs: east.iter().map(|s| n(s)).collect(),
                route_destinations: vec![],
            },
            VpcAddresses {
                cidrs: west.iter().map(|s| n(s)).collect(),
                route_destinations: vec![],
            },
        ),
        ..Default::default()
    }
}

#[test]
fn identical_vpcs_get_distinct_ranges() {
    let p = plan(&req(&["10.0.0.0/16"], &["10.0.0.0/16"])).unwrap();
    assert_eq!(p.east[0].mapped, n("10.1.0.0/16"));
    assert_eq!(p.west[0].mapped, n("10.2.0.0/16"));
}

#[test]
fn routes_are_avoided_but_not_the_default_route_or_our_own() {
    let mut r = req(&["10.0.0.0/16"], &["10.0.0.0/16"]);
    r.vpcs.east.route_destinations = vec![n("0.0.0.0/0"), n("10.1.0.0/16"), n("10.2.5.0/24")];
    let p = plan(&r).unwrap();
    assert_eq!(p.east[0].mapped, n("10.3.0.0/16"));
    assert_eq!(p.west[0].mapped, n("10.4.0.0/16"));
    r.owned_routes = vec![n("10.1.0.0/16")];
    let p = plan(&r).unwrap();
    assert_eq!(p.east[0].mapped, n("10.1.0.0/16"));
}

#[test]
fn a_route_covering_ten_slash_eight_moves_to_172_16() {
    // A transit-gateway route for all of 10/8 makes every 10.x range unusable.
    let mut r = req(&["10.0.0.0/16"], &["10.0.0.0/16"]);
    r.vpcs.west.route_destinations = vec![n("10.0.0.0/8")];
    let p = plan(&r).unwrap();
    assert_eq!(p.east[0].mapped, n("172.16.0.0/16"));
    assert_eq!(p.west[0].mapped, n("172.17.0.0/16"));
}

#[test]
fn a_slash_eight_has_no_room() {
    // A /8 fits in none of the pools once 10/8 itself is taken.
    let err = plan(&req(&["10.0.0.0/8"], &["10.0.0.0/16"])).unwrap_err();
    assert!(matches!(err, PlanError::NoFit { len: 8, .. }), "{err}");
    assert!(
        err.to_string().contains("10.0.0.0/8 (east VPC CIDR)"),
        "{err}"
    );
}

#[test]
fn secondary_cidrs_each_get_a_range_in_input_order() {
    let p = plan(&req(&["10.0.0.0/16", "10.5.0.0/24"], &["10.0.0.0/16"])).unwrap();
    assert_eq!(p.east.len(), 2);
    assert_eq!(p.east[0].real, n("10.0.0.0/16"));
    assert_eq!(p.east[1].real, n("10.5.0.0/24"));
    assert_eq!(p.east[1].mapped.prefix_len(), 24);
}

#[test]
fn overrides_are_checked() {
    let mut r = req(&["10.0.0.0/16"], &["10.0.0.0/16"]);
    r.overrides.east = vec![n("172.20.0.0/16")];
    let p = plan(&r).unwrap();
    assert_eq!(p.east[0].mapped, n("172.20.0.0/16"));
    assert_eq!(p.west[0].mapped, n("10.1.0.0/16"));

    r.overrides.east = vec![n("172.20.0.0/16"), n("172.21.0.0/16")];
    assert!(matches!(
        plan(&r),
        Err(PlanError::OverrideCount {
            given: 2,
            expected: 1,
            ..
        })
    ));

    r.overrides.east = vec![n("172.20.0.0/24")];
    assert!(matches!(plan(&r), Err(PlanError::OverrideShape { .. })));

    r.overrides.east = vec![n("10.0.0.0/16")];
    let e = plan(&r).unwrap_err();
    assert!(matches!(e, PlanError::OverrideCollides { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("east VPC CIDR") && msg.contains("west VPC CIDR"),
        "{msg}"
    );

    r.overrides.east = vec![n("127.0.0.0/16")];
    assert!(plan(&r).unwrap_err().to_string().contains("loopback"));

    r.overrides.east = vec![n("10.9.0.0/16")];
    r.overrides.west = vec![n("10.9.0.0/16")];
    assert!(plan(&r)
        .unwrap_err()
        .to_string()
        .contains("mapped range for east"));
}

#[test]
fn empty_vpc_is_an_error() {
    assert_eq!(
        plan(&req(&[], &["10.0.0.0/16"])),
        Err(PlanError::NoCidrs { side: Side::East })
    );
}

#[test]
fn translation_goes_both_ways_and_names_ambiguity() {
    let p = plan(&req(&["10.0.0.0/16"], &["10.0.0.0/16"])).unwrap();
    let t = translate(&p, "10.0.1.20".parse().unwrap());
    assert_eq!(t.len(), 2, "a real address exists on both sides");
    assert!(t.contains(&Translation::RealToMapped {
        side: Side::East,
        real: "10.0.1.20".parse().unwrap(),
        mapped: "10.1.1.20".parse().unwrap(),
        mapping: p.east[0],
    }));
    let back = translate(&p, "10.2.1.20".parse().unwrap());
    assert_eq!(
        back,
        vec![Translation::MappedToReal {
            side: Side::West,
            mapped: "10.2.1.20".parse().unwrap(),
            real: "10.0.1.20".parse().unwrap(),
            mapping: p.west[0],
        }]
    );
    assert!(translate(&p, "192.0.2.1".parse().unwrap()).is_empty());
}

// ---- properties over random VPCs ----

fn arb_net(min_len: u8, max_len: u8) -> impl Strategy<Value = Ipv4Net> {
    let bases = prop_oneof![
        Just(u32::from(Ipv4Addr::new(10, 0, 0, 0))),
        Just(u32::from(Ipv4Addr::new(172, 16, 0, 0))),
        Just(u32::from(Ipv4Addr::new(192, 168, 0, 0))),
        Just(u32::from(Ipv4Addr::new(100, 64, 0, 0))),
        any::<u32>(),
    ];
    (bases, any::<u32>(), min_len..=max_len).prop_map(|(b, off, len)| {
        let a = Ipv4Addr::from(b.wrapping_add(off & 0x00ff_ffff));
        Ipv4Net::new(a, len).unwrap().trunc()
    })
}

fn arb_vpc() -> impl Strategy<Value = VpcAddresses> {
    (
        prop::collection::vec(arb_net(16, 28), 1..4),
        prop::collection::vec(arb_net(0, 32), 0..12),
    )
        .prop_map(|(cidrs, route_destinations)| VpcAddresses {
            cidrs,
            route_destinations,
        })
}

/// What a mapped range must never overlap, written out here rather than read from the planner (whose constant and
/// `occupied::in_use` are the code under test): the README's list of reserved ranges, literally.
const RESERVED_IN_TEST: [&str; 4] = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"];

/// The blocked set, built by the test from the request: every VPC CIDR of both sides, every route destination
/// except the default route and the routes this link owns, and the reserved ranges above.
fn blocked(r: &PlanRequest) -> Vec<Ipv4Net> {
    let mut v = Vec::new();
    for vpc in [&r.vpcs.east, &r.vpcs.west] {
        v.extend(vpc.cidrs.iter().map(|c| c.trunc()));
        v.extend(
            vpc.route_destinations
                .iter()
                .filter(|d| d.prefix_len() != 0 && !r.owned_routes.contains(d))
                .map(|d| d.trunc()),
        );
    }
    v.extend(RESERVED_IN_TEST.iter().map(|s| n(s)));
    v
}

/// [start, end) of a range as integers (end exclusive, so that a /0 fits), computed here.
fn span(net: Ipv4Net) -> (u64, u64) {
    let start = u64::from(u32::from(net.network()));
    (start, start + (1u64 << (32 - u32::from(net.prefix_len()))))
}

fn check_invariants(r: &PlanRequest, p: &AddressPlan, pools: &[Ipv4Net]) {
    let taken = blocked(r);
    let mut all: Vec<Ipv4Net> = Vec::new();
    for side in Side::BOTH {
        let cidrs = &r.vpcs.get(side).cidrs;
        assert_eq!(p.get(side).len(), cidrs.len());
        for (m, c) in p.get(side).iter().zip(cidrs) {
            assert_eq!(m.real, *c);
            assert_eq!(m.mapped.prefix_len(), c.prefix_len(), "same size");
            assert_eq!(m.mapped.trunc(), m.mapped, "aligned");
            assert!(
                pools.iter().any(|pool| pool.contains(&m.mapped)),
                "inside a pool"
            );
            for o in &taken {
                assert!(!overlaps(*o, m.mapped), "{} overlaps {o}", m.mapped);
            }
            all.push(m.mapped);
        }
    }
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert!(!overlaps(*a, *b), "mapped ranges {a} and {b} overlap");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_plan_keeps_every_invariant(east in arb_vpc(), west in arb_vpc()) {
        let r = PlanRequest { vpcs: PerSide::new(east, west), ..Default::default() };
        let got = plan(&r);
        if let Err(e) = &got {
            // The default pools are too large for the brute-force oracle (the small-pool property below compares
            // every "no fit" with it); here a failure must at least be a NoFit for a CIDR of the request.
            match e {
                PlanError::NoFit { side, real, len, .. } => {
                    prop_assert!(r.vpcs.get(*side).cidrs.contains(real), "{e}");
                    prop_assert_eq!(*len, real.prefix_len());
                }
                other => prop_assert!(false, "only NoFit can fail this request: {other}"),
            }
        }
        if let Ok(p) = got {
            check_invariants(&r, &p, &DEFAULT_POOLS);
            prop_assert_eq!(plan(&r).unwrap(), p.clone(), "deterministic");
            // The order CIDRs and routes are listed in does not change what each CIDR gets.
            let mut r2 = r.clone();
            r2.vpcs.east.cidrs.reverse();
            r2.vpcs.west.route_destinations.reverse();
            if let Ok(p2) = plan(&r2) {
                for m in &p.east {
                    prop_assert!(p2.east.contains(m));
                }
            } else {
                prop_assert!(false, "reordering made the plan fail");
            }
        }
    }

    #[test]
    fn no_fit_is_reported_exactly_when_none_exists(
        east in prop::collection::vec((any::<bool>(), 0u32..64, 28u8..=30), 1..3),
        west in prop::collection::vec((any::<bool>(), 0u32..64, 28u8..=30), 1..3),
        routes in prop::collection::vec((0u32..64, 26u8..=32), 0..5),
        default_route in any::<bool>(),
        owned in prop::collection::vec(any::<bool>(), 5),
        extra_pools in prop::sample::subsequence(
            vec!["127.0.0.0/27", "169.254.0.0/28", "0.0.0.0/28", "224.0.0.0/28", "198.51.100.0/28"],
            0..=5,
        ),
    ) {
        // Pools small enough to enumerate every placement: 192.0.2.0/26 (where VPC CIDRs and routes may sit too),
        // plus some that lie inside reserved ranges (never usable) and one that is free.
        let pool = n("192.0.2.0/26");
        let pools: Vec<Ipv4Net> =
            std::iter::once(pool).chain(extra_pools.iter().map(|p| n(p))).collect();
        let base = u32::from(pool.network());
        // Routes are given as written (not truncated); a VPC CIDR is either inside the pool or away in 10/8.
        let in_pool = |off: u32, len: u8| Ipv4Net::new(Ipv4Addr::from(base + off), len).unwrap();
        let vpc_net = |i: usize, inside: bool, off: u32, len: u8| {
            if inside {
                in_pool(off, len).trunc()
            } else {
                Ipv4Net::new(Ipv4Addr::new(10, i as u8, 0, 0), len).unwrap().trunc()
            }
        };
        let route_dests: Vec<Ipv4Net> = routes
            .iter()
            .map(|&(o, l)| in_pool(o, l))
            .chain(default_route.then(|| n("0.0.0.0/0")))
            .collect();
        let owned_routes: Vec<Ipv4Net> = route_dests
            .iter()
            .zip(&owned)
            .filter(|(_, &o)| o)
            .map(|(d, _)| *d)
            .collect();
        let r = PlanRequest {
            vpcs: PerSide::new(
                VpcAddresses {
                    cidrs: east.iter().enumerate().map(|(i, &(ins, o, l))| vpc_net(i, ins, o, l)).collect(),
                    route_destinations: route_dests,
                },
                VpcAddresses {
                    cidrs: west.iter().enumerate().map(|(i, &(ins, o, l))| vpc_net(100 + i, ins, o, l)).collect(),
                    route_destinations: vec![],
                },
            ),
            owned_routes,
            ..Default::default()
        };
        let got = plan_in(&r, &pools);
        let sizes: Vec<u8> = east.iter().chain(&west).map(|&(_, _, l)| l).collect();
        let blocked_spans: Vec<(u64, u64)> = blocked(&r).into_iter().map(span).collect();
        let pool_spans: Vec<(u64, u64)> = pools.iter().map(|p| span(*p)).collect();
        let exists = oracle(&pool_spans, &sizes, &blocked_spans);
        prop_assert_eq!(got.is_ok(), exists, "planner {:?} vs oracle {}", got, exists);
        match got {
            Ok(p) => check_invariants(&r, &p, &pools),
            Err(PlanError::NoFit { len, .. }) => prop_assert!(sizes.contains(&len)),
            Err(e) => prop_assert!(false, "only NoFit can fail this request: {e}"),
        }
    }
}

/// Brute force: can blocks of these prefix lengths be placed, aligned, disjoint and each inside one pool, avoiding
/// `blocked`? Tries every placement in every pool.
fn oracle(pools: &[(u64, u64)], lens: &[u8], blocked: &[(u64, u64)]) -> bool {
    fn go(i: usize, pools: &[(u64, u64)], lens: &[u8], used: &mut Vec<(u64, u64)>) -> bool {
        if i == lens.len() {
            return true;
        }
        let bs = 1u64 << (32 - u32::from(lens[i]));
        for &(start, end) in pools {
            let mut s = start.div_ceil(bs) * bs;
            while s + bs <= end {
                let e = s + bs;
                if used.iter().all(|&(a, b)| e <= a || b <= s) {
                    used.push((s, e));
                    if go(i + 1, pools, lens, used) {
                        return true;
                    }
                    used.pop();
                }
                s += bs;
            }
        }
        false
    }
    let mut used = blocked.to_vec();
    go(0, pools, lens, &mut used)
}

#[test]
fn the_oracle_itself_finds_and_refuses() {
    let pool = [span(n("192.0.2.0/26"))];
    // Two /27s fill the /26; a third does not fit; a blocked /28 leaves room for one /27 and two /28s.
    assert!(oracle(&pool, &[27, 27], &[]));
    assert!(!oracle(&pool, &[27, 27, 28], &[]));
    let b = [span(n("192.0.2.16/28"))];
    assert!(oracle(&pool, &[27, 28], &b));
    assert!(!oracle(&pool, &[27, 27], &b));
    // Alignment: a /27 cannot straddle 192.0.2.32 even with 32 free addresses around it.
    let straddle = [span(n("192.0.2.0/28")), span(n("192.0.2.48/28"))];
    assert!(!oracle(&pool, &[27], &straddle));
}

#[test]
fn reserved_ranges_are_never_chosen_nor_accepted() {
    let r = req(&["10.0.0.0/16"], &["10.0.0.0/16"]);
    for reserved in RESERVED_IN_TEST {
        let inside = Ipv4Net::new(n(reserved).network(), 24).unwrap();
        // As the only pool: nothing fits.
        let small = req(&["10.0.0.0/24"], &["10.0.1.0/24"]);
        assert!(
            matches!(plan_in(&small, &[inside]), Err(PlanError::NoFit { .. })),
            "{reserved} must not be chosen"
        );
        // As an override: refused, and named.
        let mut o = r.clone();
        o.overrides.east = vec![Ipv4Net::new(n(reserved).network(), 16).unwrap()];
        let e = plan(&o).unwrap_err();
        assert!(
            matches!(e, PlanError::OverrideCollides { .. }) && e.to_string().contains("reserved"),
            "{reserved}: {e}"
        );
    }
}
