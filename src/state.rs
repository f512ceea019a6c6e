//! The state file: what this machine created for a link, written after every step so that a crash loses nothing.
//! It never holds a secret; the link's SSH private key lives beside it with mode 0600.

use crate::link::LinkPlan;
use crate::side::Side;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub schema: u32,
    pub name: String,
    pub plan: LinkPlan,
    pub options: Options,
    pub east: SideState,
    pub west: SideState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    pub os: Os,
    pub instance_type: String,
    pub test_hosts: bool,
    /// Who may SSH to the tunnel hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_cidr: Option<ipnet::Ipv4Net>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    #[default]
    Al2023,
    Ubuntu2404,
    /// A Debian host (the lab's guests); configured like Ubuntu.
    Debian,
}

/// What exists on one side. Every id is recorded the moment AWS returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_sg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_sg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Host>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Host>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip: Option<ElasticIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<OwnedRoute>,
    /// Random, made by the first launch of this link's life and kept while it lives (a resumed `up` reuses it, so a
    /// retried RunInstances is answered with the same host); `down` forgets it with the state. EC2 remembers a
    /// ClientToken for at least 24 h after the instance is terminated, so the next link of the same name must not
    /// present the same tokens. Not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_nonce: Option<String>,
    /// Set just before AllocateAddress and cleared once its answer is recorded in `eip`: a run that finds it set
    /// knows an earlier run may have allocated an address that is not listed yet (AllocateAddress takes no
    /// ClientToken, and reads lag), and looks for it before allocating another.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eip_allocating: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Tunnel,
    Test,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tunnel => "tunnel",
            Role::Test => "test",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    pub private_ip: Ipv4Addr,
    /// For a tunnel host: its Elastic IP, which the host itself never sees on an interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<Ipv4Addr>,
    pub os: Os,
    /// How this machine reaches the host's sshd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshTarget>,
    /// The pinned OpenSSH host key line ("ssh-ed25519 AAAA..."), from console output or first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// Learned by configure: the interface holding the route to the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<String>,
    /// Learned by configure: the libreswan RSA public key ("0s..."); public, so it may live here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipsec_pubkey: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Reached through an SSH channel opened on this side's tunnel host (test hosts in private subnets).
    #[serde(default)]
    pub via_tunnel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticIp {
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnedRoute {
    pub route_table_id: String,
    pub destination: ipnet::Ipv4Net,
}

impl LinkState {
    pub fn new(plan: LinkPlan, options: Options) -> Self {
        LinkState {
            schema: SCHEMA,
            name: plan.name.clone(),
            plan,
            options,
            east: SideState::default(),
            west: SideState::default(),
        }
    }

    pub fn side(&self, side: Side) -> &SideState {
        match side {
            Side::East => &self.east,
            Side::West => &self.west,
        }
    }

    pub fn side_mut(&mut self, side: Side) -> &mut SideState {
        match side {
            Side::East => &mut self.east,
            Side::West => &mut self.west,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no state for link '{name}' at {path}; run `vpclink up` first, or pass --east/--west so `down` can find resources by tag")]
    Missing { name: String, path: PathBuf },
    #[error("cannot read state {path}: {source}; fix or remove the file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state {path} is not valid: {source}; fix or remove the file")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("state {path} has schema {found}, this vpclink understands {SCHEMA}; use a matching vpclink")]
    Schema { path: PathBuf, found: u32 },
    #[error(
        "cannot write state {path}: {source}; check the directory's permissions and free space"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("set HOME or XDG_STATE_HOME so vpclink knows where to keep link state")]
    NoHome,
}

/// `$XDG_STATE_HOME/vpclink`, else `~/.local/state/vpclink`.
pub fn state_dir() -> Result<PathBuf, StateError> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = non_empty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(x).join("vpclink"));
    }
    non_empty("HOME")
        .map(|h| PathBuf::from(h).join(".local/state/vpclink"))
        .ok_or(StateError::NoHome)
}

/// Where one link's files live.
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub dir: PathBuf,
    pub name: String,
}

impl StateFiles {
    pub fn for_link(name: &str) -> Result<Self, StateError> {
        Ok(StateFiles {
            dir: state_dir()?,
            name: name.to_string(),
        })
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.name))
    }

    /// The link's SSH private key (OpenSSH format, 0600). Its public half is imported into both regions.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.name))
    }

    pub fn exists(&self) -> bool {
        self.state_path().exists()
    }

    pub fn load(&self) -> Result<LinkState, StateError> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    name: self.name.clone(),
                    path,
                })
            }
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let state: LinkState = serde_json::from_str(&text).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        if state.schema != SCHEMA {
            return Err(StateError::Schema {
                path,
                found: state.schema,
            });
        }
        Ok(state)
    }

    /// Write-to-temp, fsync, rename: a reader (or a crash) sees the old file or the new one, never half of one.
    pub fn save(&self, state: &LinkState) -> Result<(), StateError> {
        let path = self.state_path();
        let text = serde_json::to_string_pretty(state).expect("state serializes");
        write_atomic(&path, text.as_bytes(), 0o644)
            .map_err(|source| StateError::Write { path, source })
    }

    pub fn remove(&self) -> Result<(), StateError> {
        for path in [self.state_path(), self.key_path()] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StateError::Write { path, source }),
            }
        }
        Ok(())
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
