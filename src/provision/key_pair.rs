//! The link's SSH key: ed25519, made on this machine, private half kept beside the state (0600), public half
//! imported into both regions under one name.

use super::Step;
use crate::aws::call_log::step as label;
use crate::aws::tags::{LinkTags, ROLE_KEY};
use crate::error::{Error, Result};
use crate::state::{write_atomic, StateFiles};
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

/// The key pair exists in this region with our public key (the survey looked it up); import it (again) when not.
pub async fn ensure(step: &Step<'_>, public_key: &str) -> Result<String> {
    let name = key_name(step.link());
    let tags = LinkTags::new(step.link(), step.side(), ROLE_KEY);
    if let Some(kp) = &step.survey.key_pair {
        let same = kp
            .public_key()
            .is_none_or(|k| key_body(k) == key_body(public_key));
        if same {
            let id = kp.key_pair_id().unwrap_or(&name).to_string();
            step.record(|s| s.key_pair_id = Some(id.clone()))?;
            return Ok(name);
        }
        // Ours by name but not our key (the local key was lost and remade): instances launched from now on get it.
        tracing::warn!(
            "{}: key pair {name} holds another public key; importing the current one",
            step.side()
        );
        label("kp_delete", step.aws.ec2.delete_key_pair(&name)).await?;
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
/// moment ago may not be listed yet: eventual consistency).
async fn adopt(
    step: &Step<'_>,
    name: &str,
    public_key: &str,
    duplicate: crate::aws::AwsError,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = label(
            "kp_find_again",
            step.aws
                .ec2
                .describe_key_pairs(vec![crate::aws::tags::filter("key-name", name)]),
        )
        .await?;
        match found.first() {
            Some(kp) if kp.public_key().is_none_or(|k| key_body(k) == key_body(public_key)) => {
                return Ok(kp.key_pair_id().unwrap_or(name).to_string())
            }
            Some(_) => {
                return Err(Error::Runtime(format!(
                    "{}: key pair {name} exists in {} and holds another public key than this link's ({}); another machine or run owns it. Run `vpclink down --name {}` where it was made, or pick another --name",
                    step.side(),
                    step.aws.region,
                    duplicate.code(),
                    step.link()
                )))
            }
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await
            }
            None => return Err(duplicate.into()),
        }
    }
}
