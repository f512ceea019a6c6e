//! The records one side's zone should hold: a name for every private IPv4 address of every network interface of the
//! OTHER VPC, at the address this side reaches it at (the mapped one). Pure.
//!
//! Names, all under the zone (`west.NAME.vpclink.internal` holds the west VPC's hosts, in the east account):
//! - `ip-10-0-1-20` for every address of every interface, primary and secondary alike: EC2's own IP-based host name
//!   ("the private IPv4 address ... ip-private-ipv4-address": https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-naming.html),
//!   made from the address itself so that secondaries have one too. Addresses are unique within a VPC, so these
//!   never collide.
//! - EC2's resource-based host name (`i-0123456789abcdef0`) when the interface's private DNS name is of that form.
//! - A friendly name for the primary address: the instance's Name tag, or for an interface a managed service made,
//!   what its description says it is ([`service_name`]). Every friendly name is made twice: `NAME-<eni hex>`, which
//!   only depends on the interface itself and so never changes when other interfaces come or go, and the bare `NAME`
//!   while exactly one interface claims it (with two `web`s, neither gets `web`, and that is reported).
//!
//! Whatever cannot be made (an address outside the VPC's mapped ranges, a name taken) is listed in
//! [`Desired::not_made`] with the reason: nothing is dropped silently.

use super::label::{is_valid, label, with_suffix};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// One network interface of the other VPC, as DescribeNetworkInterfaces (and DescribeInstances for the Name tag)
/// report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub eni_id: String,
    /// Every private IPv4 address, the primary first.
    pub addresses: Vec<Ipv4Addr>,
    /// EC2's private DNS name of the primary address (`ip-10-0-1-20.ec2.internal`, `i-0abc.eu-west-1.compute.internal`).
    pub private_dns_name: Option<String>,
    /// The Name tag of the instance the interface is attached to.
    pub instance_name: Option<String>,
    /// EC2's InterfaceType (`interface`, `nat_gateway`, `vpc_endpoint`, `lambda`, ...).
    pub interface_type: Option<String>,
    pub description: String,
    pub requester_managed: bool,
}

/// A record that should exist and does not, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct NotMade {
    /// The record's name when it got that far (a fully qualified name), else empty.
    pub name: String,
    pub eni_id: String,
    pub address: Ipv4Addr,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Fully qualified name (lower case, no trailing dot) -> mapped address.
    pub records: BTreeMap<String, Ipv4Addr>,
    pub not_made: Vec<NotMade>,
}

/// `ip-10-0-1-20`: EC2's IP-based host name of an address.
pub fn ip_label(a: Ipv4Addr) -> String {
    let [a, b, c, d] = a.octets();
    format!("ip-{a}-{b}-{c}-{d}")
}

/// The stable suffix of an interface: its id's hex part (`eni-0123456789abcdef0` -> `0123456789abcdef0`), unique
/// per interface and the interface's own for its whole life.
pub fn eni_suffix(eni_id: &str) -> String {
    label(eni_id.strip_prefix("eni-").unwrap_or(eni_id), "eni")
}

/// What a managed service's interface is, from its description, as a label. The formats are the services' own:
/// the EC2 User Guide's "Requester-managed network interfaces" shows "VPC Endpoint Interface vpce-..." and the
/// InterfaceType values (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/requester-managed-eni.html); Elastic
/// Load Balancing names its interfaces "ELB app/NAME/ID", "ELB net/NAME/ID", "ELB gwy/NAME/ID" (the part of the load
/// balancer's ARN after "loadbalancer/") and "ELB NAME" for a Classic Load Balancer; RDS "RDSNetworkInterface";
/// NAT gateways "Interface for NAT Gateway nat-..."; Lambda "AWS Lambda VPC ENI-FUNCTION-UUID"; EFS "EFS mount target
/// for fs-... (fsmt-...)". Anything else gets no friendly name (its ip- names are still made).
pub fn service_name(description: &str, interface_type: Option<&str>) -> Option<String> {
    let d = description.trim();
    let word = |s: &str| s.split_whitespace().next().map(str::to_string);
    let named = if let Some(rest) = d.strip_prefix("ELB ") {
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["app", name, ..] => Some(format!("alb-{name}")),
            ["net", name, ..] => Some(format!("nlb-{name}")),
            ["gwy", name, ..] => Some(format!("gwlb-{name}")),
            [name] => Some(format!("elb-{name}")),
            _ => None,
        }
    } else if d.starts_with("RDSNetworkInterface") {
        Some("rds".to_string())
    } else if let Some(rest) = d.strip_prefix("VPC Endpoint Interface") {
        word(rest.trim_start_matches(':'))
    } else if let Some(rest) = d.strip_prefix("Interface for NAT Gateway") {
        word(rest)
    } else if let Some(rest) = d.strip_prefix("AWS Lambda VPC ENI-") {
        Some(format!("lambda-{}", strip_uuid(rest)))
    } else if let Some(rest) = d.strip_prefix("EFS mount target for") {
        word(rest)
    } else if interface_type == Some("nat_gateway") {
        Some("nat".to_string())
    } else {
        None
    };
    named
        .map(|n| label(&n, "x"))
        .filter(|l| l != "x" && !l.is_empty())
}

/// "my-fn-0a1b2c3d-1111-2222-3333-444455556666" -> "my-fn": Lambda appends a UUID to the function's name.
fn strip_uuid(s: &str) -> &str {
    const UUID: usize = 36;
    if s.len() > UUID + 1 {
        let (head, tail) = s.split_at(s.len() - UUID);
        let shape = tail.char_indices().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        });
        if shape && head.ends_with('-') {
            return &head[..head.len() - 1];
        }
    }
    s
}

/// The first label of a private DNS name, when it is EC2's resource-based form (`i-0123456789abcdef0`).
fn resource_label(private_dns_name: Option<&str>) -> Option<String> {
    let first = private_dns_name?.split('.').next()?.to_ascii_lowercase();
    (first.starts_with("i-") && is_valid(&first)).then_some(first)
}

/// The records `zone` should hold for `interfaces` (the other VPC's), each address translated by `mapped` (real ->
/// the address this side reaches it at; None: outside every mapped range).
pub fn desired(
    zone: &str,
    interfaces: &[Interface],
    mapped: impl Fn(Ipv4Addr) -> Option<Ipv4Addr>,
) -> Desired {
    let fqdn = |l: &str| format!("{l}.{zone}");
    let mut out = Desired::default();
    let claim =
        |out: &mut Desired, name: String, value: Ipv4Addr, eni: &str, real: Ipv4Addr| match out
            .records
            .get(&name)
        {
            Some(v) if *v != value => out.not_made.push(NotMade {
                name,
                eni_id: eni.to_string(),
                address: real,
                reason: format!("the name is already taken by {v}"),
            }),
            _ => {
                out.records.insert(name, value);
            }
        };
    let mut ordered: Vec<&Interface> = interfaces.iter().collect();
    ordered.sort_by(|a, b| a.eni_id.cmp(&b.eni_id));

    // Pass 1: ip- names (never collide) and resource-based names.
    let mut primaries = Vec::new();
    for i in &ordered {
        for (n, &real) in i.addresses.iter().enumerate() {
            let Some(value) = mapped(real) else {
                out.not_made.push(NotMade {
                    name: fqdn(&ip_label(real)),
                    eni_id: i.eni_id.clone(),
                    address: real,
                    reason: "the address lies in no mapped range of the link (not in the VPC's CIDRs as planned)".into(),
                });
                continue;
            };
            claim(&mut out, fqdn(&ip_label(real)), value, &i.eni_id, real);
            if n == 0 {
                if let Some(r) = resource_label(i.private_dns_name.as_deref()) {
                    claim(&mut out, fqdn(&r), value, &i.eni_id, real);
                }
                primaries.push((*i, real, value));
            }
        }
    }
    // Pass 2: friendly names, suffixed (stable), then bare where exactly one interface claims the name.
    let mut claims: BTreeMap<String, Vec<(&Interface, Ipv4Addr, Ipv4Addr)>> = BTreeMap::new();
    for &(i, real, value) in &primaries {
        let friendly = i
            .instance_name
            .as_deref()
            .map(|n| label(n, "host"))
            .or_else(|| service_name(&i.description, i.interface_type.as_deref()));
        if let Some(f) = friendly {
            claim(
                &mut out,
                fqdn(&with_suffix(&f, &eni_suffix(&i.eni_id))),
                value,
                &i.eni_id,
                real,
            );
            claims.entry(f).or_default().push((i, real, value));
        }
    }
    let taken: BTreeSet<String> = out.records.keys().cloned().collect();
    for (f, who) in claims {
        let name = fqdn(&f);
        for &(i, real, value) in &who {
            if who.len() > 1 {
                out.not_made.push(NotMade {
                    name: name.clone(),
                    eni_id: i.eni_id.clone(),
                    address: real,
                    reason: format!(
                        "{} interfaces are called '{f}'; each has its own {f}-<eni id> name",
                        who.len()
                    ),
                });
            } else if taken.contains(&name) {
                out.not_made.push(NotMade {
                    name: name.clone(),
                    eni_id: i.eni_id.clone(),
                    address: real,
                    reason: "the name is already taken by another record".into(),
                });
            } else {
                out.records.insert(name.clone(), value);
            }
        }
    }
    out.not_made.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ZONE: &str = "west.l.vpclink.internal";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// 10.0.0.0/16 -> 10.2.0.0/16.
    fn map(a: Ipv4Addr) -> Option<Ipv4Addr> {
        let [x, y, c, d] = a.octets();
        (x == 10 && y == 0).then(|| Ipv4Addr::new(10, 2, c, d))
    }

    fn eni(id: &str, addrs: &[&str], name: Option<&str>, desc: &str) -> Interface {
        Interface {
            eni_id: id.into(),
            addresses: addrs.iter().map(|a| ip(a)).collect(),
            private_dns_name: None,
            instance_name: name.map(str::to_string),
            interface_type: None,
            description: desc.into(),
            requester_managed: false,
        }
    }

    #[test]
    fn service_names_from_descriptions() {
        let s = |d: &str| service_name(d, None);
        assert_eq!(
            s("ELB app/my-alb/50dc6c495c0c9188").as_deref(),
            Some("alb-my-alb")
        );
        assert_eq!(s("ELB net/edge/0123").as_deref(), Some("nlb-edge"));
        assert_eq!(s("ELB classic-one").as_deref(), Some("elb-classic-one"));
        assert_eq!(s("RDSNetworkInterface").as_deref(), Some("rds"));
        assert_eq!(
            s("VPC Endpoint Interface vpce-089f2123488812123").as_deref(),
            Some("vpce-089f2123488812123")
        );
        assert_eq!(
            s("Interface for NAT Gateway nat-0a1b").as_deref(),
            Some("nat-0a1b")
        );
        assert_eq!(
            s("AWS Lambda VPC ENI-my_fn-0a1b2c3d-1111-2222-3333-444455556666").as_deref(),
            Some("lambda-my-fn")
        );
        assert_eq!(
            s("EFS mount target for fs-12345678 (fsmt-9)").as_deref(),
            Some("fs-12345678")
        );
        assert_eq!(s("my own interface"), None);
        assert_eq!(
            service_name("", Some("nat_gateway")).as_deref(),
            Some("nat")
        );
    }

    #[test]
    fn every_address_its_ip_name_and_friendly_names_twice() {
        let mut web = eni("eni-0aa", &["10.0.1.20", "10.0.1.21"], Some("Web 1"), "");
        web.private_dns_name = Some("i-0123456789abcdef0.eu-west-1.compute.internal".into());
        let d = desired(
            ZONE,
            &[
                web,
                eni("eni-0bb", &["10.0.2.5"], None, "RDSNetworkInterface"),
            ],
            map,
        );
        let want: BTreeMap<String, Ipv4Addr> = [
            ("ip-10-0-1-20", "10.2.1.20"),
            ("ip-10-0-1-21", "10.2.1.21"),
            ("i-0123456789abcdef0", "10.2.1.20"),
            ("web-1-0aa", "10.2.1.20"),
            ("web-1", "10.2.1.20"),
            ("ip-10-0-2-5", "10.2.2.5"),
            ("rds-0bb", "10.2.2.5"),
            ("rds", "10.2.2.5"),
        ]
        .into_iter()
        .map(|(n, a)| (format!("{n}.{ZONE}"), ip(a)))
        .collect();
        assert_eq!(d.records, want);
        assert!(d.not_made.is_empty());
    }

    #[test]
    fn collisions_and_unmappable_addresses_are_reported() {
        let d = desired(
            ZONE,
            &[
                eni("eni-0aa", &["10.0.1.1"], Some("web"), ""),
                eni("eni-0bb", &["10.0.1.2"], Some("WEB"), ""),
                eni("eni-0cc", &["192.168.0.1"], Some("other"), ""),
            ],
            map,
        );
        assert!(!d.records.contains_key(&format!("web.{ZONE}")));
        assert!(d.records.contains_key(&format!("web-0aa.{ZONE}")));
        assert!(d.records.contains_key(&format!("web-0bb.{ZONE}")));
        assert_eq!(d.not_made.len(), 3);
        assert!(d
            .not_made
            .iter()
            .any(|n| n.address == ip("192.168.0.1") && n.reason.contains("no mapped range")));
        assert_eq!(
            d.not_made
                .iter()
                .filter(|n| n.reason.contains("2 interfaces"))
                .count(),
            2
        );
    }

    fn arb_interfaces() -> impl Strategy<Value = Vec<Interface>> {
        // Distinct ENI ids and distinct addresses (as within one VPC), a few names so that they collide.
        proptest::collection::btree_map(
            0u32..5000,
            (
                proptest::collection::btree_set(0u16..400, 1..3),
                proptest::option::of(prop_oneof![
                    Just("web"),
                    Just("db"),
                    Just("Web"),
                    Just("ip-10-0-0-1"),
                    Just("!!")
                ]),
                prop_oneof![Just(""), Just("RDSNetworkInterface"), Just("ELB app/a/1")],
            ),
            0..12,
        )
        .prop_map(|m| {
            let mut used = BTreeSet::new();
            m.into_iter()
                .map(|(id, (addrs, name, desc))| Interface {
                    eni_id: format!("eni-{id:05x}"),
                    addresses: addrs
                        .into_iter()
                        .map(|a| a.wrapping_mul(131).wrapping_add(id as u16))
                        .filter(|a| used.insert(*a))
                        .map(|a| Ipv4Addr::new(10, 0, (a >> 8) as u8, a as u8))
                        .collect(),
                    private_dns_name: None,
                    instance_name: name.map(str::to_string),
                    interface_type: None,
                    description: desc.to_string(),
                    requester_managed: !desc.is_empty(),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn invariants(ifs in arb_interfaces(), drop in 0usize..12) {
            let d = desired(ZONE, &ifs, map);
            // Every name valid, under the zone; every address has its ip- name at its mapped address.
            for name in d.records.keys() {
                let l = name.strip_suffix(&format!(".{ZONE}")).expect("under the zone");
                prop_assert!(is_valid(l), "{l}");
            }
            for i in &ifs {
                for &a in &i.addresses {
                    let want = map(a);
                    prop_assert_eq!(d.records.get(&format!("{}.{ZONE}", ip_label(a))), want.as_ref());
                }
            }
            // The suffixed name of an interface does not depend on the others: remove one, the rest keep theirs.
            if !ifs.is_empty() {
                let mut fewer = ifs.clone();
                let gone = fewer.remove(drop % ifs.len());
                let e = desired(ZONE, &fewer, map);
                for i in &fewer {
                    let suffix = format!("-{}.{ZONE}", eni_suffix(&i.eni_id));
                    let mine = |r: &BTreeMap<String, Ipv4Addr>| -> BTreeMap<String, Ipv4Addr> {
                        r.iter().filter(|(n, _)| n.ends_with(&suffix)).map(|(n, a)| (n.clone(), *a)).collect()
                    };
                    prop_assert_eq!(mine(&d.records), mine(&e.records), "{} changed when {} left", i.eni_id, gone.eni_id);
                }
            }
            // Deterministic whatever the order the interfaces were read in.
            let mut rev = ifs.clone();
            rev.reverse();
            prop_assert_eq!(desired(ZONE, &rev, map), d);
        }
    }
}
