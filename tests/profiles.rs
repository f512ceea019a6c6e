//! Which profiles exist is decided as the SDK and the AWS CLI decide it, from the files in tests/profiles/: a profile
//! only in the credentials file, one with source_profile, one with sso_session, one with credential_process, a
//! header followed by a comment and `~` in AWS_CONFIG_FILE all count; a missing name, an sso-session's name and an
//! unprefixed config section do not; AWS_PROFILE is never used.
//!
//! Needs no AWS and no LocalStack: every endpoint is a closed local port, so a defined profile fails later (at STS,
//! or for want of credentials) and only the "is not defined" refusal, exit 2, is asserted on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles")
}

/// `vpclink plan` with both sides on `profile`; HOME is `home` (no SSO token cache, no ~/.aws).
fn plan(
    home: &Path,
    config: &str,
    credentials: &str,
    profile: &str,
    env: &[(&str, &str)],
) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpclink"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("VPCLINK_") {
            c.env_remove(k);
        }
    }
    let state = home.join("state");
    c.env("HOME", home)
        .env("XDG_STATE_HOME", &state)
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Closed: nothing here may reach AWS.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .envs(env.iter().copied())
        .args(["plan", "--east", profile, "--west", profile]);
    // A refusal comes at once; a defined profile may spend a long time failing to get credentials (an assumed
    // role's STS calls retry): after 10 s it is past the check, and is stopped.
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vpclink");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("vpclink output");
    eprintln!(
        "$ vpclink plan --east {profile} --west {profile} {env:?} -> {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    out
}

fn refused(out: &Output, profile: &str) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    out.status.code() == Some(2) && err.contains(&format!("profile '{profile}' is not defined"))
}

#[test]
fn profiles_exist_as_the_sdk_and_the_cli_say() {
    let home = tempfile::tempdir().unwrap();
    let config = fixtures().join("config");
    let credentials = fixtures().join("credentials");
    let (config, credentials) = (config.to_str().unwrap(), credentials.to_str().unwrap());

    let mut wrong = Vec::new();
    for defined in ["default", "credsonly", "chained", "base", "sso", "process"] {
        if refused(
            &plan(home.path(), config, credentials, defined, &[]),
            defined,
        ) {
            wrong.push(format!("{defined}: defined, but refused"));
        }
    }
    for missing in ["nosuch", "corp", "unprefixed"] {
        if !refused(
            &plan(home.path(), config, credentials, missing, &[]),
            missing,
        ) {
            wrong.push(format!("{missing}: not a profile, but not refused"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn aws_profile_is_ignored() {
    let home = tempfile::tempdir().unwrap();
    let config = fixtures().join("config");
    let credentials = fixtures().join("credentials");
    let (config, credentials) = (config.to_str().unwrap(), credentials.to_str().unwrap());
    let out = plan(
        home.path(),
        config,
        credentials,
        "nosuch",
        &[("AWS_PROFILE", "base")],
    );
    assert!(
        refused(&out, "nosuch"),
        "AWS_PROFILE=base must not stand in for nosuch"
    );
    let out = plan(
        home.path(),
        config,
        credentials,
        "base",
        &[("AWS_PROFILE", "nosuch")],
    );
    assert!(
        !refused(&out, "base"),
        "AWS_PROFILE=nosuch must not matter to base"
    );
}

#[test]
fn aws_config_file_with_a_tilde_is_the_home_directory() {
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("config"),
        home.path().join("vpclink-config"),
    )
    .unwrap();
    let credentials = home.path().join("no-credentials");
    let out = plan(
        home.path(),
        "~/vpclink-config",
        credentials.to_str().unwrap(),
        "sso",
        &[],
    );
    assert!(!refused(&out, "sso"), "~/ in AWS_CONFIG_FILE is $HOME/");
    let out = plan(
        home.path(),
        "~/vpclink-config",
        credentials.to_str().unwrap(),
        "credsonly",
        &[],
    );
    assert!(
        refused(&out, "credsonly"),
        "credsonly is only in the other credentials file"
    );
}
