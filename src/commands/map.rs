//! `vpclink map`: what an address means on either side of a link.

use super::load;
use crate::cli::MapArgs;
use crate::error::Result;
use crate::output::{table, Output};
use crate::plan::{translate, Translation};
use serde::Serialize;

#[derive(Serialize)]
struct MapAnswer {
    address: std::net::Ipv4Addr,
    translations: Vec<Translation>,
}

pub(super) fn map_cmd(a: &MapArgs, out: &Output) -> Result<()> {
    let (_, state) = load(&a.name)?;
    let plan = state.plan.mappings();
    let answers: Vec<MapAnswer> = a
        .addresses
        .iter()
        .map(|&address| MapAnswer {
            address,
            translations: translate(&plan, address),
        })
        .collect();
    out.emit(&answers, || {
        let mut rows = Vec::new();
        for ans in &answers {
            if ans.translations.is_empty() {
                rows.push(vec![
                    ans.address.to_string(),
                    "-".into(),
                    "outside every real and mapped range of this link".into(),
                ]);
            }
            for t in &ans.translations {
                rows.push(match t {
                    Translation::RealToMapped { side, mapped, .. } => vec![
                        ans.address.to_string(),
                        format!("{side} real"),
                        format!("the {} side reaches it at {mapped}", side.peer()),
                    ],
                    Translation::MappedToReal { side, real, .. } => vec![
                        ans.address.to_string(),
                        format!("{side} mapped"),
                        format!("stands for {real} in the {side} VPC"),
                    ],
                });
            }
        }
        table(&["address", "is", "meaning"], &rows)
    });
    Ok(())
}
