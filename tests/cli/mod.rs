//! Running the vpclink binary in a test: only the given AWS config pair and state directory count (the caller's
//! AWS_* and VPCLINK_* variables are dropped; a test sets what it wants on the command), and every run's exit code
//! and stderr are echoed for the test log.

use std::path::Path;
use std::process::{Command, Output};

/// vpclink with AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE from `aws_dir` and XDG_STATE_HOME `state_dir`.
pub fn command(aws_dir: &Path, state_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpclink"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("VPCLINK_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_CONFIG_FILE", aws_dir.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", aws_dir.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("XDG_STATE_HOME", state_dir)
        .args(args);
    c
}

/// Run it and echo what it said.
pub fn run(mut c: Command, args: &[&str]) -> Output {
    let out = c.output().expect("run vpclink");
    eprintln!(
        "$ vpclink {} -> {:?}\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    out
}
