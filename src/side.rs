//! The two ends of a link. "east" and "west" are names, not geography: each is one AWS profile and one VPC.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The side of `--east`.
    East,
    /// The side of `--west`.
    West,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::East, Side::West];

    pub fn peer(self) -> Side {
        match self {
            Side::East => Side::West,
            Side::West => Side::East,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::East => "east",
            Side::West => "west",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value held once per side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide<T> {
    pub east: T,
    pub west: T,
}

impl<T> PerSide<T> {
    pub fn new(east: T, west: T) -> Self {
        PerSide { east, west }
    }

    pub fn get(&self, side: Side) -> &T {
        match side {
            Side::East => &self.east,
            Side::West => &self.west,
        }
    }

    pub fn get_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::East => &mut self.east,
            Side::West => &mut self.west,
        }
    }

    pub fn map<U>(&self, mut f: impl FnMut(Side, &T) -> U) -> PerSide<U> {
        PerSide {
            east: f(Side::East, &self.east),
            west: f(Side::West, &self.west),
        }
    }
}

/// Hidden switch for `scripts/bench`: `VPCLINK_SERIAL_SIDES=1` makes [`both`] and [`try_both`] run the east side's
/// work to the end before the west side's, so one can measure what running the sides at once saves. Not for users.
pub fn serial_sides() -> bool {
    crate::settings::get().serial_sides
}

/// Both sides' work at once (east, then west, under [`serial_sides`]).
pub async fn both<A: std::future::Future, B: std::future::Future>(
    east: A,
    west: B,
) -> (A::Output, B::Output) {
    if serial_sides() {
        let e = east.await;
        (e, west.await)
    } else {
        tokio::join!(east, west)
    }
}

/// Like [`both`], stopping at the first error (the other side's work is dropped, as `tokio::try_join!` does).
pub async fn try_both<T, U, E>(
    east: impl std::future::Future<Output = Result<T, E>>,
    west: impl std::future::Future<Output = Result<U, E>>,
) -> Result<(T, U), E> {
    if serial_sides() {
        let e = east.await?;
        Ok((e, west.await?))
    } else {
        tokio::try_join!(east, west)
    }
}

#[cfg(test)]
mod both_tests {
    use super::*;

    #[test]
    fn both_and_try_both_keep_east_then_west_and_stop_at_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(both(async { 1 }, async { "w" })), (1, "w"));
        let ok: Result<(u8, u8), &str> = rt.block_on(try_both(async { Ok(1) }, async { Ok(2) }));
        assert_eq!(ok, Ok((1, 2)));
        let err: Result<(u8, u8), &str> =
            rt.block_on(try_both(async { Ok(1) }, async { Err("west") }));
        assert_eq!(err, Err("west"));
    }
}
