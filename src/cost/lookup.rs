//! Where the prices come from: the AWS Price List API through a side's profile, filled (or, when it cannot be asked,
//! replaced) by the built-in table, always saying which and why. The lookup is bounded in time: `plan` is never held
//! up by it.

use super::builtin;
use super::model::{CostInput, Price, Prices};
use super::price_list::{self, Product, Query};
use crate::aws::pricing::Pricing;
use crate::side::Side;
use futures_util::future::join_all;
use serde::Serialize;
use std::time::Duration;

/// How long the whole lookup may take, every profile tried included.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(6);

/// Which profile may ask the Price List API, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker {
    pub side: Side,
    pub profile: String,
}

/// What the table's prices are, for the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceOrigin {
    /// The profile whose pricing:GetProducts answered; None: the built-in table only.
    pub price_list_profile: Option<String>,
    /// The date of the built-in table (used for what the Price List did not answer, or for everything).
    pub builtin_as_of: &'static str,
    /// Why the Price List API was not used, when it was not.
    pub price_list_error: Option<String>,
}

/// The prices, where they came from, and the notes that say so.
#[derive(Debug, Clone, PartialEq)]
pub struct Looked {
    pub prices: Prices,
    pub origin: PriceOrigin,
    pub notes: Vec<String>,
}

/// The answers of one profile's queries, parsed.
struct Answers {
    east: [Vec<Product>; 4],
    west: [Vec<Product>; 4],
    east_out: Vec<Product>,
    west_out: Vec<Product>,
}

async fn ask(p: &Pricing, i: &CostInput) -> Result<Answers, String> {
    let (e, w) = (i.east_region.as_str(), i.west_region.as_str());
    let mut queries: Vec<Query> = price_list::region_queries(e, &i.instance_type).into();
    queries.push(price_list::transfer_query(e, w));
    // One region: one set of answers serves both sides.
    if !i.same_region() {
        queries.extend(price_list::region_queries(w, &i.instance_type));
        queries.push(price_list::transfer_query(w, e));
    }
    // All at once (the answers are independent); the first failure stands for all.
    let answers = join_all(
        queries
            .iter()
            .map(|q| p.get_products(q.service_code, &q.filters)),
    )
    .await;
    let mut parsed = Vec::new();
    for a in answers {
        let a = a.map_err(|e| {
            let why = format!(
                "pricing:GetProducts failed on the {} profile {}: {}{}",
                e.side,
                e.profile,
                e.code
                    .as_deref()
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default(),
                e.message.trim_end_matches('.')
            );
            if e.is_denied() {
                format!("{why} (allow pricing:GetProducts for that profile to get today's prices)")
            } else {
                why
            }
        })?;
        parsed.push(price_list::parse(&a).map_err(|e| e.to_string())?);
    }
    let mut it = parsed.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let east = [next(), next(), next(), next()];
    let east_out = next();
    if i.same_region() {
        return Ok(Answers {
            west: east.clone(),
            west_out: east_out.clone(),
            east,
            east_out,
        });
    }
    Ok(Answers {
        east,
        east_out,
        west: [next(), next(), next(), next()],
        west_out: next(),
    })
}

/// Ask each profile in turn until one answers, within [`LOOKUP_TIMEOUT`].
async fn ask_any(askers: &[Asker], i: &CostInput) -> (Option<(String, Answers)>, Vec<String>) {
    let mut errors = Vec::new();
    let tried = tokio::time::timeout(LOOKUP_TIMEOUT, async {
        for a in askers {
            let p = Pricing::new(a.side, &a.profile).await;
            match ask(&p, i).await {
                Ok(answers) => return Some((a.profile.clone(), answers)),
                Err(e) => errors.push(e),
            }
        }
        None
    })
    .await;
    match tried {
        Ok(found) => (found, errors),
        Err(_) => {
            errors.push(format!(
                "the Price List API gave no answer within {} s",
                LOOKUP_TIMEOUT.as_secs()
            ));
            (None, errors)
        }
    }
}

/// The built-in prices for the input (None where the table has none).
pub fn builtin_prices(i: &CostInput) -> Prices {
    let (e, w) = (i.east_region.as_str(), i.west_region.as_str());
    Prices {
        east: builtin::region(e, &i.instance_type).unwrap_or_default(),
        west: builtin::region(w, &i.instance_type).unwrap_or_default(),
        east_to_west_gb: builtin::inter_region(e, w),
        west_to_east_gb: builtin::inter_region(w, e),
    }
}

/// Combine a Price List answer (if any) with the built-in table; say what came from where. Pure.
fn combine(i: &CostInput, answered: Option<(String, Answers)>, errors: Vec<String>) -> Looked {
    let builtin = builtin_prices(i);
    let mut notes = Vec::new();
    let (e, w) = (i.east_region.as_str(), i.west_region.as_str());
    let (prices, origin) = match answered {
        Some((profile, a)) => {
            let same = i.same_region();
            let region = |answers: &[Vec<Product>; 4], out: &[Product]| {
                let [x, y, z, v] = answers;
                price_list::region_prices(&i.instance_type, [x, y, z, v], same.then_some(out))
            };
            let mut east = region(&a.east, &a.east_out);
            let mut west = region(&a.west, &a.west_out);
            for (region, listed, fallback) in [
                (e, &mut east, builtin::region(e, &i.instance_type)),
                (w, &mut west, builtin::region(w, &i.instance_type)),
            ] {
                let filled = price_list::fill(listed, fallback.as_ref());
                let note = format!(
                    "not in the Price List answer for {region}, taken from the built-in table (written {}, list prices not re-checked since): {}",
                    builtin::AS_OF,
                    filled.join(", ")
                );
                // One region for both sides: one note.
                if !filled.is_empty() && !notes.contains(&note) {
                    notes.push(note);
                }
            }
            let out = |answer: &[Product],
                       fallback: Option<Price>,
                       from: &str,
                       to: &str,
                       notes: &mut Vec<String>| {
                if same {
                    return None;
                }
                let listed = price_list::inter_region_price(answer);
                if listed.is_none() && fallback.is_some() {
                    notes.push(format!(
                        "transfer out of {from} to {to} is not in the Price List answer, taken from the built-in table (written {}, list prices not re-checked since)",
                        builtin::AS_OF
                    ));
                }
                listed.or(fallback)
            };
            let east_to_west_gb = out(&a.east_out, builtin.east_to_west_gb, e, w, &mut notes);
            let west_to_east_gb = out(&a.west_out, builtin.west_to_east_gb, w, e, &mut notes);
            notes.insert(
                0,
                format!("prices from the AWS Price List API (pricing:GetProducts as profile {profile}), today"),
            );
            (
                Prices {
                    east,
                    west,
                    east_to_west_gb,
                    west_to_east_gb,
                },
                PriceOrigin {
                    price_list_profile: Some(profile),
                    builtin_as_of: builtin::AS_OF,
                    price_list_error: None,
                },
            )
        }
        None => {
            let why = errors.join("; ");
            notes.push(format!(
                "prices from vpclink's built-in table written {} (list prices not re-checked since), not from the AWS Price List API: {why}",
                builtin::AS_OF
            ));
            (
                builtin,
                PriceOrigin {
                    price_list_profile: None,
                    builtin_as_of: builtin::AS_OF,
                    price_list_error: Some(why),
                },
            )
        }
    };
    let mut regions = vec![e];
    if w != e {
        regions.push(w);
    }
    for r in regions {
        if !builtin::REGIONS.contains(&r) && origin.price_list_profile.is_none() {
            notes.push(format!(
                "the built-in table has no prices for {r} (it covers {}): those lines are not priced",
                builtin::REGIONS.join(", ")
            ));
        }
    }
    if origin.price_list_profile.is_none()
        && !builtin::INSTANCE_TYPES.contains(&i.instance_type.as_str())
    {
        notes.push(format!(
            "the built-in table has no price for {} (it knows {}): the tunnel hosts are not priced",
            i.instance_type,
            builtin::INSTANCE_TYPES.join(", ")
        ));
    }
    Looked {
        prices,
        origin,
        notes,
    }
}

/// Prices for `i`: from the Price List API through the first profile that answers, else the built-in table.
pub async fn lookup(askers: &[Asker], i: &CostInput) -> Looked {
    let (answered, errors) = ask_any(askers, i).await;
    combine(i, answered, errors)
}

/// Prices for `i` from the built-in table only (with --no-cost nothing is priced at all; this is for tests and
/// for callers that must not touch the network).
pub fn offline(i: &CostInput, why: &str) -> Looked {
    combine(i, None, vec![why.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::model::{RegionPrices, Source};

    fn input(e: &str, w: &str, t: &str) -> CostInput {
        CostInput {
            east_region: e.into(),
            west_region: w.into(),
            instance_type: t.into(),
            traffic_gb: 100.0,
            ha: false,
        }
    }

    #[test]
    fn fallback_says_why_and_when() {
        let l = offline(
            &input("us-east-1", "eu-west-1", "t3.small"),
            "pricing:GetProducts failed on the east profile p: AccessDeniedException: no",
        );
        assert!(
            l.notes[0].contains(builtin::AS_OF) && l.notes[0].contains("AccessDeniedException")
        );
        assert_eq!(l.origin.price_list_profile, None);
        assert_eq!(l.prices.east.instance_hour.unwrap().source, Source::Builtin);
        assert_eq!(l.prices.east_to_west_gb.unwrap().usd, 0.02);
    }

    #[test]
    fn unknown_region_and_type_are_said_not_guessed() {
        let l = offline(&input("me-central-1", "eu-west-1", "c7i.large"), "offline");
        assert_eq!(l.prices.east, RegionPrices::default());
        assert_eq!(l.prices.west.instance_hour, None);
        assert!(l
            .notes
            .iter()
            .any(|n| n.contains("no prices for me-central-1")));
        assert!(l.notes.iter().any(|n| n.contains("no price for c7i.large")));
    }
}
