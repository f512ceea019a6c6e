//! One run per link: while another process holds the link's lock (this test, standing in for a first vpclink run,
//! with its own PID in the lock file), `up`, `down` and `configure` wait, then exit 1 naming that PID; released
//! while they wait, the waiting run goes on. Read-only commands take no lock. Needs no AWS: the lock is taken
//! before anything else.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn vpclink(state: &Path, args: &[&str]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpclink"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("VPCLINK_") {
            c.env_remove(k);
        }
    }
    c.env("XDG_STATE_HOME", state)
        .env("AWS_CONFIG_FILE", state.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", state.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vpclink")
}

/// What a first run holds: the lock file, locked, with its PID in it.
fn hold(state: &Path, name: &str) -> File {
    let dir = state.join("vpclink");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(format!("{name}.lock")))
        .unwrap();
    f.try_lock().expect("the lock is free");
    f.set_len(0).unwrap();
    writeln!(f, "{}", std::process::id()).unwrap();
    f
}

fn finish(c: Child, args: &[&str]) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let out = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!(
        "$ vpclink {} -> {:?}\n{}",
        args.join(" "),
        out.status.code(),
        err.trim_end()
    );
    (out.status.code(), err, start.elapsed())
}

#[test]
fn a_second_run_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let _held = hold(state, "busy");
    let started = Instant::now();
    let runs: Vec<(&[&str], Child)> = [
        &[
            "up",
            "--name",
            "busy",
            "--east",
            "e",
            "--west",
            "w",
            "--ssh-cidr",
            "203.0.113.0/24",
        ][..],
        &["down", "--name", "busy", "--east", "e", "--west", "w"],
        &["configure", "--name", "busy"],
    ]
    .into_iter()
    .map(|a| (a, vpclink(state, a)))
    .collect();
    let pid = format!("PID {}", std::process::id());
    for (args, child) in runs {
        let (code, err, _) = finish(child, args);
        assert_eq!(code, Some(1), "{args:?} exits 1: {err}");
        assert!(err.contains(&pid), "{args:?} names {pid}: {err}");
        assert!(
            err.contains("waiting up to"),
            "{args:?} says it waits: {err}"
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(25), "they waited");
    // Read-only commands do not wait for the lock.
    for args in [
        &["status", "--name", "busy"][..],
        &["map", "--name", "busy", "10.0.0.1"],
    ] {
        let start = Instant::now();
        let (_, err, _) = finish(vpclink(state, args), args);
        assert!(!err.contains(&pid), "{args:?} takes no lock: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{args:?} did not wait"
        );
    }
}

#[test]
fn a_waiting_run_goes_on_when_the_first_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let held = hold(state, "soon");
    let args = ["configure", "--name", "soon"];
    let child = vpclink(state, &args);
    std::thread::sleep(Duration::from_secs(2));
    drop(held);
    let (code, err, took) = finish(child, &args);
    assert!(err.contains("waiting up to"), "it waited: {err}");
    assert!(
        err.contains("the other run has finished"),
        "it said so: {err}"
    );
    assert!(!err.contains("waited 30 s"), "not refused: {err}");
    // Past the lock, configure finds no state for the link: that is its own error (exit 2), not the lock's.
    assert_eq!(code, Some(2), "{err}");
    assert!(took < Duration::from_secs(20));
}
