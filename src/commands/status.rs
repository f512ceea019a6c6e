//! `vpclink status`: read both sides and judge them against the state (see [`crate::status`]).

use super::{connect, targets_of};
use crate::cli::NameArg;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::state::StateFiles;

pub(super) async fn status(a: NameArg, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name)?;
    let state = files.load()?;
    let targets = targets_of(&state);
    let aws = connect(targets, None).await?;
    let (east, west) = tokio::join!(
        crate::status::side_status(&aws.east, &state),
        crate::status::side_status(&aws.west, &state)
    );
    let items: Vec<crate::status::Item> = east?.into_iter().chain(west?).collect();
    let report = crate::status::StatusReport {
        name: state.name.clone(),
        ok: items.iter().all(|i| i.ok),
        items,
    };
    out.emit(&report, || crate::status::human(&report));
    // Drift is a finding, like a failed verify check: scripts can act on the exit code.
    let drifted = report.items.iter().filter(|i| !i.ok).count();
    if drifted > 0 {
        return Err(Error::ChecksFailed {
            failed: drifted,
            total: report.items.len(),
        });
    }
    Ok(())
}
