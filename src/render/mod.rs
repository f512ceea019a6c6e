//! Everything configure pushes to a host, as plain data: files with their modes, and the commands that apply them.
//! Pure functions of the link plan and the host facts, so `vpclink render` shows exactly what `configure` does and
//! the golden files in tests/golden/ are what reviewers read.

mod apply;
pub mod cloud_init;
mod firewall;
mod libreswan;
pub use libreswan::Libreswan;
pub mod metrics;
mod modules;
pub mod mtu;
mod sysctl;
mod unit;

use crate::link::LinkPlan;
use crate::plan::Mapping;
use crate::side::Side;
use crate::state::Os;
use serde::Serialize;
use std::net::Ipv4Addr;

/// Interface names on the tunnel host. A dummy interface carries the host's own Elastic IP: EC2 NATs that address
/// 1:1 and never shows it to the host, yet GRE and the IPsec traffic selectors must use it.
pub const DUMMY_IF: &str = "vpclink0";
pub const GRE_IF: &str = "vpclink-gre";
/// GRE inner addresses: link-local, so they never collide with either VPC or a mapped range.
pub const GRE_INNER: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 248, 1),
    Ipv4Addr::new(169, 254, 248, 2),
];
pub const GRE_INNER_LEN: u8 = 30;

/// (this side's, the peer's) GRE inner address.
pub fn gre_inner(side: Side) -> (Ipv4Addr, Ipv4Addr) {
    match side {
        Side::East => (GRE_INNER[0], GRE_INNER[1]),
        Side::West => (GRE_INNER[1], GRE_INNER[0]),
    }
}

/// What configure learned about one tunnel host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelFacts {
    pub private_ip: Ipv4Addr,
    /// The Elastic IP, as the peer and the internet see this host.
    pub public_ip: Ipv4Addr,
    /// The interface holding the default route (eth0, ens5...).
    pub uplink: String,
    pub os: Os,
    /// libreswan RSA public key as `ipsec showhostkey` prints it after `rsasigkey=` ("0sAw...").
    pub rsa_pubkey: String,
    /// The libreswan the host runs (`ipsec --version`), which decides the few lines that differ between 4 and 5.
    pub libreswan: Libreswan,
}

/// Both ends, seen from `side`.
#[derive(Debug, Clone)]
pub struct TunnelView<'a> {
    pub link: &'a LinkPlan,
    pub side: Side,
    pub local: &'a TunnelFacts,
    pub peer: &'a TunnelFacts,
}

impl TunnelView<'_> {
    pub fn conn_name(&self) -> String {
        format!("vpclink-{}", self.link.name)
    }
    /// This side's real ranges and the mapped ranges the peer reaches them at.
    pub fn own(&self) -> Vec<Mapping> {
        self.link.side(self.side).mappings()
    }
    /// The peer's real ranges and where this side reaches them.
    pub fn remote(&self) -> Vec<Mapping> {
        self.link.side(self.side.peer()).mappings()
    }
    pub fn inner(&self) -> (Ipv4Addr, Ipv4Addr) {
        gre_inner(self.side)
    }
    pub fn dir(&self) -> String {
        format!("/etc/vpclink/{}", self.link.name)
    }
    pub fn unit_name(&self) -> String {
        format!("vpclink-{}.service", self.link.name)
    }
    pub fn header(&self, what: &str) -> String {
        format!(
            "# vpclink link '{}', {} tunnel host: {what}\n# Written by vpclink; local edits are replaced on the next `vpclink configure`.\n",
            self.link.name, self.side
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    pub path: String,
    pub mode: u32,
    pub content: String,
}

/// What configure does to a tunnel host: write `files`, then, if any of them changed, run `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    pub files: Vec<FileSpec>,
    /// Shell commands, run in order as root, each safe to repeat.
    pub apply: Vec<String>,
}

/// What configure pushes, with the metrics agent's endpoint from the settings (VPCLINK_AGENT_ENDPOINT_URL).
pub fn tunnel_host(view: &TunnelView) -> HostConfig {
    tunnel_host_with(view, crate::settings::get().agent_endpoint_url.as_deref())
}

/// [`tunnel_host`] with every input explicit: `agent_endpoint_url` is where the metrics agent publishes (None: the
/// side's regional CloudWatch endpoint).
pub fn tunnel_host_with(view: &TunnelView, agent_endpoint_url: Option<&str>) -> HostConfig {
    let dir = view.dir();
    let files = vec![
        FileSpec {
            path: format!("/etc/modules-load.d/vpclink-{}.conf", view.link.name),
            mode: 0o644,
            content: modules::render(view),
        },
        FileSpec {
            path: format!("/etc/sysctl.d/90-vpclink-{}.conf", view.link.name),
            mode: 0o644,
            content: sysctl::render(view),
        },
        FileSpec {
            path: format!("{dir}/iptables.rules"),
            mode: 0o600,
            content: firewall::render(view),
        },
        FileSpec {
            path: format!("{dir}/up.sh"),
            mode: 0o755,
            content: apply::up_script(view),
        },
        FileSpec {
            path: format!("/etc/systemd/system/{}", view.unit_name()),
            mode: 0o644,
            content: unit::render(view),
        },
        FileSpec {
            path: format!("/etc/ipsec.d/{}.conf", view.conn_name()),
            mode: 0o644,
            content: libreswan::render(view),
        },
        FileSpec {
            path: metrics::AGENT_PATH.to_string(),
            mode: 0o755,
            content: metrics::AGENT.to_string(),
        },
        FileSpec {
            path: metrics::CONFIG_PATH.to_string(),
            mode: 0o644,
            content: metrics::config(view, agent_endpoint_url),
        },
        FileSpec {
            path: format!("/etc/systemd/system/{}", metrics::UNIT),
            mode: 0o644,
            content: metrics::unit(view),
        },
    ];
    HostConfig {
        files,
        apply: apply::commands(view),
    }
}

/// Commands run before rendering: wait for first boot, make this host's libreswan RSA key if it has none, and print
/// its public half (the only key material that ever leaves a host). Output ends with one line `rsasigkey=0s...`.
pub fn prepare_tunnel_host() -> String {
    apply::PREPARE.to_string()
}

/// The libreswan version line of `prepare_tunnel_host` output ("libreswan-version: Libreswan 5.2").
pub fn parse_libreswan(output: &str) -> Option<Libreswan> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("libreswan-version:"))
        .find_map(Libreswan::parse)
}

/// Extract the key from `prepare_tunnel_host` output.
pub fn parse_rsasigkey(output: &str) -> Option<String> {
    output
        .lines()
        .filter_map(|l| l.trim().split_once("rsasigkey="))
        .map(|(_, k)| k.trim().to_string())
        .rfind(|k| k.starts_with("0s") && k.len() > 16)
}
