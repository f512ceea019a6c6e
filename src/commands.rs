//! AWS-facing subcommands (plan, up, status, down). Being written on the `aws` branch; until it lands these
//! say so and exit 1.

use crate::cli::{DownArgs, NameArg, PlanArgs, UpArgs};
use crate::error::{Error, Result};
use crate::output::Output;

fn pending(what: &str) -> Error {
    Error::Runtime(format!(
        "`vpclink {what}` needs the AWS layer, which this build does not have yet"
    ))
}

pub async fn plan(_a: PlanArgs, _out: &Output) -> Result<()> {
    Err(pending("plan"))
}
pub async fn up(_a: UpArgs, _out: &Output) -> Result<()> {
    Err(pending("up"))
}
pub async fn status(_a: NameArg, _out: &Output) -> Result<()> {
    Err(pending("status"))
}
pub async fn down(_a: DownArgs, _out: &Output) -> Result<()> {
    Err(pending("down"))
}
