//! vpclink: link two AWS VPCs whose IPv4 ranges overlap.
//!
//! The pipeline reads from the module names: [`plan`] (address math) -> provision (AWS) -> [`configure`] (SSH)
//! -> [`verify`]. [`plan`] and [`render`] are pure; [`ssh`] and the AWS layer are thin effect layers.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod configure;
pub mod discover;
pub mod error;
pub mod link;
pub mod lock;
pub mod output;
pub mod plan;
pub mod provision;
pub mod render;
pub mod run;
pub mod settings;
pub mod side;
pub mod ssh;
pub mod state;
pub mod status;
pub mod teardown;
pub mod verify;

pub use error::{Error, Result};
