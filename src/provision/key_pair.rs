//! The link's SSH key: ed25519, made on this machine, private half kept beside the state (0600), public half
//! imported into both regions under one name.

use super::Step;
use crate::aws::call_log::step as label;
use crate::aws::tags::{LinkTags, ROLE_KEY};
use crate::error::{Error, Result};
use crate::state::{write_atomic, StateFiles};
use aws_sdk_ec2::types::KeyPairInfo;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

pub fn key_name(link: &str) -> String {
    format!("vpclink-{link}")
}

/// The link's private key from disk, or a new one (not yet written: see [`persist`]). Returns it and whether it is new.
pub fn load_or_make(files: &StateFiles) -> Result<(PrivateKey, bool)> {
    let path = files.key_path();
    if path.exists() {
        let key = PrivateKey::read_openssh_file(&path).map_err(|e| {
            Error::Runtime(format!(
                "cannot read the link's SSH key {}: {e}; remove it to make a new one",
                path.display()
            ))
        })?;
        return Ok((key, false));
    }
    let key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
        .map_err(|e| Error::Runtime(format!("cannot make an ed25519 key: {e}")))?;
    Ok((key, true))
}

/// Write the private key beside the state, mode 0600.
pub fn persist(files: &StateFiles, key: &PrivateKey) -> Result<()> {
    let path = files.key_path();
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::Runtime(format!("cannot encode the SSH key: {e}")))?;
    write_atomic(&path, text.as_bytes(), 0o600).map_err(|e| {
        Error::Runtime(format!(
            "cannot write {}: {e}; check the state directory",
            path.display()
        ))
    })
}

/// The OpenSSH public key line ("ssh-ed25519 AAAA...").
pub fn public_line(key: &PrivateKey) -> Result<String> {
    key.public_key()
        .to_openssh()
        .map_err(|e| Error::Runtime(format!("cannot encode the SSH public key: {e}")))
}

/// "ssh-ed25519 AAAA..." without the comment, for comparing keys.
fn key_body(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A SHA-256 fingerprint without its "SHA256:" prefix and base64 padding: AWS lists an imported ed25519 key's as
/// padded base64, OpenSSH prints it prefixed and unpadded.
fn fingerprint_body(f: &str) -> &str {
    f.trim().trim_start_matches("SHA256:").trim_end_matches('=')
}

fn sha256_fingerprint(public_key: &str) -> Option<String> {
    let key = ssh_key::PublicKey::from_openssh(public_key).ok()?;
    Some(key.fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

/// Does the key pair AWS lists hold `public_key`? By the public key itself (DescribeKeyPairs with
/// IncludePublicKey), else by its fingerprint; None when AWS said neither.
fn holds(kp: &KeyPairInfo, public_key: &str) -> Option<bool> {
    if let Some(k) = kp.public_key() {
        return Some(key_body(k) == key_body(public_key));
    }
    let listed = kp.key_fingerprint()?;
    let ours = sha256_fingerprint(public_key)?;
    Some(fingerprint_body(listed) == fingerprint_body(&ours))
}

/// What a key pair found under the link's name is to this run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// It holds our public key: use it.
    Ours,
    /// This machine's state recorded this very key pair, but it holds another public key: the link's private key
    /// was lost here and remade. Import the current one (instances launched from now on get it).
    OursKeyRemade,
    /// Someone else's: another machine (or a run with another key) imported it first. Refuse.
    Foreign,
}

pub(crate) fn judge(kp: &KeyPairInfo, public_key: &str, recorded_id: Option<&str>) -> Found {
    let recorded = recorded_id.is_some_and(|r| kp.key_pair_id() == Some(r));
    match holds(kp, public_key) {
        Some(true) => Found::Ours,
        // AWS said nothing to compare with: ours only if this machine recorded it.
        None if recorded => Found::Ours,
        Some(false) if recorded => Found::OursKeyRemade,
        _ => Found::Foreign,
    }
}

/// Why a key pair that holds another public key than this link's is refused (preflight says it before anything is
/// created; `ensure` again if it appeared since).
pub(crate) fn foreign_message(
    side: crate::side::Side,
    name: &str,
    region: &str,
    account: &str,
    link: &str,
) -> String {
    format!(
        "{side}: key pair {name} already exists in {region} (account {account}) and holds another public key than \
         this link's: another machine, or a run with another key, made link '{link}' there first. It is left \
         untouched. Run `vpclink down --name {link}` on the machine that made it, or choose another --name here"
    )
}

/// The refusal for a key pair that holds another public key than this link's.
fn foreign(step: &Step<'_>, name: &str) -> Error {
    Error::Runtime(foreign_message(
        step.side(),
        name,
        &step.aws.region,
        &step.aws.account,
        step.link(),
    ))
}

/// The key pair exists in this region with our public key (the survey looked it up); import it when not. A key pair
/// of the link's name that holds another key is refused, never replaced: it may be another machine's.
pub async fn ensure(step: &Step<'_>, public_key: &str) -> Result<String> {
    let name = key_name(step.link());
    let tags = LinkTags::new(step.link(), step.side(), ROLE_KEY);
    if let Some(kp) = &step.survey.key_pair {
        let recorded = step.side_state(|s| s.key_pair_id.clone());
        match judge(kp, public_key, recorded.as_deref()) {
            Found::Ours => {
                let id = kp.key_pair_id().unwrap_or(&name).to_string();
                step.record(|s| s.key_pair_id = Some(id.clone()))?;
                return Ok(name);
            }
            Found::OursKeyRemade => {
                tracing::warn!(
                    "{}: key pair {name} (made by this machine for this link) holds the link's old public key, whose \
                     private half is gone; importing the current one",
                    step.side()
                );
                label("kp_delete", step.aws.ec2.delete_key_pair(&name)).await?;
            }
            Found::Foreign => return Err(foreign(step, &name)),
        }
    }
    let id = match label(
        "kp_import",
        step.aws.ec2.import_key_pair(&name, public_key, &tags),
    )
    .await
    {
        Ok(id) => id,
        // Both sides in one account and region share the key pair name: the other side imported it a moment ago.
        // AWS refuses a second import of a name (InvalidKeyPair.Duplicate,
        // https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html); it is ours if it holds
        // our public key.
        Err(e) if e.code() == "InvalidKeyPair.Duplicate" => {
            adopt(step, &name, public_key, e).await?
        }
        Err(e) => return Err(e.into()),
    };
    step.record(|s| s.key_pair_id = Some(id.clone()))?;
    Ok(name)
}

/// The key pair that answered Duplicate, if it holds `public_key`; read until visible (a key pair imported a
/// moment ago may not be listed yet: eventual consistency). One that holds another key (another machine imported
/// it between our survey and our import) is refused.
async fn adopt(
    step: &Step<'_>,
    name: &str,
    public_key: &str,
    duplicate: crate::aws::AwsError,
) -> Result<String> {
    let found = super::until_listed(std::time::Duration::from_secs(30), || async {
        let listed = label(
            "kp_find_again",
            step.aws
                .ec2
                .describe_key_pairs(vec![crate::aws::tags::filter("key-name", name)]),
        )
        .await?;
        Ok(listed.into_iter().next())
    })
    .await?;
    match found {
        // The other side of this run imported it: with no key and no fingerprint listed, the Duplicate of a name
        // this run's two sides share is taken as that.
        Some(kp) if holds(&kp, public_key).unwrap_or(true) => {
            Ok(kp.key_pair_id().unwrap_or(name).to_string())
        }
        Some(_) => Err(foreign(step, name)),
        None => Err(duplicate.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(seed: u8) -> String {
        let key = ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
        ssh_key::PublicKey::from(key.public).to_openssh().unwrap()
    }

    fn listed(id: &str, key: Option<&str>, fingerprint: Option<&str>) -> KeyPairInfo {
        KeyPairInfo::builder()
            .key_pair_id(id)
            .set_public_key(key.map(|k| format!("{k} vpclink")))
            .set_key_fingerprint(fingerprint.map(str::to_string))
            .build()
    }

    #[test]
    fn another_public_key_is_refused_unless_this_machine_made_it() {
        let (ours, theirs) = (public(1), public(2));
        assert_eq!(
            judge(&listed("key-1", Some(&ours), None), &ours, None),
            Found::Ours
        );
        assert_eq!(
            judge(&listed("key-1", Some(&theirs), None), &ours, None),
            Found::Foreign
        );
        assert_eq!(
            judge(&listed("key-1", Some(&theirs), None), &ours, Some("key-0")),
            Found::Foreign,
            "a state that recorded another key pair does not make this one ours"
        );
        assert_eq!(
            judge(&listed("key-1", Some(&theirs), None), &ours, Some("key-1")),
            Found::OursKeyRemade
        );
    }

    #[test]
    fn without_the_public_key_the_fingerprint_decides() {
        let (ours, theirs) = (public(1), public(2));
        // AWS lists an imported ed25519 key's SHA-256 fingerprint as padded base64, without "SHA256:".
        let aws = |k: &str| {
            let f = sha256_fingerprint(k).unwrap();
            format!("{}=", f.trim_start_matches("SHA256:"))
        };
        assert_eq!(
            judge(&listed("key-1", None, Some(&aws(&ours))), &ours, None),
            Found::Ours
        );
        assert_eq!(
            judge(&listed("key-1", None, Some(&aws(&theirs))), &ours, None),
            Found::Foreign
        );
        // Neither listed: ours only if this machine recorded it.
        assert_eq!(
            judge(&listed("key-1", None, None), &ours, None),
            Found::Foreign
        );
        assert_eq!(
            judge(&listed("key-1", None, None), &ours, Some("key-1")),
            Found::Ours
        );
    }
}
