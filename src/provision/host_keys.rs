//! Pin each instance's SSH host key before the first connection: cloud-init prints the host keys on the serial
//! console between `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`, and the console is
//! read through the EC2 API, a channel an attacker on the network path cannot forge. Hosts whose console shows no
//! key in time are left unpinned; configure then trusts on first use, warns, and pins.

use crate::aws::SideAws;
use crate::side::Side;
use crate::state::{LinkState, Role};
use std::time::{Duration, Instant};

/// The ed25519 host key line from console output, if cloud-init printed one.
pub fn ed25519_from_console(console: &str) -> Option<String> {
    let start = console.find("-----BEGIN SSH HOST KEY KEYS-----")?;
    let block = &console[start..];
    let end = block.find("-----END SSH HOST KEY KEYS-----")?;
    block[..end]
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some("ssh-ed25519"), Some(key)) if key.len() > 40 => {
                    Some(format!("ssh-ed25519 {key}"))
                }
                _ => None,
            }
        })
        .next()
}

/// Hosts on this side that have an instance but no pinned key.
pub fn unpinned(state: &LinkState, side: Side) -> Vec<(Role, String)> {
    let s = state.side(side);
    [(Role::Tunnel, &s.tunnel), (Role::Test, &s.test)]
        .into_iter()
        .filter_map(|(role, h)| {
            let h = h.as_ref()?;
            match (&h.instance_id, &h.host_key) {
                (Some(id), None) => Some((role, id.clone())),
                _ => None,
            }
        })
        .collect()
}

/// Poll the console of every unpinned instance on one side until each shows its key or `budget` runs out.
pub async fn read_keys(
    aws: &SideAws,
    wanted: Vec<(Role, String)>,
    budget: Duration,
) -> Vec<(Role, String)> {
    let deadline = Instant::now() + budget;
    let mut found = Vec::new();
    let mut left = wanted;
    while !left.is_empty() {
        let mut still = Vec::new();
        for (role, id) in left {
            match aws.ec2.console_output(&id).await {
                Ok(Some(text)) => match ed25519_from_console(&text) {
                    Some(k) => found.push((role, k)),
                    None => still.push((role, id)),
                },
                Ok(None) => still.push((role, id)),
                Err(e) => {
                    tracing::warn!("{}: cannot read the console of {id}: {e}", aws.side);
                }
            }
        }
        left = still;
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ed25519_key_in_cloud_init_output() {
        let console = "[  OK  ] Started sshd\n-----BEGIN SSH HOST KEY KEYS-----\necdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB root@ip-10-0-0-10\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4IuHARW6OKs96O8yoZMF8pHJbieJu8AkIFUjSwbcg2 root@ip-10-0-0-10\n-----END SSH HOST KEY KEYS-----\n";
        assert_eq!(
            ed25519_from_console(console).as_deref(),
            Some(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4IuHARW6OKs96O8yoZMF8pHJbieJu8AkIFUjSwbcg2"
            )
        );
    }

    #[test]
    fn no_block_no_key() {
        assert_eq!(
            ed25519_from_console("booting\nssh-ed25519 AAAAC3Nza... outside the block"),
            None
        );
        assert_eq!(
            ed25519_from_console("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA"),
            None
        );
    }
}
