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
    /// Amazon Linux 2023 (login ec2-user).
    #[default]
    Al2023,
    /// Ubuntu Server 24.04 LTS (login ubuntu).
    Ubuntu2404,
    // States written before Debian 13 was supported say "debian": that was Debian 12 (the bookworm AMI, the lab's
    // guests), so they are read as Debian 12 (and written back as "debian12").
    /// Debian 12 "bookworm", the Debian cloud team's AMI (login admin).
    #[serde(alias = "debian")]
    #[value(name = "debian12")]
    Debian12,
    /// Debian 13 "trixie", the Debian cloud team's AMI (login admin).
    #[value(name = "debian13")]
    Debian13,
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
    /// The tunnel host's IAM role, its policy and instance profile, and the tunnel-down alarm (issue 13). Absent in
    /// states written before; `up` makes and records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsState>,
    /// The Route 53 private zone holding the OTHER side's names (`up --dns`, the default). Absent: the link has no
    /// names (made with `--no-dns`, or before names existed); `verify` then skips its name check and says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<crate::names::ZoneState>,
    /// `up --no-dns` was asked for: a later `up` without `--dns` keeps the link without names.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_names: bool,
}

/// What `up` made so the tunnel host can publish its figures, and the alarm on them. Names follow the metrics
/// contract (`vpclink-<link>-<side>-host`, `vpclink-<link>-<side>-tunnel-down`); ARNs as IAM returned them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The inline policy on the role (only cloudwatch:PutMetricData in the link's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    /// The SNS topic the alarm notifies (`--alarm-topic`), in this side's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_topic: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The tunnel host (public subnet, Elastic IP).
    Tunnel,
    /// The test host verify reaches across the mapping.
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
    /// Learned by configure: the libreswan version the host runs ("5.2"), for `render` offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libreswan: Option<String>,
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
    /// Parsed, but not a state vpclink could have written (a hand edit, a merge): refused before anything uses it.
    #[error("state {path} is not valid: {}: {}; fix: {}, or remove the file (`vpclink down --east P --west P` still finds the link's resources by tag)", .invalid.field, .invalid.problem, .invalid.fix)]
    Invalid { path: PathBuf, invalid: Invalid },
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

/// What is wrong with a state, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The JSON path of the field: "plan.east.mapped[0]".
    pub field: String,
    pub problem: String,
    pub fix: String,
}

/// The rules every state vpclink writes keeps, which the rest of vpclink relies on (translation, routes, rules):
/// each side has at least one CIDR and exactly one mapped range per CIDR, of the same size, all network addresses;
/// the ids that name AWS resources are not empty; every owned route is for a mapped range of the peer.
pub fn validate(state: &LinkState) -> Result<(), Invalid> {
    let bad = |field: String, problem: String, fix: String| {
        Err(Invalid {
            field,
            problem,
            fix,
        })
    };
    if state.name.is_empty() || state.name != state.plan.name {
        return bad(
            "plan.name".into(),
            format!(
                "'{}' differs from the state's name '{}'",
                state.plan.name, state.name
            ),
            format!("set both to the link's name ('{}')", state.name),
        );
    }
    for side in Side::BOTH {
        let p = state.plan.side(side);
        let at = |f: &str| format!("plan.{side}.{f}");
        for (f, v) in [
            ("profile", &p.profile),
            ("region", &p.region),
            ("vpc_id", &p.vpc_id),
        ] {
            if v.trim().is_empty() {
                return bad(
                    at(f),
                    "is empty".into(),
                    format!("set it to the {side} side's {f} the link was made with"),
                );
            }
        }
        if p.cidrs.is_empty() {
            return bad(
                at("cidrs"),
                "lists no CIDR".into(),
                format!("list the {side} VPC's IPv4 CIDRs (`vpclink plan` prints them)"),
            );
        }
        if p.mapped.len() != p.cidrs.len() {
            return bad(
                at("mapped"),
                format!(
                    "has {} range(s) for {} CIDR(s); there is one mapped range per CIDR, in order",
                    p.mapped.len(),
                    p.cidrs.len()
                ),
                format!(
                    "give each of plan.{side}.cidrs its mapped range (the ranges the routes and rules use)"
                ),
            );
        }
        for (i, (c, m)) in p.cidrs.iter().zip(&p.mapped).enumerate() {
            for (f, n) in [("cidrs", c), ("mapped", m)] {
                if n.network() != n.addr() {
                    return bad(
                        format!("plan.{side}.{f}[{i}]"),
                        format!("{n} is not a network address"),
                        format!("write it as {}", n.trunc()),
                    );
                }
            }
            if c.prefix_len() != m.prefix_len() {
                return bad(
                    format!("plan.{side}.mapped[{i}]"),
                    format!("{m} is not the size of the CIDR it maps, {c}"),
                    format!(
                        "restore the /{} range it had (a mapped range is as large as its CIDR)",
                        c.prefix_len()
                    ),
                );
            }
        }
    }
    for side in Side::BOTH {
        let peer_mapped = &state.plan.side(side.peer()).mapped;
        for (i, r) in state.side(side).routes.iter().enumerate() {
            if !peer_mapped.contains(&r.destination) {
                return bad(
                    format!("{side}.routes[{i}].destination"),
                    format!(
                        "{} is none of the {} side's mapped ranges",
                        r.destination,
                        side.peer()
                    ),
                    format!(
                        "set it to one of plan.{}.mapped, or drop the entry",
                        side.peer()
                    ),
                );
            }
            if r.route_table_id.trim().is_empty() {
                return bad(
                    format!("{side}.routes[{i}].route_table_id"),
                    "is empty".into(),
                    "set it to the route table's id, or drop the entry".into(),
                );
            }
        }
    }
    Ok(())
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
        validate(&state).map_err(|invalid| StateError::Invalid { path, invalid })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LinkPlan, SidePlan};
    use proptest::prelude::*;

    fn side_plan(side: &str, mapped: &str) -> SidePlan {
        SidePlan {
            profile: format!("p-{side}"),
            region: "eu-west-1".into(),
            account: "111111111111".into(),
            vpc_id: format!("vpc-{side}"),
            cidrs: vec![
                "10.0.0.0/16".parse().unwrap(),
                "10.9.0.0/24".parse().unwrap(),
            ],
            mapped: vec![mapped.parse().unwrap(), "172.16.0.0/24".parse().unwrap()],
            route_tables: vec![format!("rtb-{side}")],
            public_subnet: Some(format!("subnet-{side}")),
            skipped_tables: Vec::new(),
        }
    }

    fn sample() -> LinkState {
        let plan = LinkPlan {
            name: "lnk".into(),
            overlapping: true,
            east: side_plan("east", "10.1.0.0/16"),
            west: side_plan("west", "10.2.0.0/16"),
        };
        let mut s = LinkState::new(
            plan,
            Options {
                os: Os::Al2023,
                instance_type: "t3.micro".into(),
                test_hosts: true,
                ssh_cidr: Some("198.51.100.7/32".parse().unwrap()),
            },
        );
        s.east.routes.push(OwnedRoute {
            route_table_id: "rtb-east".into(),
            destination: "10.2.0.0/16".parse().unwrap(),
        });
        s.east.eip = Some(ElasticIp {
            allocation_id: "eipalloc-1".into(),
            public_ip: "203.0.113.9".parse().unwrap(),
            association_id: None,
        });
        s.east.tunnel = Some(Host {
            instance_id: Some("i-1".into()),
            eni_id: Some("eni-1".into()),
            private_ip: "10.0.0.10".parse().unwrap(),
            public_ip: Some("203.0.113.9".parse().unwrap()),
            os: Os::Al2023,
            ssh: None,
            host_key: None,
            uplink: None,
            ipsec_pubkey: None,
            libreswan: None,
        });
        s
    }

    fn files_with(text: &str) -> (tempfile::TempDir, StateFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles {
            dir: dir.path().to_path_buf(),
            name: "lnk".into(),
        };
        std::fs::write(files.state_path(), text).unwrap();
        (dir, files)
    }

    /// Load `v` as a state file: the error's message and exit code, or the state.
    fn load_value(v: &serde_json::Value) -> Result<LinkState, (String, i32)> {
        let (_dir, files) = files_with(&v.to_string());
        files.load().map_err(|e| {
            let msg = e.to_string();
            (msg, crate::Error::from(e).exit_code())
        })
    }

    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<LinkState, (String, i32)> {
        let mut v = serde_json::to_value(sample()).unwrap();
        edit(&mut v);
        load_value(&v)
    }

    #[test]
    fn a_valid_state_loads() {
        assert_eq!(edited(|_| {}).unwrap(), sample());
    }

    /// States written before Debian 13 say "debian" (Debian 12): they still load, as Debian 12, and are written back
    /// with the new name.
    #[test]
    fn an_old_debian_state_reads_as_debian12_and_is_written_as_debian12() {
        let s = edited(|v| {
            v["options"]["os"] = "debian".into();
            v["east"]["tunnel"]["os"] = "debian".into();
        })
        .unwrap();
        assert_eq!(s.options.os, Os::Debian12);
        assert_eq!(s.east.tunnel.as_ref().unwrap().os, Os::Debian12);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["options"]["os"], "debian12");
        for (os, name) in [
            (Os::Al2023, "al2023"),
            (Os::Ubuntu2404, "ubuntu2404"),
            (Os::Debian12, "debian12"),
            (Os::Debian13, "debian13"),
        ] {
            assert_eq!(serde_json::to_value(os).unwrap(), name);
            assert_eq!(serde_json::from_value::<Os>(name.into()).unwrap(), os);
        }
    }
    /// A hand edit of a state's JSON.
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

    #[test]
    fn hand_edits_are_refused_naming_the_field_and_the_fix_with_exit_2() {
        let cases: Vec<(&str, Edit)> = vec![
            (
                "plan.east.mapped",
                Box::new(|v| {
                    v["plan"]["east"]["mapped"].as_array_mut().unwrap().pop();
                }),
            ),
            (
                "plan.west.mapped[0]",
                Box::new(|v| v["plan"]["west"]["mapped"][0] = "10.2.0.0/24".into()),
            ),
            (
                "plan.east.cidrs[1]",
                Box::new(|v| v["plan"]["east"]["cidrs"][1] = "10.9.0.7/24".into()),
            ),
            (
                "plan.west.cidrs",
                Box::new(|v| {
                    v["plan"]["west"]["cidrs"] = serde_json::json!([]);
                    v["plan"]["west"]["mapped"] = serde_json::json!([]);
                }),
            ),
            (
                "plan.name",
                Box::new(|v| v["plan"]["name"] = "other".into()),
            ),
            (
                "plan.east.vpc_id",
                Box::new(|v| v["plan"]["east"]["vpc_id"] = "".into()),
            ),
            (
                "east.routes[0].destination",
                Box::new(|v| v["east"]["routes"][0]["destination"] = "10.2.0.0/8".into()),
            ),
        ];
        for (field, edit) in cases {
            let (msg, code) = edited(edit).expect_err(field);
            assert!(msg.contains(field), "{field}: {msg}");
            assert!(msg.contains("fix"), "{field}: {msg}");
            assert_eq!(code, 2, "{field}: {msg}");
        }
        // Not JSON, or not a state: refused with exit 2 too.
        let text = serde_json::to_string(&sample()).unwrap();
        let (_d, files) = files_with(&text[..text.len() / 2]);
        assert_eq!(crate::Error::from(files.load().unwrap_err()).exit_code(), 2);
        let (msg, code) = edited(|v| v["east"]["eip"]["public_ip"] = "1.2.3".into()).unwrap_err();
        assert_eq!(code, 2, "{msg}");
    }

    /// One random edit of a state's JSON: a field replaced by something plausible or not, an element dropped.
    fn mutate(v: &mut serde_json::Value, path: &[usize], pick: usize, choice: u8) {
        let junk = [
            serde_json::json!("10.0.0.0/33"),
            serde_json::json!("0.0.0.0/0"),
            serde_json::json!("255.255.255.255/32"),
            serde_json::json!("255.255.255.0/24"),
            serde_json::json!("10.1.0.0/8"),
            serde_json::json!("10.1.2.3/16"),
            serde_json::json!("1.2.3"),
            serde_json::json!(""),
            serde_json::json!(null),
            serde_json::json!(-1),
            serde_json::json!(4294967296u64),
            serde_json::json!([]),
            serde_json::json!({}),
        ];
        let (first, rest) = match path.split_first() {
            Some((&i, rest)) => (Some(i), rest),
            None => (None, path),
        };
        let child = match (first, &mut *v) {
            (Some(i), serde_json::Value::Object(m)) if !m.is_empty() => {
                let k = m.keys().nth(i % m.len()).unwrap().clone();
                m.get_mut(&k)
            }
            (Some(i), serde_json::Value::Array(a)) if !a.is_empty() => {
                let n = a.len();
                a.get_mut(i % n)
            }
            _ => None,
        };
        if let Some(c) = child {
            return mutate(c, rest, pick, choice);
        }
        let cur = v;
        match cur {
            serde_json::Value::Array(a) if choice.is_multiple_of(3) && !a.is_empty() => {
                a.remove(pick % a.len());
            }
            serde_json::Value::Object(m) if choice.is_multiple_of(3) && !m.is_empty() => {
                let k = m.keys().nth(pick % m.len()).unwrap().clone();
                m.remove(&k);
            }
            other => *other = junk[pick % junk.len()].clone(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random edits and truncations of a valid state never panic in load, nor in map/translate of what loads;
        /// what is refused is refused as bad input (exit 2).
        #[test]
        fn random_state_edits_never_panic(
            edits in proptest::collection::vec(
                (proptest::collection::vec(0usize..64, 1..6), any::<usize>(), any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..4000),
            addrs in proptest::collection::vec(any::<u32>(), 8),
        ) {
            let mut v = serde_json::to_value(sample()).unwrap();
            for (path, pick, choice) in &edits {
                mutate(&mut v, path, *pick, *choice);
            }
            let mut text = serde_json::to_string_pretty(&v).unwrap();
            if let Some(c) = cut {
                let c = c.min(text.len());
                text.truncate(c);
            }
            let (_dir, files) = files_with(&text);
            match files.load() {
                Ok(state) => {
                    let plan = state.plan.mappings();
                    let mut probes: Vec<Ipv4Addr> = addrs.iter().map(|&a| Ipv4Addr::from(a)).collect();
                    for m in plan.east.iter().chain(&plan.west) {
                        probes.extend([m.real.network(), m.real.broadcast(), m.mapped.network(), m.mapped.broadcast()]);
                    }
                    for a in probes {
                        let _ = crate::plan::translate(&plan, a);
                    }
                }
                Err(e) => {
                    let code = crate::Error::from(e).exit_code();
                    prop_assert_eq!(code, 2);
                }
            }
        }
    }
}
