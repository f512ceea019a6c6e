//! Pin each instance's SSH host key before the first connection: cloud-init prints the host keys on the serial
//! console between `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`, and the console is
//! read through the EC2 API, a channel an attacker on the network path cannot forge. Hosts whose console shows no
//! key in time are left unpinned; configure then trusts on first use, warns, and pins. A profile that may not read
//! consoles can still pin: `vpclink pin` takes the key from a console output someone else saved.

use crate::aws::{AwsError, SideAws};
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

/// What one console read means for the host polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleStep {
    /// The key block is there: pin this key.
    Found(String),
    /// No output yet, or no key block yet. cloud-init prints the keys from `keys_to_console`, one of the last
    /// modules of its final stage, after `package_update_upgrade_install` (cloud_final_modules in the default
    /// cloud.cfg, e.g. https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/8/html/configuring_and_managing_cloud-init_for_rhel_8/the-default-cloud-cfg-file_red-hat-support-for-cloud-init),
    /// so on a first boot that installs packages the block can take minutes to appear.
    Wait,
    /// `Latest=true` was refused (it is Nitro-only; Xen types such as t2 reject it): from now on ask this host
    /// without it, at once.
    DropLatest,
    /// The profile may not read consoles (ec2:GetConsoleOutput denied): asking again cannot help, and would hold
    /// `up` for the whole budget; this host is trusted on first use, which the warning says.
    Denied,
    /// Any other error (throttling, a network blip, eventual consistency): keep the host and poll again; `warn`
    /// is true the first time this host fails, so the log says it once.
    Failed { warn: bool },
}

/// Error codes that mean "not now", never "not this parameter": a Latest read failing with one of these is
/// retried as it is.
fn transient_or_access(e: &AwsError) -> bool {
    e.is_denied()
        || e.is_not_found()
        || matches!(
            e.code(),
            "" | "RequestLimitExceeded"
                | "Throttling"
                | "ThrottlingException"
                | "InternalError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "Unavailable"
                | "AuthFailure"
                | "ExpiredToken"
                | "RequestExpired"
        )
}

/// Whether an error to a read with `Latest=true` is EC2 refusing that parameter for this instance type. The API
/// reference documents Latest as Nitro-only without naming the error; EC2 rejects unsupported parameter uses with
/// client errors such as UnsupportedOperation or InvalidParameterCombination. Any client error other than
/// throttling, access or not-found is taken as that: asking without Latest costs nothing but staleness.
pub fn latest_refused(e: &AwsError) -> bool {
    !transient_or_access(e)
}

/// Decide what one console read means. `latest`: whether it was asked with Latest=true; `failures`: how many reads
/// of this host failed before this one.
pub fn next_step(
    read: Result<Option<&str>, &AwsError>,
    latest: bool,
    failures: u32,
) -> ConsoleStep {
    match read {
        Ok(Some(text)) => match ed25519_from_console(text) {
            Some(k) => ConsoleStep::Found(k),
            None => ConsoleStep::Wait,
        },
        Ok(None) => ConsoleStep::Wait,
        Err(e) if e.is_denied() => ConsoleStep::Denied,
        Err(e) if latest && latest_refused(e) => ConsoleStep::DropLatest,
        Err(_) => ConsoleStep::Failed {
            warn: failures == 0,
        },
    }
}

/// How to pin a host's key when this profile cannot read it from the console: someone who may read the console
/// saves it, and `vpclink pin` takes the key from the file, before configure trusts the key offered on first use.
pub fn pin_by_hand(link: &str, side: Side, role: Role, instance_id: &str) -> String {
    format!(
        "to pin it instead, have someone who may read consoles save its console output once first boot has \
         finished (EC2 console: Get system log; or `aws ec2 get-console-output --instance-id {instance_id} \
         --latest --output text > FILE`, without --latest on Xen types such as t2), then run `vpclink pin --name \
         {link} --side {side} --role {} --console FILE` before `vpclink configure` (`vpclink up --no-configure` \
         stops before it)",
        role.as_str()
    )
}

/// One host being polled.
struct Polled {
    role: Role,
    id: String,
    latest: bool,
    failures: u32,
}

/// Poll the console of every unpinned instance on one side until each shows its key or `budget` runs out. A read
/// that fails keeps the host in the list (a host dropped here would be trusted on first use, possibly racing
/// sshd); a host whose console never shows a key is named in a warning, and configure trusts it on first use.
pub async fn read_keys(
    aws: &SideAws,
    link: &str,
    wanted: Vec<(Role, String)>,
    budget: Duration,
) -> Vec<(Role, String)> {
    let side = aws.side;
    let started = Instant::now();
    let deadline = started + budget;
    let mut found = Vec::new();
    let mut left: Vec<Polled> = wanted
        .into_iter()
        .map(|(role, id)| Polled {
            role,
            id,
            latest: true,
            failures: 0,
        })
        .collect();
    while !left.is_empty() {
        let mut still = Vec::new();
        for mut h in left {
            loop {
                let read = aws.ec2.console_output(&h.id, h.latest).await;
                match next_step(read.as_ref().map(|o| o.as_deref()), h.latest, h.failures) {
                    ConsoleStep::Found(k) => {
                        tracing::info!(
                            "{side} {} {}: SSH host key pinned from the console after {} s",
                            h.role.as_str(),
                            h.id,
                            started.elapsed().as_secs()
                        );
                        found.push((h.role, k));
                    }
                    ConsoleStep::Wait => still.push(h),
                    ConsoleStep::Denied => {
                        tracing::warn!(
                            "{side} {} {}: profile {} may not read instance consoles ({}); its SSH host key will be trusted on first use. Allow ec2:GetConsoleOutput to have it pinned from the console, or {}",
                            h.role.as_str(),
                            h.id,
                            aws.profile,
                            read.as_ref().err().map(|e| e.code().to_string()).unwrap_or_default(),
                            pin_by_hand(link, side, h.role, &h.id)
                        );
                    }
                    ConsoleStep::DropLatest => {
                        tracing::info!(
                            "{side} {} {}: the latest console output is refused ({}); reading the buffered output instead",
                            h.role.as_str(),
                            h.id,
                            read.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
                        );
                        h.latest = false;
                        continue;
                    }
                    ConsoleStep::Failed { warn } => {
                        let e = read
                            .as_ref()
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default();
                        if warn {
                            tracing::warn!(
                                "{side} {} {}: cannot read the console, will keep trying: {e}",
                                h.role.as_str(),
                                h.id
                            );
                        } else {
                            tracing::debug!(
                                "{side} {} {}: console read failed again: {e}",
                                h.role.as_str(),
                                h.id
                            );
                        }
                        h.failures += 1;
                        still.push(h);
                    }
                }
                break;
            }
        }
        left = still;
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    for h in &left {
        tracing::warn!(
            "{side} {} {}: the console showed no SSH host key within {} s{}; configure will trust the key offered on first use and pin it; {}",
            h.role.as_str(),
            h.id,
            budget.as_secs(),
            if h.failures > 0 {
                format!(" ({} console reads failed)", h.failures)
            } else {
                String::new()
            },
            pin_by_hand(link, side, h.role, &h.id)
        );
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

    fn aws_err(code: &str) -> AwsError {
        AwsError {
            side: Side::East,
            profile: "p".into(),
            action: "ec2:GetConsoleOutput",
            resource: "i-0123".into(),
            code: (!code.is_empty()).then(|| code.to_string()),
            message: "m".into(),
        }
    }

    const KEYS: &str = "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4IuHARW6OKs96O8yoZMF8pHJbieJu8AkIFUjSwbcg2 root@h\n-----END SSH HOST KEY KEYS-----\n";

    #[test]
    fn a_key_is_found_and_silence_means_wait() {
        assert!(
            matches!(next_step(Ok(Some(KEYS)), true, 0), ConsoleStep::Found(k) if k.starts_with("ssh-ed25519 AAAAC3"))
        );
        // cloud-init prints the block late (keys_to_console, after packages): output without it means wait.
        assert_eq!(
            next_step(Ok(Some("[  OK  ] Started sshd\n")), true, 0),
            ConsoleStep::Wait
        );
        assert_eq!(next_step(Ok(None), false, 3), ConsoleStep::Wait);
    }

    /// Latest=true is Nitro-only: a Xen instance (t2) refuses it; ask without it instead of dropping the host.
    #[test]
    fn latest_refused_means_ask_without_it() {
        for code in [
            "UnsupportedOperation",
            "InvalidParameterCombination",
            "InvalidParameterValue",
        ] {
            assert_eq!(
                next_step(Err(&aws_err(code)), true, 0),
                ConsoleStep::DropLatest,
                "{code}"
            );
            // Already without Latest: an ordinary failure, the host stays.
            assert_eq!(
                next_step(Err(&aws_err(code)), false, 0),
                ConsoleStep::Failed { warn: true }
            );
        }
    }

    /// Throttling, no answer, a not-yet-visible instance: keep polling, warn once.
    #[test]
    fn other_errors_keep_the_host_and_warn_once() {
        for code in [
            "RequestLimitExceeded",
            "",
            "InvalidInstanceID.NotFound",
            "InternalError",
        ] {
            let e = aws_err(code);
            assert!(!latest_refused(&e), "{code}");
            assert_eq!(
                next_step(Err(&e), true, 0),
                ConsoleStep::Failed { warn: true },
                "{code}"
            );
            assert_eq!(
                next_step(Err(&e), true, 1),
                ConsoleStep::Failed { warn: false },
                "{code}"
            );
        }
    }

    /// The warnings for a host left to trust on first use say how to pin its key by hand instead.
    #[test]
    fn the_hand_pinning_hint_names_the_command_for_that_host() {
        let h = pin_by_hand("lnk", Side::West, Role::Test, "i-0abc");
        assert!(
            h.contains("`vpclink pin --name lnk --side west --role test --console FILE`"),
            "{h}"
        );
        assert!(h.contains("--instance-id i-0abc"), "{h}");
        assert!(!h.contains("  "), "{h}");
    }

    /// No permission to read consoles: stop asking at once (polling would hold `up` for the whole budget).
    #[test]
    fn a_denied_console_read_stops_polling_that_host() {
        for code in ["UnauthorizedOperation", "AccessDenied"] {
            let e = aws_err(code);
            assert!(e.is_denied(), "{code}");
            assert_eq!(next_step(Err(&e), true, 0), ConsoleStep::Denied, "{code}");
            assert_eq!(next_step(Err(&e), false, 3), ConsoleStep::Denied, "{code}");
        }
    }
}
