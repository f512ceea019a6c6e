//! The two ends of a link. "east" and "west" are names, not geography: each is one AWS profile and one VPC.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    East,
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
