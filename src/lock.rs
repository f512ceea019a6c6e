//! One run per link. `up`, `down`, `configure` and `pin` take an exclusive lock on `NAME.lock` beside the state file
//! (flock through `std::fs::File::try_lock`: the kernel releases it when the process ends, however it ends, so a
//! lock is never stale) and write their PID into it. A second run waits up to [`WAIT`], saying so on stderr, then
//! exits 1 naming the holder's PID. Read-only commands (plan, status, map, render, verify) take no lock.
//!
//! The file is never removed: removing it while another run waits on it would let two runs hold two files.

use crate::error::{Error, Result};
use crate::state::StateFiles;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

/// How long a second run waits for the first before giving up.
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// Held for the life of a run; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct LinkLock {
    _file: File,
}

pub fn lock_path(files: &StateFiles) -> PathBuf {
    files.dir.join(format!("{}.lock", files.name))
}

fn io(path: &std::path::Path, what: &str, e: std::io::Error) -> Error {
    Error::Runtime(format!(
        "cannot {what} the link's lock file {}: {e}; check the state directory",
        path.display()
    ))
}

fn open(files: &StateFiles) -> Result<(File, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = lock_path(files);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&files.dir)
        .map_err(|e| io(&files.dir, "create the directory of", e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io(&path, "open", e))?;
    Ok((file, path))
}

/// The PID the holder wrote, if it has written one yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn describe(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("PID {p}"),
        None => "a process that has not written its PID yet".into(),
    }
}

/// Take the link's lock, waiting up to [`WAIT`] for another run to finish.
pub async fn acquire(files: &StateFiles) -> Result<LinkLock> {
    acquire_within(files, WAIT).await
}

pub async fn acquire_within(files: &StateFiles, wait: Duration) -> Result<LinkLock> {
    let (mut file, path) = open(files)?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let pid = holder(&mut file);
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Runtime(format!(
                        "link '{}' is in use by another vpclink run ({}, lock {}); waited {} s. Let it finish, \
                         or stop that process, then run the same command again",
                        files.name,
                        describe(pid),
                        path.display(),
                        wait.as_secs()
                    )));
                }
                if !said {
                    eprintln!(
                        "link '{}' is in use by another vpclink run ({}); waiting up to {} s for it to finish",
                        files.name,
                        describe(pid),
                        wait.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(POLL).await;
            }
            Err(TryLockError::Error(e)) => return Err(io(&path, "lock", e)),
        }
    }
    let pid = std::process::id();
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| writeln!(file, "{pid}"))
        .and_then(|()| file.flush())
        .map_err(|e| io(&path, "write", e))?;
    if said {
        eprintln!(
            "link '{}': the other run has finished; going on",
            files.name
        );
    }
    Ok(LinkLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path) -> StateFiles {
        StateFiles {
            dir: dir.join("vpclink"),
            name: "t".into(),
        }
    }

    #[tokio::test]
    async fn a_second_holder_waits_then_is_refused_with_the_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        let held = acquire_within(&f, Duration::ZERO).await.unwrap();
        let text = std::fs::read_to_string(lock_path(&f)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let e = acquire_within(&f, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .contains(&format!("PID {}", std::process::id())),
            "{e}"
        );
        drop(held);
        let _again = acquire_within(&f, Duration::ZERO).await.unwrap();
    }
}
