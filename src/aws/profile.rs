//! Is a profile defined? The SDK falls back silently when it is not; the AWS CLI refuses, and so do we.
//!
//! The files are read by aws-config's own loader (the one `sdk_config` resolves the profile with), so what counts
//! as a profile is what the SDK and the AWS CLI count: `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` with `~`
//! expanded, `[profile NAME]` and `[default]` in the config file, `[NAME]` in the credentials file, comments after
//! a section header; an `[sso-session NAME]` is not a profile. Credentials (source_profile chains, sso_session,
//! credential_process) are the SDK's to resolve when the first call is made. `AWS_PROFILE` is never consulted.

use aws_config::profile::ProfileSet;
use aws_types::os_shim_internal::{Env, Fs};
use std::path::PathBuf;

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// A path as the SDK reads it: a leading `~/` is the home directory.
fn expand(path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), home()) {
        (Ok(rest), Some(h)) => h.join(rest),
        _ => path,
    }
}

fn config_file() -> Option<PathBuf> {
    std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("~/.aws/config")))
        .map(expand)
}

fn credentials_file() -> Option<PathBuf> {
    std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("~/.aws/credentials")))
        .map(expand)
}

/// The two files, for messages.
pub fn files_description() -> String {
    [config_file(), credentials_file()]
        .iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Every profile of the config and credentials files, as aws-config loads them for the SDK. A file that cannot be
/// parsed defines nothing (the SDK then has no profile either); the parser's message is logged.
async fn profile_set(env: &Env, fs: &Fs) -> Option<ProfileSet> {
    // No profile override: the selected profile (AWS_PROFILE) plays no part in which profiles exist.
    match aws_config::profile::load(fs, env, &Default::default(), None).await {
        Ok(set) => Some(set),
        Err(e) => {
            tracing::warn!(
                "cannot read the AWS profiles in {}: {e}",
                files_description()
            );
            None
        }
    }
}

/// True when `name` is a profile of the config or credentials file, as the SDK and the AWS CLI read them.
pub async fn defined(name: &str) -> bool {
    defined_in(name, &Env::real(), &Fs::real()).await
}

async fn defined_in(name: &str, env: &Env, fs: &Fs) -> bool {
    // "default" also exists through AWS_* credential variables alone, as with the AWS CLI.
    if name == "default" && env.get("AWS_ACCESS_KEY_ID").is_ok() {
        return true;
    }
    profile_set(env, fs)
        .await
        .is_some_and(|set| set.get_profile(name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn defined_with(config: &str, credentials: &str, name: &str) -> bool {
        let fs = Fs::from_slice(&[("/c", config), ("/k", credentials)]);
        let env = Env::from_slice(&[
            ("AWS_CONFIG_FILE", "/c"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/k"),
            ("AWS_PROFILE", "west"),
        ]);
        defined_in(name, &env, &fs).await
    }

    #[tokio::test]
    async fn finds_profiles_as_the_sdk_does() {
        let config = "[default]\nregion=x\n[profile  east ] # prod\nregion = us-east-1\n[sso-session s]\nsso_region=x\n[bare]\nregion=x\n";
        assert!(defined_with(config, "", "east").await);
        assert!(defined_with(config, "", "default").await);
        assert!(!defined_with(config, "", "west").await);
        assert!(!defined_with(config, "", "s").await);
        assert!(!defined_with(config, "", "bare").await);
        assert!(defined_with("", "[west]\naws_access_key_id=1\n", "west").await);
    }
}
