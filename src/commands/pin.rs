//! `vpclink pin`: pin a host's SSH host key from a console output saved by hand. For a profile that may not call
//! ec2:GetConsoleOutput: someone who may saves the output (the EC2 console's "Get system log", `aws ec2
//! get-console-output --output text`, or a serial log), and the key cloud-init printed there is pinned before
//! configure would otherwise trust the key offered on first use. The key is found by the parser `up` uses
//! (`provision::host_keys::ed25519_from_console`). Holds the link's lock while it reads and writes the state.

use crate::cli::PinArgs;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::provision::host_keys::ed25519_from_console;
use crate::side::Side;
use crate::state::{Role, StateFiles};
use serde::Serialize;
use std::path::Path;

/// What a saved console output means for the key pinned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No key pinned yet: pin this one.
    Pin(String),
    /// The pinned key is this one already: nothing to do.
    Same(String),
    /// Another key is pinned and `--replace` was given: pin this one instead.
    Replace { old: String, new: String },
    /// Another key is pinned: refused without `--replace`.
    Differs { pinned: String, found: String },
    /// The output holds no key block with an ed25519 key.
    NoKey,
}

/// The console text in what was saved: the text itself (the EC2 console's "Get system log", `--output text`, a
/// serial log), or the JSON answer of `aws ec2 get-console-output` (its `Output`, which the CLI has decoded already;
/// still base64, as the API sends it, when saved by other means).
pub(crate) fn console_text(saved: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Output")]
        output: String,
    }
    let Ok(Answer { output }) = serde_json::from_str::<Answer>(saved) else {
        return saved.to_string();
    };
    if output.contains("-----BEGIN SSH HOST KEY KEYS-----") {
        return output;
    }
    use base64::Engine as _;
    let compact: String = output.split_whitespace().collect();
    match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => output,
    }
}

/// Decide from the saved console text, the key pinned now, and `--replace`. Keys are compared on type and key, not
/// comment.
pub(crate) fn decide(console: &str, pinned: Option<&str>, replace: bool) -> Verdict {
    let Some(found) = ed25519_from_console(console) else {
        return Verdict::NoKey;
    };
    match pinned {
        None => Verdict::Pin(found),
        Some(p) if crate::ssh::same_key(p, &found) => Verdict::Same(found),
        Some(p) if replace => Verdict::Replace {
            old: p.to_string(),
            new: found,
        },
        Some(p) => Verdict::Differs {
            pinned: p.to_string(),
            found,
        },
    }
}

#[derive(Debug, Serialize)]
struct PinReport {
    link: String,
    side: Side,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
    /// "pinned", "replaced" or "unchanged".
    outcome: &'static str,
    host_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced: Option<String>,
    console: String,
}

fn host_label(side: Side, role: Role) -> String {
    format!("{side} {} host", role.as_str())
}

fn read_console(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Input(format!(
            "cannot read the console output {}: {e}; pass the file the host's console output was saved to",
            path.display()
        ))
    })?;
    // Consoles carry the odd byte that is not UTF-8 (boot loaders, line noise): the key block is ASCII either way.
    Ok(console_text(&String::from_utf8_lossy(&bytes)))
}

pub(super) async fn pin_cmd(a: &PinArgs, out: &Output) -> Result<()> {
    let (side, role, file) = (a.side, a.role, a.console.display().to_string());
    let label = host_label(side, role);
    let console = read_console(&a.console)?;
    let files = StateFiles::for_link(&a.name.name)?;
    let _lock = crate::lock::acquire(&files).await?;
    let mut state = files.load()?;
    let link = state.name.clone();
    let slot = match role {
        Role::Tunnel => &mut state.side_mut(side).tunnel,
        Role::Test => &mut state.side_mut(side).test,
    };
    let Some(host) = slot.as_mut() else {
        return Err(Error::Input(format!(
            "link '{link}' has no {label} in its state yet; nothing was pinned. Run `vpclink up` (with \
             --no-configure to stop before the first connection) first{}",
            if role == Role::Test {
                ", without --no-test-hosts"
            } else {
                ""
            }
        )));
    };
    let instance_id = host.instance_id.clone();
    let report = |outcome, host_key: String, replaced| PinReport {
        link: link.clone(),
        side,
        role,
        instance_id: instance_id.clone(),
        outcome,
        host_key,
        replaced,
        console: file.clone(),
    };
    let r = match decide(&console, host.host_key.as_deref(), a.replace) {
        // Without Latest, GetConsoleOutput returns "buffered information that was posted shortly after an instance
        // transition state", and only the most recent 64 KB; Latest is Nitro-only
        // (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html).
        Verdict::NoKey => {
            return Err(Error::Input(format!(
                "{file} holds no SSH host key block (-----BEGIN SSH HOST KEY KEYS----- ... -----END SSH HOST KEY \
                 KEYS-----) with an ssh-ed25519 key, so nothing was pinned for the {label} of link '{link}'. \
                 cloud-init prints that block near the end of the host's first boot (\"vpclink: first boot \
                 finished\" follows it): save the {side} {} host's console output again once its first boot has \
                 finished, the whole of it, and the latest (EC2 otherwise returns what it buffered shortly after the \
                 instance started: `aws ec2 get-console-output --latest` on Nitro types), then run `vpclink pin` \
                 again",
                role.as_str()
            )));
        }
        Verdict::Differs { pinned, found } => {
            return Err(Error::Input(format!(
                "the {label} of link '{link}' already has another SSH host key pinned: {pinned}; {file} shows \
                 {found}. Nothing changed. If that host was replaced or re-keyed, run again with --replace; if not, \
                 the file is from another host, or the host now answering is not the one first pinned"
            )));
        }
        Verdict::Same(key) => report("unchanged", key, None),
        Verdict::Pin(key) => {
            host.host_key = Some(key.clone());
            files.save(&state)?;
            report("pinned", key, None)
        }
        Verdict::Replace { old, new } => {
            host.host_key = Some(new.clone());
            files.save(&state)?;
            report("replaced", new, Some(old))
        }
    };
    out.emit(&r, || match r.outcome {
        "unchanged" => format!(
            "{label}: {} is pinned already; nothing changed\n",
            r.host_key
        ),
        "replaced" => format!(
            "{label}: pinned {} from {file}, replacing {}\n",
            r.host_key,
            r.replaced.as_deref().unwrap_or_default()
        ),
        _ => format!("{label}: pinned {} from {file}\n", r.host_key),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4IuHARW6OKs96O8yoZMF8pHJbieJu8AkIFUjSwbcg2";
    const B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB";

    fn console(key: &str) -> String {
        format!(
            "[   42.1] cloud-init[601]: Cloud-init v. 25.1 finished\n-----BEGIN SSH HOST KEY KEYS-----\r\n\
             ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBxx root@host\r\n\
             {key} root@host\r\n-----END SSH HOST KEY KEYS-----\r\nvpclink: first boot finished after 42 s\n"
        )
    }

    #[test]
    fn an_unpinned_host_gets_the_key_from_the_block() {
        assert_eq!(decide(&console(A), None, false), Verdict::Pin(A.into()));
        assert_eq!(decide(&console(A), None, true), Verdict::Pin(A.into()));
    }

    #[test]
    fn the_same_key_changes_nothing_whatever_its_comment() {
        let pinned = format!("{A} root@elsewhere");
        assert_eq!(
            decide(&console(A), Some(&pinned), false),
            Verdict::Same(A.into())
        );
        assert_eq!(decide(&console(A), Some(A), true), Verdict::Same(A.into()));
    }

    #[test]
    fn another_key_is_refused_unless_replace() {
        assert_eq!(
            decide(&console(B), Some(A), false),
            Verdict::Differs {
                pinned: A.into(),
                found: B.into()
            }
        );
        assert_eq!(
            decide(&console(B), Some(A), true),
            Verdict::Replace {
                old: A.into(),
                new: B.into()
            }
        );
    }

    #[test]
    fn no_block_or_no_ed25519_key_is_no_key_whatever_is_pinned() {
        let only_ecdsa = "-----BEGIN SSH HOST KEY KEYS-----\necdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB root@h\n-----END SSH HOST KEY KEYS-----\n";
        for text in [
            "",
            "[    0.000000] Linux version 6.1.0-28-cloud-amd64\n",
            // A key outside the block is not the one cloud-init printed for the host.
            &format!("{A} root@host\n"),
            // The output was cut before the end of the block.
            &console(A)[..console(A).find("-----END").unwrap()],
            only_ecdsa,
        ] {
            assert_eq!(decide(text, None, false), Verdict::NoKey, "{text:?}");
            assert_eq!(decide(text, Some(A), true), Verdict::NoKey, "{text:?}");
        }
    }

    #[test]
    fn saved_console_text_is_read_as_it_is_or_out_of_the_cli_json() {
        use base64::Engine as _;
        let text = console(A);
        assert_eq!(console_text(&text), text);
        let decoded =
            serde_json::json!({"InstanceId": "i-1", "Output": text, "Timestamp": "t"}).to_string();
        assert_eq!(console_text(&decoded), text);
        let raw = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let encoded = serde_json::json!({"InstanceId": "i-1", "Output": raw}).to_string();
        assert_eq!(console_text(&encoded), text);
        assert_eq!(
            decide(&console_text(&encoded), None, false),
            Verdict::Pin(A.into())
        );
        // JSON that is not that answer is kept as text.
        assert_eq!(console_text("{\"x\": 1}"), "{\"x\": 1}");
    }
}
