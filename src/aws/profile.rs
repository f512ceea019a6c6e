//! Is a profile defined? The SDK falls back silently when it is not; the AWS CLI refuses, and so do we.

use std::path::PathBuf;

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn config_file() -> Option<PathBuf> {
    std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/config")))
}

fn credentials_file() -> Option<PathBuf> {
    std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/credentials")))
}

pub fn files_description() -> String {
    [config_file(), credentials_file()]
        .iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// True when either file has a section for `name` (`[profile NAME]` or, for default, `[default]`, in the config
/// file; `[NAME]` in the credentials file).
pub fn defined(name: &str) -> bool {
    // "default" also exists through AWS_* credential variables alone, as with the AWS CLI.
    if name == "default" && std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return true;
    }
    let read = |p: Option<PathBuf>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    in_config(&read(config_file()), name) || in_credentials(&read(credentials_file()), name)
}

fn sections(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().filter_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

fn in_config(text: &str, name: &str) -> bool {
    sections(text).any(|s| s == format!("profile {name}") || (name == "default" && s == "default"))
}

fn in_credentials(text: &str, name: &str) -> bool {
    sections(text).any(|s| s == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_profiles_as_the_cli_does() {
        let config = "[default]\nregion=x\n[profile  east ]\nregion = us-east-1\n[sso-session s]\n";
        assert!(in_config(config, "east"));
        assert!(in_config(config, "default"));
        assert!(!in_config(config, "west"));
        assert!(!in_config(config, "s"));
        assert!(in_credentials("[west]\naws_access_key_id=1\n", "west"));
        assert!(!in_credentials("[profile west]\n", "west"));
    }
}
