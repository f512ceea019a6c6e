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
        crate::status::side_report(&aws.east, &state),
        crate::status::side_report(&aws.west, &state)
    );
    let ((east, east_figures), (west, west_figures)) = (east?, west?);
    let mut items: Vec<crate::status::Item> = east.into_iter().chain(west).collect();
    // Names (issue 13): each side's zone, and the records that drifted from both VPCs.
    items.extend(crate::names::sync::status_items(&state, &aws).await?);
    let report = crate::status::StatusReport {
        name: state.name.clone(),
        ok: items.iter().all(|i| i.ok),
        items,
        metrics: vec![east_figures, west_figures],
    };
    out.emit(&report, || crate::status::human(&report));
    // Drift, or what cannot be judged, is a finding like a failed verify check: scripts can act on the exit code.
    match verdict(&report.items) {
        Some(why) => Err(Error::Runtime(why)),
        None => Ok(()),
    }
}

/// What `status` exits with: None when every item is ok, else how many drifted and how many could not be judged.
fn verdict(items: &[crate::status::Item]) -> Option<String> {
    use crate::status::Health;
    let count = |h: Health| items.iter().filter(|i| i.health == h).count();
    let (drift, unknown) = (count(Health::Drift), count(Health::Unknown));
    match (drift, unknown) {
        (0, 0) => None,
        (d, 0) => Some(format!("{d} of {} items drifted", items.len())),
        (0, u) => Some(format!(
            "{u} of {} items could not be judged (unknown; the table says why)",
            items.len()
        )),
        (d, u) => Some(format!(
            "{d} of {} items drifted and {u} could not be judged (unknown; the table says why)",
            items.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::side::Side;
    use crate::status::{Health, Item};

    fn item(health: Health) -> Item {
        Item {
            side: Side::East,
            resource: "r".into(),
            id: "i".into(),
            ok: health == Health::Ok,
            health,
            detail: String::new(),
        }
    }

    #[test]
    fn unknown_is_said_apart_from_drift() {
        assert_eq!(verdict(&[item(Health::Ok)]), None);
        assert_eq!(
            verdict(&[item(Health::Ok), item(Health::Drift)]).unwrap(),
            "1 of 2 items drifted"
        );
        assert!(verdict(&[item(Health::Unknown)])
            .unwrap()
            .starts_with("1 of 1 items could not be judged"));
        assert!(verdict(&[item(Health::Drift), item(Health::Unknown)])
            .unwrap()
            .contains("1 of 2 items drifted and 1 could not be judged"));
    }
}
