//! Desired records against the zone's current ones: the changes that make the zone hold exactly the desired set,
//! touching only records vpclink owns. Pure.
//!
//! Which records are vpclink's: the zone itself is vpclink's (created by it, tagged `vpclink:link`), and in it vpclink
//! writes only simple A records with one value, below the apex. So [`owned`] takes exactly those; everything else in
//! the zone (the SOA and NS records Route 53 made, an alias, a weighted or other routing-policy record with a
//! SetIdentifier, a record of another type, an A record with several values) is someone else's and never changed. A
//! desired name already held by such a record is not made, and reported.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The TTL of every record vpclink writes: short, so that a changed interface is followed within a minute.
pub const TTL: i64 = 60;

/// A record set as read from Route 53 (name lower case without the trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub kind: String,
    pub values: Vec<String>,
    pub ttl: Option<i64>,
    pub alias: bool,
    pub set_identifier: bool,
}

/// The zone's records split into vpclink's own A records (name -> (address, TTL)) and the names held by anything else.
pub fn owned(zone: &str, seen: &[Seen]) -> (BTreeMap<String, (Ipv4Addr, i64)>, Vec<String>) {
    let mut ours = BTreeMap::new();
    let mut foreign = Vec::new();
    for s in seen {
        let below_apex = s.name.ends_with(&format!(".{zone}"));
        let one_v4 = match s.values.as_slice() {
            [v] => v.parse::<Ipv4Addr>().ok(),
            _ => None,
        };
        match (
            s.kind.as_str(),
            below_apex,
            s.alias,
            s.set_identifier,
            one_v4,
        ) {
            ("A", true, false, false, Some(a)) => {
                ours.insert(s.name.clone(), (a, s.ttl.unwrap_or(TTL)));
            }
            _ => foreign.push(s.name.clone()),
        }
    }
    foreign.sort();
    foreign.dedup();
    (ours, foreign)
}

/// Route 53's record name as we compare it: lower case, no trailing dot. Route 53 returns names fully qualified with
/// the dot, and escapes characters other than a-z, 0-9, '-', '_' and '.' as \NNN (octal): vpclink's names have none.
pub fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Change {
    Create {
        name: String,
        value: Ipv4Addr,
    },
    /// An existing record of ours to a new address (UPSERT).
    Upsert {
        name: String,
        old: Ipv4Addr,
        value: Ipv4Addr,
    },
    /// DELETE must name the record exactly as it is, TTL included.
    Delete {
        name: String,
        value: Ipv4Addr,
        ttl: i64,
    },
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Create { name, .. }
            | Change::Upsert { name, .. }
            | Change::Delete { name, .. } => name,
        }
    }
}

/// The changes from `current` (ours, as [`owned`] reads them) to `desired`, in name order.
pub fn diff(
    desired: &BTreeMap<String, Ipv4Addr>,
    current: &BTreeMap<String, (Ipv4Addr, i64)>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, &value) in desired {
        match current.get(name) {
            None => out.push(Change::Create {
                name: name.clone(),
                value,
            }),
            Some(&(old, _)) if old != value => out.push(Change::Upsert {
                name: name.clone(),
                old,
                value,
            }),
            Some(_) => {}
        }
    }
    for (name, &(value, ttl)) in current {
        if !desired.contains_key(name) {
            out.push(Change::Delete {
                name: name.clone(),
                value,
                ttl,
            });
        }
    }
    out
}

/// What the zone holds after `changes` (what Route 53 does with them): for the tests, and to say what a run made.
pub fn apply(
    current: &BTreeMap<String, (Ipv4Addr, i64)>,
    changes: &[Change],
) -> BTreeMap<String, (Ipv4Addr, i64)> {
    let mut out = current.clone();
    for c in changes {
        match c {
            Change::Create { name, value } | Change::Upsert { name, value, .. } => {
                out.insert(name.clone(), (*value, TTL));
            }
            Change::Delete { name, .. } => {
                out.remove(name);
            }
        }
    }
    out
}

/// ChangeResourceRecordSets takes at most 100 Change elements and 1000 ResourceRecord elements per request, and at
/// most 32,000 characters in all Value elements (API reference, ChangeResourceRecordSets: "Limits"
/// https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html; "Quotas on API
/// requests" https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html). Each of our changes is
/// one record with one address (at most 15 characters), so 100 changes per batch keeps all three.
pub const MAX_CHANGES: usize = 100;

pub fn batches(changes: &[Change]) -> Vec<&[Change]> {
    changes.chunks(MAX_CHANGES).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ZONE: &str = "west.l.vpclink.internal";

    fn seen(name: &str, kind: &str, values: &[&str]) -> Seen {
        Seen {
            name: name.into(),
            kind: kind.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            ttl: Some(300),
            alias: false,
            set_identifier: false,
        }
    }

    #[test]
    fn only_simple_a_records_below_the_apex_are_ours() {
        let mut weighted = seen(&format!("w.{ZONE}"), "A", &["10.1.1.1"]);
        weighted.set_identifier = true;
        let (ours, foreign) = owned(
            ZONE,
            &[
                seen(ZONE, "SOA", &["ns. x. 1 7200 900 1209600 86400"]),
                seen(ZONE, "NS", &["ns-1.awsdns-1.org."]),
                seen(&format!("a.{ZONE}"), "A", &["10.1.1.1"]),
                seen(&format!("two.{ZONE}"), "A", &["10.1.1.1", "10.1.1.2"]),
                seen(&format!("t.{ZONE}"), "TXT", &["\"x\""]),
                weighted,
            ],
        );
        assert_eq!(ours.len(), 1);
        assert_eq!(
            ours[&format!("a.{ZONE}")],
            ("10.1.1.1".parse().unwrap(), 300)
        );
        assert_eq!(foreign.len(), 4, "{foreign:?}");
        assert_eq!(
            normalise("IP-10-0-0-1.West.L.vpclink.internal."),
            "ip-10-0-0-1.west.l.vpclink.internal"
        );
    }

    #[test]
    fn batches_respect_the_change_limit() {
        let changes: Vec<Change> = (0..250u32)
            .map(|i| Change::Create {
                name: format!("n{i}.{ZONE}"),
                value: Ipv4Addr::from(i),
            })
            .collect();
        let b = batches(&changes);
        assert_eq!(
            b.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
    }

    fn arb_set() -> impl Strategy<Value = BTreeMap<String, Ipv4Addr>> {
        proptest::collection::btree_map("[a-e]{1,2}", (0u32..4).prop_map(Ipv4Addr::from), 0..12)
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_desired_set_and_a_second_diff_is_empty(
            desired in arb_set(), current in arb_set(), ttl in 1i64..1000
        ) {
            let current: BTreeMap<String, (Ipv4Addr, i64)> = current.into_iter().map(|(n, a)| (n, (a, ttl))).collect();
            let changes = diff(&desired, &current);
            let after = apply(&current, &changes);
            let values: BTreeMap<String, Ipv4Addr> = after.iter().map(|(n, (a, _))| (n.clone(), *a)).collect();
            prop_assert_eq!(&values, &desired);
            prop_assert!(diff(&desired, &after).is_empty());
            // One change per name at most (a batch may not touch a record twice).
            let mut names: Vec<&str> = changes.iter().map(Change::name).collect();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), changes.len());
            // Deletes carry exactly what was read.
            for c in &changes {
                if let Change::Delete { name, value, ttl } = c {
                    prop_assert_eq!(current.get(name), Some(&(*value, *ttl)));
                }
            }
        }
    }
}
