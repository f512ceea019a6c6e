//! `vpclink plan`'s cost table: what the link costs a month beside AWS's managed alternatives (a transit gateway
//! with attachment NAT; a private NAT gateway with a transit gateway). [`model`] is the pure arithmetic,
//! [`price_list`] reads the AWS Price List API's answers, [`builtin`] is the dated fallback table, [`lookup`] asks
//! (bounded in time) and says where each price came from, [`render`] prints it.

pub mod builtin;
pub mod lookup;
pub mod model;
pub mod price_list;
pub mod render;

use lookup::{Asker, Looked, PriceOrigin};
use model::{CostInput, CostTable};
use serde::Serialize;

/// What `plan` prints and `--json` carries as `cost`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    #[serde(flatten)]
    pub table: CostTable,
    pub prices: PriceOrigin,
}

/// The table for looked-up prices; the lookup's notes come first (where the prices came from).
pub fn report(i: &CostInput, looked: Looked) -> CostReport {
    let mut table = model::cost(i, &looked.prices);
    let mut notes = looked.notes;
    notes.append(&mut table.notes);
    table.notes = notes;
    CostReport {
        table,
        prices: looked.origin,
    }
}

/// Look the prices up (Price List API through the askers' profiles, else the built-in table) and cost the link.
pub async fn estimate(askers: &[Asker], i: &CostInput) -> CostReport {
    report(i, lookup::lookup(askers, i).await)
}
