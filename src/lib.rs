//! vpclink: link two AWS VPCs whose IPv4 ranges overlap.
//!
//! The pipeline reads from the module names: [`plan`] (address math) -> provision (AWS) -> [`configure`] (SSH)
//! -> [`verify`]. [`plan`] and [`render`] are pure; [`ssh`] and the AWS layer are thin effect layers.

pub mod aws;
pub mod cli;
pub mod commands;
pub(crate) mod configure;
pub mod cost;
pub mod discover;
pub mod error;
pub mod link;
pub(crate) mod lock;
pub mod names;
pub(crate) mod output;
pub(crate) mod plan;
pub mod provision;
pub mod render;
pub mod settings;
pub mod side;
pub(crate) mod ssh;
pub mod state;
pub(crate) mod status;
pub(crate) mod teardown;
pub(crate) mod verify;

pub use error::{Error, Result};
