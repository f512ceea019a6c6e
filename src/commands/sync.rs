//! `vpclink sync`: bring both names zones up to date with both VPCs (see [`crate::names::sync`]). Idempotent: a
//! second run changes nothing and says so. The state knows both profiles and regions, so no other input is needed.

use super::{connect, load, targets_of};
use crate::cli::NameArg;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::side::Side;

pub(super) async fn sync_cmd(a: &NameArg, out: &Output) -> Result<()> {
    let (files, mut state) = load(a)?;
    let _lock = crate::lock::acquire(&files).await?;
    let without: Vec<String> = Side::BOTH
        .into_iter()
        .filter(|s| state.side(*s).names.is_none())
        .map(|s| s.to_string())
        .collect();
    if !without.is_empty() {
        return Err(Error::Input(format!(
            "link '{}' has no names on the {} side (made with --no-dns, or before names existed); `vpclink up --dns` with the link's profiles makes them",
            state.name,
            without.join(" and ")
        )));
    }
    let aws = connect(targets_of(&state), None).await?;
    let report = crate::names::sync::sync_link(Some(&files), &mut state, &aws).await?;
    out.emit(&report, || {
        let changed: usize = Side::BOTH
            .iter()
            .map(|s| report.get(*s).changes.len())
            .sum();
        format!(
            "{}{}\n",
            crate::names::sync::human(&report),
            if changed == 0 {
                "names: no change (both zones already match both VPCs)".to_string()
            } else {
                format!("names: {changed} record change(s) made")
            }
        )
    });
    Ok(())
}
