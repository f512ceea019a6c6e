//! `vpclink down`: the reads and deletes are [`crate::teardown`]'s; this file connects, calls them in order, and
//! judges what they found with the pure functions below (where each side is, the listing, the report or the leak).

use super::connect;
use crate::aws::SideTarget;
use crate::cli::DownArgs;
use crate::error::{Error, Result};
use crate::output::{table, Output};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, StateFiles};
use crate::teardown::{self, Inventory};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// How long a resource may stay listed after its delete before `down` calls it left behind.
const LEAK_CHECK_BUDGET: Duration = Duration::from_secs(45);

#[derive(Debug, PartialEq, Eq, Serialize)]
struct DownReport {
    name: String,
    dry_run: bool,
    deleted: Vec<Inventory>,
    /// The names zones (issue 13), emptied and deleted with the rest.
    names: Vec<crate::names::teardown::FoundZone>,
    /// Resources with the link's tags still there afterwards (should be none).
    left: usize,
}

pub(super) async fn down(a: DownArgs, out: &Output) -> Result<()> {
    let files = StateFiles::for_link(&a.name.name)?;
    let _lock = crate::lock::acquire(&files).await?;
    let state = if files.exists() {
        Some(files.load()?)
    } else {
        None
    };
    let targets = targets(&a, state.as_ref(), &files.state_path())?;
    let aws = connect(targets, None).await?;
    let link = &a.name.name;
    let (e, w) = crate::side::both(
        teardown::collect(
            &aws.east,
            link,
            state.as_ref(),
            teardown::Purpose::Inventory,
        ),
        teardown::collect(
            &aws.west,
            link,
            state.as_ref(),
            teardown::Purpose::Inventory,
        ),
    )
    .await;
    let inventory = PerSide::new(e?, w?);
    let zones = crate::names::teardown::collect_both(&aws, link, state.as_ref()).await?;

    if !out.json {
        eprint!("{}", listing(&inventory));
        if !zones.is_empty() {
            eprint!(
                "{}",
                table(
                    &["side", "resource", "id"],
                    &crate::names::teardown::rows(&zones)
                )
            );
        }
    }
    if a.dry_run {
        let mut r = dry_run_report(link, inventory);
        r.left += zones.len();
        r.names = zones;
        out.emit(&r, || human(&r));
        return Ok(());
    }
    // The zones go first: nothing in EC2 depends on them, and they are quick.
    crate::names::teardown::delete(&aws, &zones).await?;

    let bar = out.spinner(format!("deleting link '{link}' on both sides"));
    let (de, dw) = crate::side::both(
        teardown::delete(&aws.east, &inventory.east),
        teardown::delete(&aws.west, &inventory.west),
    )
    .await;
    bar.finish_and_clear();
    de?;
    dw?;

    // Leak check: collect again; nothing may be left. Describe calls are eventually consistent (AWS: "Eventual
    // consistency in the Amazon EC2 API", https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html):
    // a group deleted a moment ago may still be listed, so only what stays listed for LEAK_CHECK_BUDGET is left.
    let left = teardown::leak_check(&aws, link, LEAK_CHECK_BUDGET).await?
        + crate::names::teardown::left(&aws, link, LEAK_CHECK_BUDGET).await?;
    let mut r = judge(link, inventory, left, LEAK_CHECK_BUDGET)?;
    r.names = zones;
    files.remove()?;
    out.emit(&r, || human(&r));
    Ok(())
}

/// Where each side is: the profile given (its region as given), else the state's profile (the region given, else
/// the state's). Without a profile and without a state there is nothing to find the link by.
fn targets(a: &DownArgs, state: Option<&LinkState>, path: &Path) -> Result<PerSide<SideTarget>> {
    let target =
        |side: Side, profile: &Option<String>, region: &Option<String>| match (profile, state) {
            (Some(p), _) => Ok(SideTarget {
                side,
                profile: p.clone(),
                region: region.clone(),
            }),
            (None, Some(s)) => Ok(SideTarget {
                side,
                profile: s.plan.side(side).profile.clone(),
                region: region.clone().or(Some(s.plan.side(side).region.clone())),
            }),
            (None, None) => Err(Error::from(crate::state::StateError::Missing {
                name: a.name.name.clone(),
                path: path.to_path_buf(),
            })),
        };
    Ok(PerSide::new(
        target(Side::East, &a.east, &a.east_region)?,
        target(Side::West, &a.west, &a.west_region)?,
    ))
}

/// Everything found on both sides, east first, as printed before anything is deleted.
fn listing(inv: &PerSide<Inventory>) -> String {
    let rows: Vec<Vec<String>> = inv.east.rows().into_iter().chain(inv.west.rows()).collect();
    table(&["side", "resource", "id"], &rows)
}

/// `--dry-run`: everything found is what would be deleted, and all of it is still there.
fn dry_run_report(link: &str, inventory: PerSide<Inventory>) -> DownReport {
    DownReport {
        name: link.to_string(),
        dry_run: true,
        left: inventory.east.count() + inventory.west.count(),
        deleted: vec![inventory.east, inventory.west],
        names: Vec::new(),
    }
}

/// After the deletes: the link is down when the leak check found nothing left after `budget`; otherwise it is an
/// error that says to run `down` again (the state file is kept).
fn judge(
    link: &str,
    inventory: PerSide<Inventory>,
    left: usize,
    budget: Duration,
) -> Result<DownReport> {
    if left > 0 {
        return Err(Error::Runtime(format!(
            "{left} resource(s) with the link's tags are still there {} s after deleting; run `vpclink down --name {link}` again",
            budget.as_secs()
        )));
    }
    Ok(DownReport {
        name: link.to_string(),
        dry_run: false,
        deleted: vec![inventory.east, inventory.west],
        names: Vec::new(),
        left,
    })
}

fn human(r: &DownReport) -> String {
    if r.dry_run {
        format!("--dry-run: {} resource(s) above would be deleted\n", r.left)
    } else {
        format!(
            "link '{}' is down: {} resource(s) deleted, none left\n",
            r.name,
            r.deleted.iter().map(|i| i.count()).sum::<usize>() + r.names.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::NameArg;
    use crate::link::{LinkPlan, SidePlan};
    use crate::state::{Options, Os, OwnedRoute};

    fn args(east: Option<&str>, west: Option<&str>, east_region: Option<&str>) -> DownArgs {
        DownArgs {
            name: NameArg { name: "l".into() },
            east: east.map(str::to_string),
            west: west.map(str::to_string),
            east_region: east_region.map(str::to_string),
            west_region: None,
            dry_run: false,
        }
    }

    fn side_plan(profile: &str, region: &str) -> SidePlan {
        SidePlan {
            profile: profile.into(),
            region: region.into(),
            account: "1".into(),
            vpc_id: format!("vpc-{profile}"),
            cidrs: vec!["10.0.0.0/16".parse().unwrap()],
            mapped: vec!["10.1.0.0/16".parse().unwrap()],
            route_tables: vec!["rtb-1".into()],
            public_subnet: None,
            skipped_tables: Vec::new(),
        }
    }

    fn state() -> LinkState {
        LinkState::new(
            LinkPlan {
                name: "l".into(),
                overlapping: true,
                east: side_plan("prod", "eu-west-1"),
                west: side_plan("corp", "us-east-1"),
            },
            Options {
                os: Os::Al2023,
                instance_type: "t3.micro".into(),
                test_hosts: true,
                ssh_cidr: None,
            },
        )
    }

    fn inventory(side: Side, instances: &[&str]) -> Inventory {
        Inventory {
            side: Some(side),
            routes: vec![OwnedRoute {
                route_table_id: "rtb-1".into(),
                destination: "10.2.0.0/16".parse().unwrap(),
            }],
            instances: instances.iter().map(|i| i.to_string()).collect(),
            key_pairs: vec!["vpclink-l".into()],
            ..Inventory::default()
        }
    }

    fn both() -> PerSide<Inventory> {
        PerSide::new(
            inventory(Side::East, &["i-e1", "i-e2"]),
            inventory(Side::West, &["i-w"]),
        )
    }

    #[test]
    fn targets_come_from_the_state_with_a_region_override() {
        let t = targets(
            &args(None, None, Some("eu-north-1")),
            Some(&state()),
            Path::new("/s"),
        )
        .unwrap();
        assert_eq!(t.east.profile, "prod");
        assert_eq!(t.east.region.as_deref(), Some("eu-north-1"));
        assert_eq!(t.west.side, Side::West);
        assert_eq!(t.west.profile, "corp");
        assert_eq!(t.west.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn given_profiles_win_over_the_state_and_keep_their_own_region() {
        let t = targets(
            &args(Some("a"), Some("b"), None),
            Some(&state()),
            Path::new("/s"),
        )
        .unwrap();
        assert_eq!(
            (t.east.profile.as_str(), t.east.region.as_deref()),
            ("a", None)
        );
        assert_eq!(
            (t.west.profile.as_str(), t.west.region.as_deref()),
            ("b", None)
        );
        // Without a state, given profiles are enough: resources are found by tag.
        let t = targets(&args(Some("a"), Some("b"), None), None, Path::new("/s")).unwrap();
        assert_eq!(t.east.profile, "a");
    }

    #[test]
    fn no_profile_and_no_state_is_the_missing_state_error() {
        let e = targets(&args(None, None, None), None, Path::new("/s/l.json")).unwrap_err();
        assert_eq!(
            e.exit_code(),
            Error::from(crate::state::StateError::Missing {
                name: "l".into(),
                path: "/s/l.json".into(),
            })
            .exit_code()
        );
        let msg = e.to_string();
        assert!(msg.contains("no state for link 'l' at /s/l.json"), "{msg}");
        assert!(msg.contains("--east/--west"), "{msg}");
    }

    #[test]
    fn listing_is_east_then_west() {
        let s = listing(&both());
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("side"), "{s}");
        assert_eq!(lines.len(), 1 + 4 + 3);
        assert!(
            lines[1].starts_with("east") && lines[1].contains("rtb-1 10.2.0.0/16"),
            "{s}"
        );
        assert!(
            lines[7].starts_with("west") && lines[7].contains("vpclink-l"),
            "{s}"
        );
    }

    #[test]
    fn dry_run_counts_everything_found_as_left() {
        let r = dry_run_report("l", both());
        assert!(r.dry_run);
        assert_eq!(r.left, 4 + 3);
        assert_eq!(
            human(&r),
            "--dry-run: 7 resource(s) above would be deleted\n"
        );
    }

    #[test]
    fn nothing_left_is_down() {
        let r = judge("l", both(), 0, LEAK_CHECK_BUDGET).unwrap();
        assert!(!r.dry_run);
        assert_eq!(r.left, 0);
        assert_eq!(r.deleted, vec![both().east, both().west]);
        assert_eq!(
            human(&r),
            "link 'l' is down: 7 resource(s) deleted, none left\n"
        );
    }

    #[test]
    fn anything_left_is_a_run_time_error_that_says_to_run_again() {
        let e = judge("l", both(), 2, Duration::from_secs(45)).unwrap_err();
        assert!(matches!(e, Error::Runtime(_)));
        assert_eq!(
            e.to_string(),
            Error::Runtime("2 resource(s) with the link's tags are still there 45 s after deleting; run `vpclink down --name l` again".into()).to_string()
        );
    }

    #[test]
    fn an_empty_link_is_down_with_nothing_deleted() {
        let empty = PerSide::new(Inventory::default(), Inventory::default());
        let r = judge("l", empty, 0, LEAK_CHECK_BUDGET).unwrap();
        assert_eq!(
            human(&r),
            "link 'l' is down: 0 resource(s) deleted, none left\n"
        );
    }
}
