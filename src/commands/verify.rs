//! `vpclink verify`: check the link end to end from the hosts. `up` ends with it.

use super::load;
use crate::cli::NameArg;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::state::{LinkState, StateFiles};

/// Verify off the async workers. Shared by `verify` and `up`.
pub(super) async fn verify_link(
    files: &StateFiles,
    state: LinkState,
    out: &Output,
) -> Result<crate::verify::VerifyReport> {
    let (files, out) = (files.clone(), *out);
    tokio::task::spawn_blocking(move || crate::verify::verify(&files, &state, &out))
        .await
        .map_err(|e| Error::Runtime(format!("verify task failed: {e}")))?
}

pub(super) async fn verify_cmd(a: &NameArg, out: &Output) -> Result<()> {
    let (files, state) = load(a)?;
    let report = verify_link(&files, state, out).await?;
    out.emit(&report, || crate::verify::human(&report));
    report.outcome()
}
