//! The console parser against real consoles: every folder under tests/fixtures/console/ holds a guest's serial
//! console of its first boot (`console.txt`) and the ed25519 host key its sshd presented (`presented.pub`), captured
//! by scripts/lab from Debian 12 (cloud-init 22) and Debian 13 (cloud-init 25) guests (see the README there). The
//! key `up` and `vpclink pin` pin from a console must be the key sshd presents. No fixture at all is a failure, not
//! a pass.

use std::path::{Path, PathBuf};
use vpclink::provision::host_keys::ed25519_from_console;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// "ssh-ed25519 AAAA..." from presented.pub: its type and key (a comment, if any, is not part of the key).
fn presented(dir: &Path) -> String {
    let p = dir.join("presented.pub");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut w = text.split_whitespace();
    let (kind, key) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    assert_eq!(
        kind,
        "ssh-ed25519",
        "{}: not an ed25519 key line",
        p.display()
    );
    assert!(
        key.starts_with("AAAA"),
        "{}: no key in {text:?}",
        p.display()
    );
    format!("{kind} {key}")
}

#[test]
fn there_are_real_consoles_to_check() {
    let dirs = fixtures();
    assert!(
        !dirs.is_empty(),
        "tests/fixtures/console/ holds no captured console: the parser is checked against nothing real"
    );
}

#[test]
fn the_key_found_in_each_real_console_is_the_key_sshd_presented() {
    let mut problems = Vec::new();
    for dir in fixtures() {
        let console_path = dir.join("console.txt");
        let bytes = std::fs::read(&console_path)
            .unwrap_or_else(|e| panic!("{}: {e}", console_path.display()));
        // A serial console carries the odd byte that is not UTF-8; the key block is ASCII.
        let console = String::from_utf8_lossy(&bytes);
        let want = presented(&dir);
        match ed25519_from_console(&console) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!(
                "{}: found {got}, sshd presented {want}",
                dir.display()
            )),
            None => problems.push(format!(
                "{}: no key found, sshd presented {want}",
                dir.display()
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
