//! The command line. These names are a contract: other tooling calls them.

use crate::link::DEFAULT_NAME;
use crate::side::Side;
use crate::state::{Os, Role};
use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "vpclink", version, about = "Link two AWS VPCs whose IPv4 ranges overlap", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Machine-readable output on stdout (progress and logs stay on stderr).
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,
    /// More log output on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover both VPCs and choose the mapped ranges; changes nothing.
    Plan(PlanCommandArgs),
    /// Plan, provision both sides, configure the tunnel hosts and verify the link.
    Up(UpArgs),
    /// Push host configuration to an existing link (idempotent).
    Configure(NameArg),
    /// Prove the link end to end; exits non-zero if any check fails.
    Verify(NameArg),
    /// Show what exists and what drifted.
    Status(NameArg),
    /// Remove everything the link created, from state or, without it, by tags.
    Down(DownArgs),
    /// Translate addresses real <-> mapped, both directions, offline from state.
    Map(MapArgs),
    /// Write exactly the files and commands configure would push, per host, and each host's first-boot user-data.
    Render(RenderArgs),
    /// Pin a host's SSH host key from a saved console output (when this profile may not read consoles).
    Pin(PinArgs),
    /// Bring the names in both private zones up to date with both VPCs (added, changed and removed interfaces).
    Sync(NameArg),
}

#[derive(Debug, Clone, Args)]
pub struct NameArg {
    /// The link's name; state lives in $XDG_STATE_HOME/vpclink/NAME.json.
    #[arg(long, default_value = DEFAULT_NAME, value_parser = parse_name, help_heading = "Link")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// AWS profile for the east side (resolved as the AWS CLI does; AWS_PROFILE is never used).
    #[arg(long, value_name = "PROFILE", help_heading = "East side")]
    pub east: String,
    /// AWS profile for the west side (resolved as the AWS CLI does; AWS_PROFILE is never used).
    #[arg(long, value_name = "PROFILE", help_heading = "West side")]
    pub west: String,
    /// Override the east profile's region.
    #[arg(long, value_name = "REGION", help_heading = "East side")]
    pub east_region: Option<String>,
    /// Override the west profile's region.
    #[arg(long, value_name = "REGION", help_heading = "West side")]
    pub west_region: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub profiles: ProfileArgs,
    #[command(flatten)]
    pub name: NameArg,
    /// The east VPC (default: the only non-default VPC, else the default VPC).
    #[arg(long, value_name = "VPC_ID", help_heading = "East side")]
    pub east_vpc: Option<String>,
    /// The west VPC (default: the only non-default VPC, else the default VPC).
    #[arg(long, value_name = "VPC_ID", help_heading = "West side")]
    pub west_vpc: Option<String>,
    /// The east tunnel host's subnet (default: the first public subnet in a zone that offers the instance type).
    #[arg(long, value_name = "SUBNET_ID", help_heading = "East side")]
    pub east_subnet: Option<String>,
    /// The west tunnel host's subnet (default: the first public subnet in a zone that offers the instance type).
    #[arg(long, value_name = "SUBNET_ID", help_heading = "West side")]
    pub west_subnet: Option<String>,
    /// Where the west side reaches each east CIDR, in the VPC's CIDR order (repeat per CIDR; default: planned).
    #[arg(long, value_name = "CIDR", help_heading = "East side")]
    pub east_map: Vec<Ipv4Net>,
    /// Where the east side reaches each west CIDR, in the VPC's CIDR order (repeat per CIDR; default: planned).
    #[arg(long, value_name = "CIDR", help_heading = "West side")]
    pub west_map: Vec<Ipv4Net>,
    /// Link VPCs that do not overlap (mapping is then not needed, but is still applied).
    #[arg(long, help_heading = "Link")]
    pub allow_disjoint: bool,
}

/// `plan`'s own arguments: what `up` plans with, and the cost table's.
#[derive(Debug, Clone, Args)]
pub struct PlanCommandArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub cost: CostArgs,
}

/// The cost table `plan` prints: the link's monthly cost beside AWS's managed alternatives.
#[derive(Debug, Clone, Args)]
pub struct CostArgs {
    /// GB a month across the link, both directions together.
    #[arg(long, value_name = "GB", default_value_t = 100.0, value_parser = parse_traffic, help_heading = "Cost")]
    pub traffic: f64,
    /// Price the hot-standby layout: two tunnel hosts and two Elastic IPs per side.
    #[arg(long, help_heading = "Cost")]
    pub ha: bool,
    /// The tunnel hosts' instance type to price (what `up --instance-type` would launch).
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "t3.small",
        help_heading = "Cost"
    )]
    pub instance_type: String,
    /// No cost table, and no Price List lookup.
    #[arg(long, help_heading = "Cost")]
    pub no_cost: bool,
}

/// Traffic is a finite, non-negative number of GB.
fn parse_traffic(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("use a number of GB, 0 or more (e.g. 100 or 2.5)".into()),
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Do not launch a test host per side.
    #[arg(long, help_heading = "Hosts")]
    pub no_test_hosts: bool,
    /// Who may SSH to the tunnel hosts (default: this machine's public address /32, learned over HTTPS).
    #[arg(long, value_name = "CIDR", help_heading = "Hosts")]
    pub ssh_cidr: Option<Ipv4Net>,
    /// EC2 instance type of every host (placed in zones that offer it; its architecture picks the AMI).
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "t3.small",
        help_heading = "Hosts"
    )]
    pub instance_type: String,
    /// Operating system of every host (the current AMI from the distribution's public SSM parameter).
    #[arg(long, value_enum, default_value_t = Os::Al2023, help_heading = "Hosts")]
    pub os: Os,
    /// SNS topic ARN the tunnel-down alarms notify (ALARM and OK). An alarm notifies only a topic in its own
    /// region: for sides in two regions, give one topic per region (the option twice).
    #[arg(long, value_name = "ARN", help_heading = "Alarms")]
    pub alarm_topic: Vec<String>,
    /// Names: a Route 53 private zone per side holding the other side's hosts at their mapped addresses (default).
    #[arg(long, overrides_with = "no_dns", help_heading = "Names")]
    pub dns: bool,
    /// No private zones and no names (`verify` then skips its name check).
    #[arg(long, overrides_with = "dns", help_heading = "Names")]
    pub no_dns: bool,
    /// Provision only; run `vpclink configure` and `vpclink verify` later.
    #[arg(long, help_heading = "Run")]
    pub no_configure: bool,
    /// Print every AWS call that would be made; make none that change anything.
    #[arg(long, help_heading = "Run")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// Find resources by tag with this east profile (needed when the state file is gone).
    #[arg(
        long,
        value_name = "PROFILE",
        requires = "west",
        help_heading = "East side"
    )]
    pub east: Option<String>,
    /// Find resources by tag with this west profile (needed when the state file is gone).
    #[arg(
        long,
        value_name = "PROFILE",
        requires = "east",
        help_heading = "West side"
    )]
    pub west: Option<String>,
    /// Override the east profile's region.
    #[arg(long, value_name = "REGION", help_heading = "East side")]
    pub east_region: Option<String>,
    /// Override the west profile's region.
    #[arg(long, value_name = "REGION", help_heading = "West side")]
    pub west_region: Option<String>,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MapArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// Addresses to translate.
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// Directory to write into: one folder per host.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct PinArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// The side of the host whose key to pin.
    #[arg(long, value_enum, help_heading = "Host")]
    pub side: Side,
    /// Which host on that side.
    #[arg(long, value_enum, default_value_t = Role::Tunnel, help_heading = "Host")]
    pub role: Role,
    /// The host's saved console output: EC2's GetConsoleOutput (`aws ec2 get-console-output --output text`), the
    /// EC2 console's "Get system log", or a serial log.
    #[arg(long, value_name = "FILE", help_heading = "Host")]
    pub console: PathBuf,
    /// Replace a key already pinned for that host (only when the host was really replaced or re-keyed).
    #[arg(long, help_heading = "Host")]
    pub replace: bool,
}

/// Link names become file names, AWS tag values and interface/conn names: keep them short and plain.
fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 24
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("use 1-24 letters, digits or '-', not starting with '-'".into())
    }
}
