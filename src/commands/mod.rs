//! The subcommands, one file each: read state, connect, call the pipeline, print through `Output`. This module holds
//! the dispatch and what several commands share (loading a link's state, connecting both sides).

mod configure;
mod down;
mod map;
mod pin;
mod plan;
mod render;
mod status;
mod sync;
mod up;
mod verify;

pub use plan::connect_and_plan;

use crate::aws::{self, DryRunLog, SideAws, SideTarget};
use crate::cli::{Cli, Command, NameArg};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};

pub async fn run(cli: Cli) -> Result<()> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Plan(a) => plan::plan(a, &out).await,
        Command::Up(a) => up::up(a, &out).await,
        Command::Status(a) => status::status(a, &out).await,
        Command::Down(a) => down::down(a, &out).await,
        Command::Configure(a) => configure::configure_cmd(&a, &out).await,
        Command::Verify(a) => verify::verify_cmd(&a, &out).await,
        Command::Map(a) => map::map_cmd(&a, &out),
        Command::Render(a) => render::render_cmd(&a, &out),
        Command::Pin(a) => pin::pin_cmd(&a, &out).await,
        Command::Sync(a) => sync::sync_cmd(&a, &out).await,
    }
}

fn load(name: &NameArg) -> Result<(StateFiles, LinkState)> {
    let files = StateFiles::for_link(&name.name)?;
    let state = files.load()?;
    Ok((files, state))
}

fn existing_state(files: &StateFiles) -> Result<Option<LinkState>> {
    Ok(if files.exists() {
        Some(files.load()?)
    } else {
        None
    })
}

/// Connect both sides at once.
pub(crate) async fn connect(
    targets: PerSide<SideTarget>,
    dry: Option<DryRunLog>,
) -> Result<PerSide<SideAws>> {
    let (east, west) = crate::side::both(
        aws::connect(&targets.east, dry.clone()),
        aws::connect(&targets.west, dry),
    )
    .await;
    // Report both sides' problems at once when both fail; each keeps its kind (Error::exit_code chooses).
    let (e, w) = Error::both(east.map_err(Error::from), west.map_err(Error::from))?;
    Ok(PerSide::new(e, w))
}

/// The profile and region each side of an existing link was made with.
fn targets_of(state: &LinkState) -> PerSide<SideTarget> {
    PerSide::new(Side::East, Side::West).map(|_, &side| SideTarget {
        side,
        profile: state.plan.side(side).profile.clone(),
        region: Some(state.plan.side(side).region.clone()),
    })
}
