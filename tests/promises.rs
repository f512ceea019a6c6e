//! The README's promises that had no test of their own, each tested through the binary as a user runs it: `render
//! --out`, `map`, trust on first use and its warning, the state file (atomic, no secret, the key 0600 beside it),
//! `AWS_PROFILE` ignored, `down` never touching a route to a live host, a failing leak check, `status` on
//! security-group drift, and each `VPCLINK_*` setting (a bad value refused, a good one has its effect).
//!
//! The first group needs no AWS at all (hand-written states); the rest run against LocalStack behind the strict layer
//! (see tests/localstack/mod.rs), with `up --no-configure`: nothing boots there.

mod localstack;

use localstack::{count, stderr, stdout, strict_config, Counts, SeedSpec, World};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The harness's hermetic vpclink runner (loaded once, by `localstack`).
use localstack::cli;

// ---- hand-written states (no AWS) -------------------------------------------------------------------------------

/// The state of the goldens' link (tests/render_golden.rs): link "golden", east 10.0.0.0/16 + 10.5.0.0/24 mapped at
/// 10.1.0.0/16 + 10.3.0.0/24, west 10.0.0.0/16 mapped at 10.2.0.0/16, both tunnel hosts at 10.0.0.10 on ens5 with
/// the goldens' Elastic IPs and RSA keys. `ssh` is each tunnel host's SSH target (host, port, user).
fn golden_state(os: &str, ssh: Option<(&str, u16, &str)>) -> String {
    let side = |s: &str, cidrs: &str, mapped: &str| {
        format!(
            r#"{{"profile": "{s}", "region": "eu-west-1", "account": "111111111111", "vpc_id": "vpc-{s}",
                "cidrs": [{cidrs}], "mapped": [{mapped}], "route_tables": ["rtb-{s}-main"]}}"#
        )
    };
    let host = |eip: &str, key: &str| {
        let ssh = ssh
            .map(|(h, p, u)| format!(r#", "ssh": {{"host": "{h}", "port": {p}, "user": "{u}"}}"#))
            .unwrap_or_default();
        format!(
            r#"{{"tunnel": {{"private_ip": "10.0.0.10", "public_ip": "{eip}", "os": "{os}", "uplink": "ens5",
                 "ipsec_pubkey": "{key}"{ssh}}}}}"#
        )
    };
    format!(
        r#"{{"schema": 1, "name": "golden",
            "plan": {{"name": "golden", "overlapping": true, "east": {}, "west": {}}},
            "options": {{"os": "{os}", "instance_type": "t3.small", "test_hosts": false, "ssh_cidr": "203.0.113.0/24"}},
            "east": {}, "west": {}}}"#,
        side(
            "east",
            r#""10.0.0.0/16", "10.5.0.0/24""#,
            r#""10.1.0.0/16", "10.3.0.0/24""#
        ),
        side("west", r#""10.0.0.0/16""#, r#""10.2.0.0/16""#),
        host("198.51.100.10", "0sAwEAAeastEXAMPLEKEY"),
        host("203.0.113.10", "0sAwEAAwestEXAMPLEKEY"),
    )
}

/// A temp dir holding an (empty) AWS config pair and a state dir with `state` as link "golden".
fn offline_world(state: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config"), "").unwrap();
    std::fs::write(tmp.path().join("credentials"), "").unwrap();
    let dir = tmp.path().join("state/vpclink");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("golden.json"), state).unwrap();
    tmp
}

/// vpclink in an offline world; AWS is made unreachable too (a dead endpoint), so that any call to it would fail.
fn offline_command(tmp: &Path, args: &[&str]) -> Command {
    let mut c = cli::command(tmp, &tmp.join("state"), args);
    c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "AKIDOFFLINE")
        .env("AWS_SECRET_ACCESS_KEY", "offline")
        .env("AWS_REGION", "eu-west-1");
    c
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `vpclink render --name golden --out DIR` on a state, offline; must exit 0. The folder lives as long as the TempDir.
fn render_offline(state: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = offline_world(state);
    let out_dir = tmp.path().join("rendered");
    let args = [
        "render",
        "--name",
        "golden",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = cli::run(offline_command(tmp.path(), &args), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (tmp, out_dir)
}

/// `render --out DIR` (the command) writes, per tunnel host, exactly the files the goldens hold, each with its mode,
/// plus prepare.sh and apply.sh (the commands configure runs), and the host's first-boot user-data (the golden
/// user-data/tunnel.yaml, which is `cloud_init::user_data`, the bytes `up` sends), and nothing else.
fn render_matches_goldens(os: &str, os_dir: &str) {
    let (_tmp, out_dir) = render_offline(&golden_state(os, None));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(os_dir);
    let mut problems = Vec::new();
    for host in ["east-tunnel", "west-tunnel"] {
        let (want_root, got_root) = (golden.join(host), out_dir.join(host));
        let want = files_under(&want_root);
        let mut got = files_under(&got_root);
        let user_data = got_root.join("user-data");
        assert!(
            got.contains(&PathBuf::from("user-data")),
            "{host}: render --out writes no user-data"
        );
        got.retain(|p| p != Path::new("user-data"));
        assert_eq!(got, want, "{host}: the files render --out writes");
        let golden_user_data =
            std::fs::read_to_string(golden.join("user-data/tunnel.yaml")).unwrap();
        if std::fs::read_to_string(&user_data).unwrap() != golden_user_data {
            problems.push(format!(
                "{host}/user-data differs from the golden user-data/tunnel.yaml"
            ));
        }
        if mode(&user_data) != 0o644 {
            problems.push(format!(
                "{host}/user-data: mode {:o}, want 644",
                mode(&user_data)
            ));
        }
        for rel in &want {
            let g = std::fs::read_to_string(want_root.join(rel)).unwrap();
            let w = std::fs::read_to_string(got_root.join(rel)).unwrap();
            let m = mode(&got_root.join(rel));
            let name = format!("{host}/{}", rel.display());
            if rel == Path::new("apply.sh") {
                // The golden holds the commands; the command's file is a script around them.
                if !w.starts_with("#!/bin/sh\n") || !w.ends_with(&g) {
                    problems.push(format!(
                        "{name}: not a script ending in the golden commands:\n{w}"
                    ));
                }
                if m != 0o755 {
                    problems.push(format!("{name}: mode {m:o}, want 755"));
                }
            } else if rel == Path::new("prepare.sh") {
                if w != g {
                    problems.push(format!("{name} differs from the golden"));
                }
                if m != 0o755 {
                    problems.push(format!("{name}: mode {m:o}, want 755"));
                }
            } else {
                let (first, body) = g.split_once('\n').unwrap();
                let want_mode =
                    u32::from_str_radix(first.strip_prefix("# mode ").unwrap(), 8).unwrap();
                if w != body {
                    problems.push(format!("{name} differs from the golden"));
                }
                if m != want_mode {
                    problems.push(format!("{name}: mode {m:o}, want {want_mode:o}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn render_out_writes_what_the_goldens_hold_al2023() {
    render_matches_goldens("al2023", "al2023");
}

#[test]
fn render_out_writes_what_the_goldens_hold_ubuntu2404() {
    render_matches_goldens("ubuntu2404", "ubuntu2404");
}

#[test]
fn render_out_writes_what_the_goldens_hold_debian12() {
    render_matches_goldens("debian12", "debian12");
}

#[test]
fn render_out_writes_what_the_goldens_hold_debian13() {
    render_matches_goldens("debian13", "debian13");
}

/// A state written before Debian 13 was supported says "debian": it is Debian 12, and renders as such.
#[test]
fn render_out_reads_an_old_debian_state_as_debian12() {
    render_matches_goldens("debian", "debian12");
}

/// With test hosts, `render --out` also writes each test host's first-boot user-data, `<side>-test/user-data`; without,
/// no such folder.
#[test]
fn render_out_writes_the_test_hosts_user_data_when_the_link_has_test_hosts() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/debian13");
    let want = std::fs::read_to_string(golden.join("user-data/test.yaml")).unwrap();
    for test_hosts in [true, false] {
        let state = golden_state("debian13", None).replace(
            r#""test_hosts": false"#,
            &format!(r#""test_hosts": {test_hosts}"#),
        );
        let (_tmp, out_dir) = render_offline(&state);
        for side in ["east", "west"] {
            let dir = out_dir.join(format!("{side}-test"));
            if test_hosts {
                assert_eq!(files_under(&dir), vec![PathBuf::from("user-data")]);
                assert_eq!(
                    std::fs::read_to_string(dir.join("user-data")).unwrap(),
                    want,
                    "{side}-test/user-data"
                );
            } else {
                assert!(
                    !dir.exists(),
                    "{side}-test written for a link without test hosts"
                );
            }
        }
    }
}

fn map_json(tmp: &Path, name: &str, addresses: &[&str]) -> serde_json::Value {
    let mut args = vec!["map", "--name", name, "--json"];
    args.extend_from_slice(addresses);
    let out = cli::run(offline_command(tmp, &args), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("map --json")
}

/// (direction, side, the other address) for each reading of each address.
/// An address and its readings.
type Readings = Vec<(String, Vec<(String, String, String)>)>;

fn readings(answers: &serde_json::Value) -> Readings {
    answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let t = a["translations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let dir = t["direction"].as_str().unwrap().to_string();
                    let other = if dir == "real_to_mapped" {
                        t["mapped"].as_str().unwrap()
                    } else {
                        t["real"].as_str().unwrap()
                    };
                    (
                        dir,
                        t["side"].as_str().unwrap().to_string(),
                        other.to_string(),
                    )
                })
                .collect();
            (a["address"].as_str().unwrap().to_string(), t)
        })
        .collect()
}

/// `map` answers real -> mapped and mapped -> real, for every range of both sides, offline from the state: AWS is
/// unreachable here and no profile of the state exists.
#[test]
fn map_translates_both_ways_offline() {
    let tmp = offline_world(&golden_state("al2023", None));
    let got = readings(&map_json(
        tmp.path(),
        "golden",
        &[
            "10.0.1.20",
            "10.2.1.20",
            "10.1.1.20",
            "10.5.0.7",
            "10.3.0.7",
            "192.0.2.1",
        ],
    ));
    let r = |d: &str, s: &str, o: &str| (d.to_string(), s.to_string(), o.to_string());
    assert_eq!(
        got,
        vec![
            (
                "10.0.1.20".into(),
                vec![
                    r("real_to_mapped", "east", "10.1.1.20"),
                    r("real_to_mapped", "west", "10.2.1.20")
                ]
            ),
            (
                "10.2.1.20".into(),
                vec![r("mapped_to_real", "west", "10.0.1.20")]
            ),
            (
                "10.1.1.20".into(),
                vec![r("mapped_to_real", "east", "10.0.1.20")]
            ),
            (
                "10.5.0.7".into(),
                vec![r("real_to_mapped", "east", "10.3.0.7")]
            ),
            (
                "10.3.0.7".into(),
                vec![r("mapped_to_real", "east", "10.5.0.7")]
            ),
            ("192.0.2.1".into(), vec![]),
        ]
    );
    // The human table says the same.
    let args = ["map", "--name", "golden", "10.0.1.20", "10.2.1.20"];
    let out = cli::run(offline_command(tmp.path(), &args), &args);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for says in [
        "the west side reaches it at 10.1.1.20",
        "the east side reaches it at 10.2.1.20",
        "stands for 10.0.1.20 in the west VPC",
    ] {
        assert!(text.contains(says), "{says}: {text}");
    }
}

// ---- settings ---------------------------------------------------------------------------------------------------

fn offline_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let tmp = offline_world(&golden_state("al2023", Some(("127.0.0.1", 22, "ec2-user"))));
    let mut c = offline_command(tmp.path(), args);
    for (k, v) in env {
        c.env(k, v);
    }
    cli::run(c, args)
}

/// Each `VPCLINK_*` setting with a bad value is refused before anything is done: exit 2, naming the variable.
/// (VPCLINK_ELASTIC_IP_QUOTA, _ROUTES_PER_TABLE and _FAULT_AT: tests/exit_codes.rs.)
fn assert_refused_setting(var: &str, value: &str) {
    let out = offline_with(&[(var, value)], &["map", "--name", "golden", "10.0.1.20"]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{var}={value:?} must be refused with exit 2; got {:?}, stdout {:?}, stderr {err}",
        out.status.code(),
        stdout(&out)
    );
    assert!(err.contains(var), "{var}={value:?}: {err}");
    assert!(out.stdout.is_empty(), "{var}={value:?}: nothing is done");
}

#[test]
fn a_bad_vpclink_log_filter_is_refused() {
    assert_refused_setting("VPCLINK_LOG", "vpclink=loudest");
}

#[test]
fn a_bad_vpclink_allow_loopback_ssh_is_refused() {
    assert_refused_setting("VPCLINK_ALLOW_LOOPBACK_SSH", "yes please");
}

#[test]
fn a_bad_vpclink_serial_sides_is_refused() {
    assert_refused_setting("VPCLINK_SERIAL_SIDES", "sometimes");
}

#[test]
fn a_bad_vpclink_call_log_is_refused() {
    assert_refused_setting("VPCLINK_CALL_LOG", "/nonexistent-dir/calls.jsonl");
}

/// VPCLINK_ALLOW_LOOPBACK_SSH=1: without it `configure` refuses a host at 127.0.0.1:22 (it would SSH to this
/// machine); with it the loopback check lets it through (here to the next check: the link's SSH key is missing).
#[test]
fn allow_loopback_ssh_lets_configure_reach_a_loopback_host() {
    let args = ["configure", "--name", "golden"];
    let refused = offline_with(&[], &args);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("is a loopback address"),
        "{}",
        stderr(&refused)
    );
    let allowed = offline_with(&[("VPCLINK_ALLOW_LOOPBACK_SSH", "1")], &args);
    let err = stderr(&allowed);
    assert_ne!(allowed.status.code(), Some(0));
    assert!(!err.contains("loopback"), "not refused for loopback: {err}");
    assert!(err.contains("golden.key"), "went on to the key: {err}");
}

// ---- trust on first use, against a real sshd on 127.0.0.1 --------------------------------------------------------

struct Sshd {
    child: std::process::Child,
    port: u16,
    host_key_pub: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An sshd on 127.0.0.1 that lets `client_pub` in as the current user and answers every command with a fake
/// script: the two facts configure's prepare step asks for (an RSA key, the route to the peer), and a failure for
/// anything else, so nothing is ever changed on this machine.
fn start_sshd(dir: &Path, client_pub: &str) -> Option<Sshd> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let keygen = |path: &Path| {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    };
    let host_key = dir.join("host_ed25519");
    keygen(&host_key);
    let host_key_pub = std::fs::read_to_string(dir.join("host_ed25519.pub")).unwrap();
    std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
    let fake = dir.join("fake.sh");
    std::fs::write(
        &fake,
        r#"#!/bin/sh
echo "$SSH_ORIGINAL_COMMAND" >> "$(dirname "$0")/commands.log"
case "$SSH_ORIGINAL_COMMAND" in
  *"ip -o -4 route get"*) echo "203.0.113.10 via 10.0.0.1 dev ens5 src 10.0.0.10 uid 0" ;;
  *showhostkey*) printf '\t# rsakey AwEAAbc\n\tleftrsasigkey=0sAwEAAfakeKEYfromTHEfakeHOST\n' ;;
  *) echo "fake host: refused" >&2; exit 1 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nForceCommand {fake}\n",
            hk = host_key.display(),
            dir = dir.display(),
            fake = fake.display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .ok()?;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Sshd {
                child,
                port,
                host_key_pub,
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
    panic!("sshd did not listen on 127.0.0.1:{port}: {log}");
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn key_body(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A host whose key was not pinned from its console is trusted on first use, with a warning that says so, and its
/// key is pinned in the state; the next run checks it against the pin, and a host offering another key is refused.
/// Also VPCLINK_LOG=vpclink=debug: debug lines on stderr, none without it.
#[test]
fn trust_on_first_use_warns_and_pins() {
    let user = whoami();
    let tmp = tempfile::tempdir().unwrap();
    let sshd_dir = tmp.path().join("sshd");
    std::fs::create_dir_all(&sshd_dir).unwrap();
    // The link's key, where vpclink keeps it.
    let state = golden_state("al2023", Some(("127.0.0.1", 1, &user)));
    let world = offline_world(&state);
    let key = world.path().join("state/vpclink/golden.key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let client_pub = std::fs::read_to_string(key.with_extension("key.pub")).unwrap();
    let Some(sshd) = start_sshd(&sshd_dir, &client_pub) else {
        panic!("no sshd on this machine: trust on first use cannot be tested without one");
    };
    let state = state.replace("\"port\": 1", &format!("\"port\": {}", sshd.port));
    std::fs::write(world.path().join("state/vpclink/golden.json"), &state).unwrap();

    let args = ["configure", "--name", "golden"];
    let run = |args: &[&str]| {
        let mut c = offline_command(world.path(), args);
        c.env("VPCLINK_ALLOW_LOOPBACK_SSH", "1");
        cli::run(c, args)
    };
    let first = run(&args);
    let err = stderr(&first);
    let log = std::fs::read_to_string(sshd_dir.join("sshd.log")).unwrap_or_default();
    // The fake host refuses the push: configure fails after the prepare step, which pinned the keys.
    assert_ne!(first.status.code(), Some(0), "{err}");
    for side in ["east", "west"] {
        assert!(
            err.contains(&format!("{side} tunnel host: no host key was pinned"))
                && err.contains("trusted the key offered on first use and pinned it"),
            "the warning for {side}: {err}\nsshd: {log}"
        );
    }
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.path().join("state/vpclink/golden.json")).unwrap(),
    )
    .unwrap();
    for side in ["east", "west"] {
        assert_eq!(
            saved[side]["tunnel"]["host_key"].as_str().map(key_body),
            Some(key_body(&sshd.host_key_pub)),
            "{side}: the key offered is pinned: {saved}"
        );
    }

    // Second run: the pin is used, no first-use warning.
    let second = run(&args);
    let err2 = stderr(&second);
    assert!(
        !err2.contains("trusted the key offered on first use"),
        "{err2}"
    );

    // A host offering another key than the pinned one is refused.
    let other = tmp.path().join("other_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let other_pub = std::fs::read_to_string(tmp.path().join("other_ed25519.pub")).unwrap();
    let mut edited = saved.clone();
    edited["east"]["tunnel"]["host_key"] = serde_json::Value::String(key_body(&other_pub));
    std::fs::write(
        world.path().join("state/vpclink/golden.json"),
        serde_json::to_string_pretty(&edited).unwrap(),
    )
    .unwrap();
    let third = run(&args);
    let err3 = stderr(&third);
    assert_ne!(third.status.code(), Some(0));
    assert!(
        err3.to_lowercase().contains("host key") && err3.contains("east tunnel host"),
        "a changed key is refused: {err3}"
    );
}

// ---- LocalStack ------------------------------------------------------------------------------------------------

fn plan_json(w: &World, env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let args = ["plan", "--east", "east", "--west", "west", "--json"];
    let mut c = w.command(&args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = cli::run(c, &args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, v)
}

/// `AWS_PROFILE` is never used: set to a profile that does not exist, or to the other side's, `plan` still works
/// and each side uses the profile given with --east/--west.
#[tokio::test(flavor = "multi_thread")]
async fn aws_profile_is_never_used() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    for profile in ["no-such-profile", "west", "east"] {
        let (out, plan) = plan_json(&w, &[("AWS_PROFILE", profile)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "AWS_PROFILE={profile}: {}",
            stderr(&out)
        );
        for side in ["east", "west"] {
            assert_eq!(plan[side]["profile"], side, "AWS_PROFILE={profile}: {plan}");
            assert_eq!(
                plan[side]["account"],
                w.side(side).account.as_str(),
                "AWS_PROFILE={profile}: {side} uses its own profile's account"
            );
            assert_eq!(plan[side]["vpc_id"], w.side(side).vpc_id.as_str());
        }
    }
}

/// VPCLINK_CALL_LOG writes one JSON line per AWS call with side, step, operation, start and end;
/// VPCLINK_SERIAL_SIDES=1 makes east's discovery end before west's begins. (VPCLINK_LOG: the trust-on-first-use
/// test.)
#[tokio::test(flavor = "multi_thread")]
async fn call_log_and_serial_sides_have_their_effect() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let log = w.dir.path().join("calls.jsonl");
    let (out, _) = plan_json(
        &w,
        &[
            ("VPCLINK_CALL_LOG", log.to_str().unwrap()),
            ("VPCLINK_SERIAL_SIDES", "1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .expect("the call log is written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(lines.len() >= 4, "{lines:?}");
    for l in &lines {
        for f in ["side", "step", "operation", "start_ms", "end_ms"] {
            assert!(!l[f].is_null(), "{f} in {l}");
        }
        assert!(l["end_ms"].as_f64() >= l["start_ms"].as_f64(), "{l}");
    }
    for side in ["east", "west"] {
        assert!(
            lines
                .iter()
                .any(|l| l["side"] == side && l["operation"] == "DescribeVpcs"),
            "{side} DescribeVpcs logged: {lines:?}"
        );
    }
    let ec2_describe = |side: &str| -> Vec<(f64, f64)> {
        lines
            .iter()
            .filter(|l| {
                l["side"] == side
                    && l["operation"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("Describe"))
            })
            .map(|l| {
                (
                    l["start_ms"].as_f64().unwrap(),
                    l["end_ms"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let east_end = ec2_describe("east").iter().map(|c| c.1).fold(0.0, f64::max);
    let west_start = ec2_describe("west")
        .iter()
        .map(|c| c.0)
        .fold(f64::MAX, f64::min);
    assert!(
        east_end <= west_start,
        "VPCLINK_SERIAL_SIDES=1: east's discovery ends ({east_end}) before west's starts ({west_start})"
    );
}

/// VPCLINK_ELASTIC_IP_QUOTA replaces the quota preflight checks against (here lowered to 1 with one address in
/// use: refused, exit 2, nothing created); VPCLINK_ROUTES_PER_TABLE=1: every table already holds more, refused.
#[tokio::test(flavor = "multi_thread")]
async fn preflight_limits_come_from_the_settings() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let east = w.client("east");
    let held = east
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap()
        .allocation_id
        .unwrap();
    tokio::time::sleep(localstack::settle()).await;
    let up_with = |var: &str, value: &str| {
        let args = w.up_args(&[]);
        let mut c = w.command(&args);
        c.env(var, value);
        cli::run(c, &args)
    };
    let eip = up_with("VPCLINK_ELASTIC_IP_QUOTA", "1");
    assert_eq!(eip.status.code(), Some(2), "{}", stderr(&eip));
    assert!(
        stderr(&eip).contains("Elastic IP quota too small") && stderr(&eip).contains("of 1 in use"),
        "{}",
        stderr(&eip)
    );
    let routes = up_with("VPCLINK_ROUTES_PER_TABLE", "1");
    assert_eq!(routes.status.code(), Some(2), "{}", stderr(&routes));
    assert!(
        stderr(&routes).contains("over the quota of 1"),
        "{}",
        stderr(&routes)
    );
    assert!(
        !stderr(&routes).contains("Elastic IP quota too small"),
        "the default EIP quota (5) holds: {}",
        stderr(&routes)
    );
    east.release_address()
        .allocation_id(held)
        .send()
        .await
        .unwrap();
    for side in ["east", "west"] {
        assert_eq!(
            count(&w, side).await,
            Counts::default(),
            "{side}: nothing created"
        );
    }
}

/// The state file: written atomically (no temporary file left beside it), with no secret in it (no private key
/// material, not the AWS secret key), and the link's SSH key beside it with mode 0600. `map` then works from it.
#[tokio::test(flavor = "multi_thread")]
async fn state_file_is_atomic_secret_free_and_the_key_beside_it_is_0600() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    // A secret key we can look for (LocalStack ignores its value).
    let canary = "vpclinkCANARYsecret0123456789abcdefXYZ";
    let creds = std::fs::read_to_string(w.dir.path().join("credentials"))
        .unwrap()
        .replace(
            "aws_secret_access_key = test",
            &format!("aws_secret_access_key = {canary}"),
        );
    std::fs::write(w.dir.path().join("credentials"), creds).unwrap();

    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let dir = w.state_file().parent().unwrap().to_path_buf();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let expected = ["vpclink.json", "vpclink.key", "vpclink.lock"];
    for n in &names {
        assert!(
            expected.contains(&n.as_str()),
            "only the state, the key and the lock in {}: {names:?}",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(w.state_file()).unwrap();
    let key = std::fs::read_to_string(dir.join("vpclink.key")).unwrap();
    assert!(key.contains("PRIVATE KEY"), "the key file holds the key");
    assert_eq!(mode(&dir.join("vpclink.key")), 0o600, "the key's mode");
    assert_eq!(
        mode(&w.state_file()) & 0o022,
        0,
        "the state is not writable by others"
    );
    assert!(!text.contains("PRIVATE KEY"), "no private key in the state");
    assert!(!text.contains(canary), "no AWS secret key in the state");
    for line in key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(!text.contains(line), "no key material in the state: {line}");
    }
    serde_json::from_str::<serde_json::Value>(&text).expect("a complete JSON document");

    // map works from the state up made: east's first real address and its mapped twin, both ways.
    let st = w.state();
    let east_mapped: ipnet::Ipv4Net = st["plan"]["east"]["mapped"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let twin = std::net::Ipv4Addr::from(u32::from(east_mapped.network()) + 0x0114);
    let args = ["map", "10.0.1.20", &twin.to_string(), "--json"];
    let mut c = w.command(&args);
    c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let out = cli::run(c, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = readings(&serde_json::from_slice(&out.stdout).unwrap());
    assert!(
        got[0]
            .1
            .contains(&("real_to_mapped".into(), "east".into(), twin.to_string())),
        "{got:?}"
    );
    assert_eq!(
        got[1].1,
        vec![("mapped_to_real".into(), "east".into(), "10.0.1.20".into())]
    );

    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
}

/// Launch an instance that is not the link's in east's public subnet; its interface id.
async fn foreign_instance(w: &World) -> (String, String) {
    let east = w.client("east");
    let tunnel = w.state()["east"]["tunnel"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let image = east
        .describe_instances()
        .instance_ids(&tunnel)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .image_id()
        .unwrap()
        .to_string();
    let run = east
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(w.seed.east.public_subnet.clone().unwrap())
        .send()
        .await
        .unwrap();
    let i = &run.instances()[0];
    let eni = i.network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_string();
    (i.instance_id().unwrap().to_string(), eni)
}

async fn route_target(w: &World, table: &str, dest: &str) -> Option<String> {
    tokio::time::sleep(localstack::settle()).await;
    w.client("east")
        .describe_route_tables()
        .route_table_ids(table)
        .send()
        .await
        .unwrap()
        .route_tables()[0]
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some(dest))
        .and_then(|r| r.network_interface_id().map(str::to_string))
}

/// "A route to a live host is never touched": one of the link's own routes (in the state, its destination named on
/// the tunnel group) is pointed at another live instance; `down` removes the link and leaves that route.
async fn down_leaves_a_route_to_a_live_host(with_state: bool) {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let up = w.up(&["--no-test-hosts"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let dest = w.state()["plan"]["west"]["mapped"][0]
        .as_str()
        .unwrap()
        .to_string();
    let table = w.seed.east.route_tables[1].clone();
    let (instance, eni) = foreign_instance(&w).await;
    let east = w.client("east");
    east.replace_route()
        .route_table_id(&table)
        .destination_cidr_block(&dest)
        .network_interface_id(&eni)
        .send()
        .await
        .unwrap();
    assert_eq!(
        route_target(&w, &table, &dest).await.as_deref(),
        Some(eni.as_str())
    );
    if !with_state {
        std::fs::remove_file(w.state_file()).unwrap();
    }
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_eq!(
        route_target(&w, &table, &dest).await.as_deref(),
        Some(eni.as_str()),
        "the route to the live instance {instance} survives down (state {with_state})"
    );
    let mut left = count(&w, "east").await;
    assert_eq!(left.eni_routes, 1, "only the foreign route: {left:?}");
    left.eni_routes = 0;
    assert_eq!(left, Counts::default(), "east: the link is gone");
    assert_eq!(
        count(&w, "west").await,
        Counts::default(),
        "west: the link is gone"
    );
    east.terminate_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn down_never_touches_a_route_to_a_live_host() {
    down_leaves_a_route_to_a_live_host(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn down_without_state_never_touches_a_route_to_a_live_host() {
    down_leaves_a_route_to_a_live_host(false).await;
}

/// `status` reads the security groups' rules: a rule revoked by hand (east) and one added (west) are drift, exit 1,
/// each group named.
#[tokio::test(flavor = "multi_thread")]
async fn status_names_security_group_drift() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let up = w.up(&["--no-test-hosts"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    tokio::time::sleep(localstack::settle()).await;
    let ok = w.run(&["status", "--json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));

    let east_sg = w.state()["east"]["tunnel_sg"].as_str().unwrap().to_string();
    let west_sg = w.state()["west"]["tunnel_sg"].as_str().unwrap().to_string();
    let east = w.client("east");
    let rules = east
        .describe_security_group_rules()
        .filters(localstack::filter("group-id", &east_sg))
        .send()
        .await
        .unwrap();
    let ingress = rules
        .security_group_rules()
        .iter()
        .find(|r| r.is_egress() == Some(false))
        .expect("an ingress rule")
        .security_group_rule_id()
        .unwrap()
        .to_string();
    east.revoke_security_group_ingress()
        .group_id(&east_sg)
        .security_group_rule_ids(&ingress)
        .send()
        .await
        .unwrap();
    w.client("west")
        .authorize_security_group_ingress()
        .group_id(&west_sg)
        .ip_protocol("tcp")
        .from_port(8080)
        .to_port(8080)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(localstack::settle()).await;
    let status = w.run(&["status", "--json"]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "drift exits 1: {}",
        stdout(&status)
    );
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let drifted: Vec<(String, String, String, String)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ok"] == false)
        .map(|i| {
            (
                i["side"].as_str().unwrap().to_string(),
                i["resource"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
                i["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        drifted,
        vec![
            (
                "east".into(),
                "tunnel-sg".into(),
                east_sg.clone(),
                "rules drifted: 1 missing, 0 extra".into()
            ),
            (
                "west".into(),
                "tunnel-sg".into(),
                west_sg.clone(),
                "rules drifted: 0 missing, 1 extra".into()
            ),
        ]
    );
    let human = w.run(&["status"]);
    assert_eq!(human.status.code(), Some(1));
    assert!(stdout(&human).contains(&east_sg), "{}", stdout(&human));
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
}

/// A leak check that fails: the strict layer keeps listing what `down` deleted for 2 minutes, longer than the leak
/// check reads again (45 s); `down` exits 1 and says how many resources with the link's tags are left.
#[tokio::test(flavor = "multi_thread")]
async fn down_fails_and_says_what_is_left_when_the_leak_check_fails() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let up = w.up(&["--no-test-hosts"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    for side in ["east", "west"] {
        strict_config(&url, &w.side(side).account, "\"stale_ms\": 120000");
    }
    let started = std::time::Instant::now();
    let down = w.down();
    let err = stderr(&down);
    assert_eq!(down.status.code(), Some(1), "a leak is a failure: {err}");
    let said = err
        .lines()
        .find(|l| l.contains("resource(s) with the link's tags are still there"))
        .unwrap_or_else(|| panic!("down says what is left: {err}"));
    let n: usize = said
        .split("vpclink: ")
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("a count: {said}"));
    assert!(n > 0, "{said}");
    assert!(
        // The leak check reads again with growing pauses (up to 8 s) and stops before one would pass 45 s.
        started.elapsed() >= std::time::Duration::from_secs(30),
        "the leak check read again for most of its 45 s first"
    );
    assert!(
        w.state_file().exists(),
        "the state is kept while something is left"
    );
    // Clean up: reads are fresh again, and a second down finds nothing left.
    for side in ["east", "west"] {
        strict_config(&url, &w.side(side).account, "\"stale_ms\": 0");
    }
    let again = w.down();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    for side in ["east", "west"] {
        assert_eq!(
            count(&w, side).await,
            Counts::default(),
            "{side}: left after down"
        );
    }
}

/// `--help` as a newcomer reads it: every flag of every subcommand has a line of help, and the per-side flags stand
/// under their side's heading.
#[test]
fn every_flag_has_help_and_side_flags_are_grouped_by_side() {
    for sub in [
        "plan",
        "up",
        "down",
        "configure",
        "verify",
        "status",
        "map",
        "render",
        "pin",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vpclink"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub} --help");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut heading = "";
        for (i, l) in lines.iter().enumerate() {
            if !l.starts_with(' ') && l.ends_with(':') {
                heading = l.trim_end_matches(':');
                continue;
            }
            let t = l.trim_start();
            if !t.starts_with("--") && !t.starts_with("-v") && !t.starts_with("-h") {
                continue;
            }
            // clap puts the help beside the flag (two spaces apart) or on the next line.
            let (spec, inline) = t.split_once("  ").unwrap_or((t, ""));
            let flag = spec.split_whitespace().last().unwrap_or("");
            let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
            let help = if inline.trim().is_empty() {
                next
            } else {
                inline.trim()
            };
            assert!(
                !help.is_empty() && !help.starts_with('-'),
                "{sub}: {spec} has no help line"
            );
            for (prefix, side) in [("--east", "East side"), ("--west", "West side")] {
                if t.starts_with(prefix) {
                    assert_eq!(heading, side, "{sub}: {flag} stands under {heading:?}");
                }
            }
        }
    }
}
