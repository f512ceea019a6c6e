//! `vpclink pin` through the binary, as a user whose profile may not read consoles runs it: a console output saved by
//! someone else pins the host's key into the state; a file without the key block, or with another key than the one
//! pinned, is refused with exit 2 and changes nothing; `--replace` replaces; the same key again changes nothing.
//! No AWS: a hand-written state in a temp XDG_STATE_HOME.

mod cli;

use std::path::Path;
use std::process::Output;

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4IuHARW6OKs96O8yoZMF8pHJbieJu8AkIFUjSwbcg2";
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkYJb6nH1hQm7Xo0rQm2G5wq9sXrJp3Zt8dV4cLrE1a";

/// Link "lnk": a tunnel host on each side (no key pinned) and a test host on the east side.
fn write_state(state_dir: &Path) {
    let side = |s: &str, mapped: &str| {
        format!(
            r#"{{"profile": "p-{s}", "region": "eu-west-1", "account": "111111111111", "vpc_id": "vpc-{s}",
                "cidrs": ["10.0.0.0/16"], "mapped": ["{mapped}"], "route_tables": ["rtb-{s}"]}}"#
        )
    };
    let host = |id: &str, ip: &str| {
        format!(r#"{{"instance_id": "{id}", "private_ip": "{ip}", "os": "debian13"}}"#)
    };
    let text = format!(
        r#"{{"schema": 1, "name": "lnk",
            "plan": {{"name": "lnk", "overlapping": true, "east": {}, "west": {}}},
            "options": {{"os": "debian13", "instance_type": "t3.micro", "test_hosts": true}},
            "east": {{"tunnel": {}, "test": {}}}, "west": {{"tunnel": {}}}}}"#,
        side("east", "10.1.0.0/16"),
        side("west", "10.2.0.0/16"),
        host("i-east", "10.0.0.10"),
        host("i-easttest", "10.0.1.10"),
        host("i-west", "10.0.0.10"),
    );
    std::fs::create_dir_all(state_dir.join("vpclink")).unwrap();
    std::fs::write(state_dir.join("vpclink/lnk.json"), text).unwrap();
}

/// What EC2's GetConsoleOutput shows of a Debian first boot: kernel and cloud-init lines, then the key block.
fn console(key: &str) -> String {
    format!(
        "[    0.000000] Linux version 6.12.0-cloud-amd64\n\
         [   35.120000] cloud-init[612]: Cloud-init v. 25.1 running 'modules:final'\n\
         <14>Apr  1 10:00:00 cloud-init: #############################################################\n\
         <14>Apr  1 10:00:00 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n\
         <14>Apr  1 10:00:00 cloud-init: 256 SHA256:x4yXq root@ip-10-0-0-10 (ED25519)\n\
         <14>Apr  1 10:00:00 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\n\
         -----BEGIN SSH HOST KEY KEYS-----\n\
         ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBdummy root@ip-10-0-0-10\n\
         {key} root@ip-10-0-0-10\n\
         -----END SSH HOST KEY KEYS-----\n\
         vpclink: first boot finished after 41.2 s\n"
    )
}

struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        write_state(tmp.path());
        World { tmp }
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn pin(&self, extra: &[&str]) -> Output {
        let mut args = vec!["pin", "--name", "lnk"];
        args.extend_from_slice(extra);
        cli::run(cli::command(self.tmp.path(), self.tmp.path(), &args), &args)
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.tmp.path().join("vpclink/lnk.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn key(&self, side: &str, role: &str) -> Option<String> {
        self.state()[side][role]["host_key"]
            .as_str()
            .map(str::to_string)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_saved_console_pins_the_key_and_the_same_key_again_changes_nothing() {
    let w = World::new();
    let f = w.file("east.log", &console(KEY_A));
    let out = w.pin(&["--side", "east", "--console", &f]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("pinned"), "{}", stdout(&out));
    assert_eq!(w.key("east", "tunnel").as_deref(), Some(KEY_A));
    // Only that host: the other side and the test host are as they were.
    assert_eq!(w.key("west", "tunnel"), None);
    assert_eq!(w.key("east", "test"), None);

    let before = w.state();
    let again = w.pin(&["--side", "east", "--console", &f, "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let j: serde_json::Value = serde_json::from_slice(&again.stdout).expect("pin --json");
    assert_eq!(j["outcome"], "unchanged");
    assert_eq!(j["host_key"], KEY_A);
    assert_eq!(w.state(), before, "the same key again changes nothing");
}

#[test]
fn the_test_host_is_pinned_with_role_test_and_json_says_what_was_done() {
    let w = World::new();
    let f = w.file("test.log", &console(KEY_B));
    let out = w.pin(&[
        "--side",
        "east",
        "--role",
        "test",
        "--console",
        &f,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pin --json");
    assert_eq!(j["outcome"], "pinned");
    assert_eq!(j["side"], "east");
    assert_eq!(j["role"], "test");
    assert_eq!(j["instance_id"], "i-easttest");
    assert_eq!(j["host_key"], KEY_B);
    assert_eq!(w.key("east", "test").as_deref(), Some(KEY_B));
    assert_eq!(w.key("east", "tunnel"), None);

    // The west side has no test host: input to fix, nothing written.
    let before = w.state();
    let none = w.pin(&["--side", "west", "--role", "test", "--console", &f]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("no west test host"),
        "{}",
        stderr(&none)
    );
    assert_eq!(w.state(), before);
}

#[test]
fn a_file_without_the_key_block_is_refused_naming_the_file_and_the_side() {
    let w = World::new();
    let cut = console(KEY_A);
    let cut = &cut[..cut.find("-----BEGIN SSH HOST KEY KEYS-----").unwrap()];
    let f = w.file("early.log", cut);
    let before = w.state();
    let out = w.pin(&["--side", "west", "--console", &f]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&f), "names the file: {err}");
    assert!(err.contains("west tunnel host"), "names the host: {err}");
    assert!(err.contains("first boot"), "says what to do: {err}");
    assert!(out.stdout.is_empty());
    assert_eq!(w.state(), before, "nothing changed");

    // A file that is not there is input to fix too.
    let missing = w.pin(&["--side", "west", "--console", "/nonexistent/console.log"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("/nonexistent/console.log"));
}

#[test]
fn another_key_is_refused_naming_both_until_replace() {
    let w = World::new();
    let a = w.file("a.log", &console(KEY_A));
    let b = w.file("b.log", &console(KEY_B));
    let first = w.pin(&["--side", "west", "--console", &a]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let before = w.state();
    let refused = w.pin(&["--side", "west", "--console", &b]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains(KEY_A), "names the pinned key: {err}");
    assert!(err.contains(KEY_B), "names the key in the file: {err}");
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(w.state(), before, "nothing changed");

    let replaced = w.pin(&["--side", "west", "--console", &b, "--replace", "--json"]);
    assert_eq!(replaced.status.code(), Some(0), "{}", stderr(&replaced));
    let j: serde_json::Value = serde_json::from_slice(&replaced.stdout).expect("pin --json");
    assert_eq!(j["outcome"], "replaced");
    assert_eq!(j["replaced"], KEY_A);
    assert_eq!(j["host_key"], KEY_B);
    assert_eq!(w.key("west", "tunnel").as_deref(), Some(KEY_B));
}

/// `pin` writes the state, so it takes the link's lock as `up`, `down` and `configure` do: while another run holds
/// it, pin waits (and says so), and pins once it is released.
#[test]
fn pin_waits_for_the_link_lock() {
    use std::io::Write;
    let w = World::new();
    let f = w.file("east.log", &console(KEY_A));
    let mut held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(w.tmp.path().join("vpclink/lnk.lock"))
        .unwrap();
    held.try_lock().expect("the lock is free");
    writeln!(held, "{}", std::process::id()).unwrap();
    let args = ["pin", "--name", "lnk", "--side", "east", "--console", &f];
    let mut c = cli::command(w.tmp.path(), w.tmp.path(), &args);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        w.key("east", "tunnel"),
        None,
        "pinned while the lock was held"
    );
    drop(held);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("PID {}", std::process::id())),
        "{err}"
    );
    assert_eq!(w.key("east", "tunnel").as_deref(), Some(KEY_A));
}
