//! Shared by the LocalStack tests: find or start LocalStack, seed two overlapping VPCs in fresh accounts, run the
//! vpclink binary against them, and read AWS back through the SDK (never through vpclink's own output).
//!
//! LocalStack: VPCLINK_LOCALSTACK_URL if set, else 127.0.0.1:$VPCLINK_LOCALSTACK_PORT (4566) if it answers, else
//! `localstack/run start` (left running; `localstack/run stop` stops it). If none of that works the tests fail,
//! on a developer's machine as in CI, unless skipping is asked for explicitly with VPCLINK_ALLOW_SKIP=1 (then they
//! skip loudly).

#![allow(dead_code)]

#[path = "../cli/mod.rs"]
pub mod cli;
pub mod seed;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::Filter;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use seed::{Seed, SeedSpec, SideSeed};

fn healthy(url: &str) -> bool {
    let Some(hostport) = url.strip_prefix("http://").map(|s| s.trim_end_matches('/')) else {
        return false;
    };
    let Ok(addrs) = std::net::ToSocketAddrs::to_socket_addrs(hostport) else {
        return false;
    };
    for addr in addrs {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let req = format!("GET /_localstack/health HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            continue;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        let compact: String = body.split_whitespace().collect();
        return compact.contains("\"ec2\":\"available\"")
            || compact.contains("\"ec2\":\"running\"");
    }
    false
}

/// Skipping is asked for explicitly or not at all: VPCLINK_ALLOW_SKIP=1, and nothing else.
pub fn allow_skip() -> bool {
    std::env::var("VPCLINK_ALLOW_SKIP").is_ok_and(|v| v == "1")
}

fn find_or_start() -> Result<String, String> {
    if let Ok(url) = std::env::var("VPCLINK_LOCALSTACK_URL") {
        return if healthy(&url) {
            Ok(url)
        } else {
            Err(format!(
                "VPCLINK_LOCALSTACK_URL={url} does not answer with EC2 available"
            ))
        };
    }
    let port = std::env::var("VPCLINK_LOCALSTACK_PORT").unwrap_or_else(|_| "4566".into());
    let url = format!("http://127.0.0.1:{port}");
    if healthy(&url) {
        return Ok(url);
    }
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack/run");
    eprintln!(
        "localstack: nothing answers at {url}; starting it with {}",
        run.display()
    );
    let out = Command::new(&run)
        .arg("start")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", run.display()))?;
    // Another test binary may have started it meanwhile: what counts is that it answers.
    if healthy(&url) {
        eprintln!("localstack: started; it keeps running after the tests (`localstack/run stop` stops it)");
        Ok(url)
    } else {
        Err(format!(
            "`localstack/run start` failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("no output")
        ))
    }
}

/// LocalStack's URL, or None (after a loud message) when it is not there and VPCLINK_ALLOW_SKIP=1; else a panic.
pub fn localstack() -> Option<String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(find_or_start) {
        Ok(url) => Some(url.clone()),
        Err(why) if allow_skip() => {
            eprintln!(
                "\n!!!!!!!! SKIPPING a LocalStack test (VPCLINK_ALLOW_SKIP=1): {why}.\n!!!!!!!! Set VPCLINK_LOCALSTACK_URL or make `localstack/run start` work (needs Python >= 3.12).\n"
            );
            None
        }
        Err(why) => panic!(
            "LocalStack is required and is not available: {why}. Set VPCLINK_LOCALSTACK_URL or make `localstack/run start` work (needs Python >= 3.12); VPCLINK_ALLOW_SKIP=1 skips instead"
        ),
    }
}

/// Skip the test (loudly) when LocalStack is not available and VPCLINK_ALLOW_SKIP=1; fail it otherwise.
#[macro_export]
macro_rules! localstack_or_skip {
    () => {
        match localstack::localstack() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A 12-digit account id nobody else in this LocalStack has used: LocalStack picks the account from the access key.
pub fn fresh_account() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = N.fetch_add(1, Ordering::SeqCst);
    let mixed = ((nanos / 1000) ^ (u64::from(std::process::id()) << 20))
        .wrapping_mul(31)
        .wrapping_add(n * 7919);
    format!("{}", 100_000_000_000 + mixed % 800_000_000_000)
}

pub fn ec2(url: &str, account: &str, region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(
            account,
            "test",
            None,
            None,
            "vpclink-tests",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// One test's world: a temp dir with AWS config/credentials for profiles east and west, and a state dir.
pub struct World {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub seed: Seed,
    pub name: String,
}

impl World {
    pub async fn new(url: &str, spec: SeedSpec) -> World {
        let seed = seed::seed(url, &spec).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::new();
        let mut creds = String::new();
        for (name, s) in [("east", &seed.east), ("west", &seed.west)] {
            config.push_str(&format!(
                "[profile {name}]\nregion = {}\nendpoint_url = {url}\n\n",
                s.region
            ));
            creds.push_str(&format!(
                "[{name}]\naws_access_key_id = {}\naws_secret_access_key = test\n\n",
                s.account
            ));
        }
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("credentials"), creds).unwrap();
        World {
            dir,
            url: url.to_string(),
            seed,
            name: "vpclink".into(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir()
            .join("vpclink")
            .join(format!("{}.json", self.name))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        cli::command(self.dir.path(), &self.state_dir(), args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        cli::run(self.command(args), args)
    }

    /// `up` with what these tests always need: both profiles, no SSH (nothing boots on LocalStack), a fixed SSH CIDR.
    pub fn up_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "up",
            "--east",
            "east",
            "--west",
            "west",
            "--no-configure",
            "--ssh-cidr",
            "203.0.113.0/24",
            "--name",
        ];
        a.push(&self.name);
        a.extend_from_slice(extra);
        a
    }

    pub fn up(&self, extra: &[&str]) -> Output {
        self.run(&self.up_args(extra))
    }

    pub fn down(&self) -> Output {
        self.run(&[
            "down", "--name", &self.name, "--east", "east", "--west", "west",
        ])
    }

    pub fn side(&self, side: &str) -> &SideSeed {
        if side == "east" {
            &self.seed.east
        } else {
            &self.seed.west
        }
    }

    pub fn client(&self, side: &str) -> aws_sdk_ec2::Client {
        let s = self.side(side);
        ec2(&self.url, &s.account, &s.region)
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.state_file()).expect("state file"))
            .expect("state json")
    }
}

pub fn tag(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Resources carrying the link's tag on one side, by kind, counted through the SDK.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct Counts {
    pub instances: usize,
    pub elastic_ips: usize,
    pub security_groups: usize,
    pub key_pairs: usize,
    /// Routes in the VPC's tables that point at a network interface (LocalStack has nothing else that does).
    pub eni_routes: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.instances + self.elastic_ips + self.security_groups + self.key_pairs + self.eni_routes
    }
}

/// How long the strict layer (localstack/strict) may show a read that lags a change: what was created a moment ago
/// is hidden and what was deleted still listed for this long (its VPCLINK_STRICT_CONSISTENCY_MS and _STALE_MS).
pub fn settle() -> Duration {
    let ms = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    Duration::from_millis(
        ms("VPCLINK_STRICT_CONSISTENCY_MS", 1500).max(ms("VPCLINK_STRICT_STALE_MS", 1500)) + 300,
    )
}

/// Counts as AWS settles on them: the harness reads the truth, after the lag a client would see has passed.
pub async fn count(w: &World, side: &str) -> Counts {
    tokio::time::sleep(settle()).await;
    let ec2 = w.client(side);
    let link = || tag("vpclink:link", &w.name);
    let instances = ec2
        .describe_instances()
        .filters(link())
        .filters(filter("instance-state-name", "pending"))
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum::<usize>()
        + ec2
            .describe_instances()
            .filters(link())
            .filters(filter("instance-state-name", "running"))
            .send()
            .await
            .unwrap()
            .reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum::<usize>();
    let elastic_ips = ec2
        .describe_addresses()
        .filters(link())
        .send()
        .await
        .unwrap()
        .addresses()
        .len();
    let security_groups = ec2
        .describe_security_groups()
        .filters(link())
        .send()
        .await
        .unwrap()
        .security_groups()
        .len();
    let key_pairs = ec2
        .describe_key_pairs()
        .filters(link())
        .send()
        .await
        .unwrap()
        .key_pairs()
        .len();
    let eni_routes = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", &w.side(side).vpc_id))
        .send()
        .await
        .unwrap()
        .route_tables()
        .iter()
        .flat_map(|t| t.routes())
        .filter(|r| r.network_interface_id().is_some_and(|n| !n.is_empty()))
        .count();
    Counts {
        instances,
        elastic_ips,
        security_groups,
        key_pairs,
        eni_routes,
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One HTTP/1.0 exchange with the strict layer's control endpoint (no HTTP client crate for two calls).
fn strict_http(url: &str, method: &str, path: &str, body: &str) -> Result<String, String> {
    let hostport = url
        .strip_prefix("http://")
        .map(|s| s.trim_end_matches('/'))
        .ok_or("not an http URL")?;
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(head.lines().next().unwrap_or("no answer").to_string())
    }
}

/// Per-account settings of the strict layer in front of LocalStack (localstack/strict): `settings` is a JSON
/// object's members, e.g. `"eip_quota": 3`. Panics when no strict layer answers: these tests are about it.
pub fn strict_config(url: &str, account: &str, settings: &str) {
    let body = format!("{{\"account\": \"{account}\", {settings}}}");
    strict_http(url, "POST", "/_strict/config", &body).unwrap_or_else(|e| {
        panic!("the strict layer (localstack/strict) did not take {body} at {url}: {e}; is LocalStack started by localstack/run with VPCLINK_STRICT unset?")
    });
}

/// The strict layer's counters for one account, as JSON.
pub fn strict_stats(url: &str, account: &str) -> serde_json::Value {
    let body = strict_http(url, "GET", &format!("/_strict/stats?account={account}"), "")
        .unwrap_or_else(|e| panic!("no strict layer stats at {url}: {e}"));
    serde_json::from_str(&body).expect("stats JSON")
}
