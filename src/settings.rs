//! The `VPCLINK_*` settings that take a value, parsed once at start-up (main calls [`init`]): a bad value is refused
//! with exit 2 and a message naming the variable and what it expects, never ignored. The rest of vpclink reads them
//! through [`get`].

use std::sync::OnceLock;

/// AWS's default routes-per-route-table quota.
pub const DEFAULT_ROUTES_PER_TABLE: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// VPCLINK_ELASTIC_IP_QUOTA: the account's raised Elastic IP quota (EC2 reports only the default).
    pub elastic_ip_quota: Option<usize>,
    /// VPCLINK_ROUTES_PER_TABLE: the routes-per-table quota, for accounts whose quota was raised.
    pub routes_per_table: usize,
    /// VPCLINK_FAULT_AT (tests only): fail the Nth changing AWS call.
    pub fault_at: Option<usize>,
    /// VPCLINK_ALLOW_LOOPBACK_SSH=1: configure may SSH to 127.0.0.0/8:22 (a lab that forwards it).
    pub allow_loopback_ssh: bool,
    /// VPCLINK_SERIAL_SIDES=1 (benchmarks only): run the two sides one after the other.
    pub serial_sides: bool,
    /// VPCLINK_CONSOLE_KEY_WAIT: seconds to wait for cloud-init to print a new instance's host keys on its console
    /// before leaving it to trust on first use (default 600: first boot installs packages before it prints them).
    pub console_key_wait_s: u64,
    /// VPCLINK_AGENT_ENDPOINT_URL: the CloudWatch endpoint the tunnel hosts' metrics agent publishes to (a lab's
    /// emulator); unset on real AWS, where the agent uses the side's regional endpoint.
    pub agent_endpoint_url: Option<String>,
}

/// How long `up` and `configure` wait for a new instance's host keys on its console by default.
pub const DEFAULT_CONSOLE_KEY_WAIT_S: u64 = 600;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            elastic_ip_quota: None,
            routes_per_table: DEFAULT_ROUTES_PER_TABLE,
            fault_at: None,
            allow_loopback_ssh: false,
            serial_sides: false,
            console_key_wait_s: DEFAULT_CONSOLE_KEY_WAIT_S,
            agent_endpoint_url: None,
        }
    }
}

/// A switch: "1" on, "0" or unset or empty off; anything else is refused.
fn switch(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    expects: &'static str,
) -> Result<bool, SettingError> {
    match get(var).as_deref() {
        None | Some("") | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(SettingError {
            var,
            value: other.to_string(),
            expects,
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not valid: {var} expects {expects}; fix it or unset it")]
pub struct SettingError {
    pub var: &'static str,
    pub value: String,
    pub expects: &'static str,
}

/// An http:// or https:// URL, or None when the variable is unset or empty.
fn url(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    expects: &'static str,
) -> Result<Option<String>, SettingError> {
    let Some(value) = get(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let host = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .unwrap_or("");
    if host.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(SettingError {
            var,
            value,
            expects,
        });
    }
    Ok(Some(value))
}

/// A whole number from 1, or None when the variable is unset or empty.
fn positive(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    expects: &'static str,
) -> Result<Option<usize>, SettingError> {
    let Some(value) = get(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(SettingError {
            var,
            value,
            expects,
        }),
    }
}

impl Settings {
    /// Parse from any source of variables (pure: the tests pass a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        Ok(Settings {
            elastic_ip_quota: positive(
                &get,
                "VPCLINK_ELASTIC_IP_QUOTA",
                "a whole number of addresses from 1 (the account's Elastic IP quota per region, e.g. 10)",
            )?,
            routes_per_table: positive(
                &get,
                "VPCLINK_ROUTES_PER_TABLE",
                "a whole number of routes from 1 (the routes-per-route-table quota; default 50)",
            )?
            .unwrap_or(DEFAULT_ROUTES_PER_TABLE),
            fault_at: positive(
                &get,
                "VPCLINK_FAULT_AT",
                "a whole number from 1 (tests only: the changing AWS call to fail)",
            )?,
            allow_loopback_ssh: switch(
                &get,
                "VPCLINK_ALLOW_LOOPBACK_SSH",
                "1 (configure may SSH to a loopback address a lab forwards) or 0",
            )?,
            serial_sides: switch(
                &get,
                "VPCLINK_SERIAL_SIDES",
                "1 (benchmarks only: one side after the other) or 0",
            )?,
            console_key_wait_s: positive(
                &get,
                "VPCLINK_CONSOLE_KEY_WAIT",
                "a whole number of seconds from 1 (how long to wait for host keys on a new instance's console; default 600)",
            )?
            .map_or(DEFAULT_CONSOLE_KEY_WAIT_S, |n| n as u64),
            agent_endpoint_url: url(
                &get,
                "VPCLINK_AGENT_ENDPOINT_URL",
                "an http:// or https:// URL (the CloudWatch endpoint the tunnel hosts' metrics agent publishes to, for a lab; unset on AWS)",
            )?,
        })
    }

    /// The settings that name something outside: the log filter must parse, the call log must be writable. Checked
    /// once at start-up with the real environment (not in the pure parser).
    pub fn check_outside(get: impl Fn(&str) -> Option<String>) -> Result<(), SettingError> {
        if let Some(v) = get("VPCLINK_LOG").filter(|v| !v.is_empty()) {
            if tracing_subscriber::EnvFilter::try_new(&v).is_err() {
                return Err(SettingError {
                    var: "VPCLINK_LOG",
                    value: v,
                    expects: "a log filter such as vpclink=debug or info",
                });
            }
        }
        if let Some(v) = get("VPCLINK_CALL_LOG").filter(|v| !v.is_empty()) {
            let writable = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&v)
                .is_ok();
            if !writable {
                return Err(SettingError {
                    var: "VPCLINK_CALL_LOG",
                    value: v,
                    expects: "a file this user can create or append to",
                });
            }
        }
        Ok(())
    }

    /// Parse from this process's environment (a value that is not UTF-8 is refused too).
    pub fn from_env() -> Result<Settings, SettingError> {
        Settings::from_vars(|k| {
            std::env::var_os(k).map(|v| {
                v.into_string()
                    .unwrap_or_else(|v| v.to_string_lossy().into_owned())
            })
        })
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Parse the environment once; main calls this before anything else and exits 2 on error.
pub fn init() -> Result<&'static Settings, SettingError> {
    if let Some(s) = SETTINGS.get() {
        return Ok(s);
    }
    let parsed = Settings::from_env()?;
    Settings::check_outside(|k| std::env::var(k).ok())?;
    Ok(SETTINGS.get_or_init(|| parsed))
}

/// The settings. The binary has checked them in [`init`]; a library caller that did not (a test) gets the
/// environment's valid values and the defaults for the rest.
pub fn get() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings::from_env().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_and_good_values() {
        assert_eq!(parse(&[]).unwrap(), Settings::default());
        assert_eq!(
            parse(&[
                ("VPCLINK_ELASTIC_IP_QUOTA", "10"),
                ("VPCLINK_ROUTES_PER_TABLE", "200"),
                ("VPCLINK_FAULT_AT", "4"),
                ("VPCLINK_CONSOLE_KEY_WAIT", "30"),
                ("VPCLINK_OTHER", "x"),
            ])
            .unwrap(),
            Settings {
                elastic_ip_quota: Some(10),
                routes_per_table: 200,
                fault_at: Some(4),
                console_key_wait_s: 30,
                ..Settings::default()
            }
        );
        // Empty is unset (`VAR= vpclink ...`).
        assert_eq!(
            parse(&[("VPCLINK_ROUTES_PER_TABLE", "")]).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn switches_are_1_or_0_and_outside_names_are_checked() {
        let on = parse(&[
            ("VPCLINK_ALLOW_LOOPBACK_SSH", "1"),
            ("VPCLINK_SERIAL_SIDES", "1"),
        ])
        .unwrap();
        assert!(on.allow_loopback_ssh && on.serial_sides);
        let off = parse(&[
            ("VPCLINK_ALLOW_LOOPBACK_SSH", "0"),
            ("VPCLINK_SERIAL_SIDES", ""),
        ])
        .unwrap();
        assert!(!off.allow_loopback_ssh && !off.serial_sides);
        for (var, value) in [
            ("VPCLINK_ALLOW_LOOPBACK_SSH", "yes please"),
            ("VPCLINK_SERIAL_SIDES", "sometimes"),
        ] {
            let e = parse(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var);
        }
        let outside = |k: &'static str, v: &'static str| {
            Settings::check_outside(move |x| (x == k).then(|| v.to_string()))
        };
        assert_eq!(outside("VPCLINK_LOG", "vpclink=debug"), Ok(()));
        assert_eq!(
            outside("VPCLINK_LOG", "vpclink=loudest").unwrap_err().var,
            "VPCLINK_LOG"
        );
        assert_eq!(
            outside("VPCLINK_CALL_LOG", "/nonexistent-dir/calls.jsonl")
                .unwrap_err()
                .var,
            "VPCLINK_CALL_LOG"
        );
    }

    #[test]
    fn agent_endpoint_url_is_an_http_url() {
        assert_eq!(parse(&[]).unwrap().agent_endpoint_url, None);
        assert_eq!(
            parse(&[("VPCLINK_AGENT_ENDPOINT_URL", "http://10.0.2.2:4566")])
                .unwrap()
                .agent_endpoint_url
                .as_deref(),
            Some("http://10.0.2.2:4566")
        );
        for bad in ["10.0.2.2:4566", "http://", "ftp://x", "http://a b"] {
            let e = parse(&[("VPCLINK_AGENT_ENDPOINT_URL", bad)]).unwrap_err();
            assert_eq!(e.var, "VPCLINK_AGENT_ENDPOINT_URL");
            assert!(e.to_string().contains("an http:// or https:// URL"), "{e}");
        }
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_expects() {
        for (var, value) in [
            ("VPCLINK_ELASTIC_IP_QUOTA", "abc"),
            ("VPCLINK_ELASTIC_IP_QUOTA", "0"),
            ("VPCLINK_ELASTIC_IP_QUOTA", "5.5"),
            ("VPCLINK_ROUTES_PER_TABLE", "-1"),
            ("VPCLINK_ROUTES_PER_TABLE", " 50"),
            ("VPCLINK_FAULT_AT", "x"),
            ("VPCLINK_FAULT_AT", "0"),
            ("VPCLINK_CONSOLE_KEY_WAIT", "0"),
            ("VPCLINK_CONSOLE_KEY_WAIT", "10m"),
        ] {
            let e = parse(&[(var, value)]).unwrap_err();
            assert_eq!((e.var, e.value.as_str()), (var, value));
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "{var}={value:?} is not valid: {var} expects a whole number"
                )),
                "{msg}"
            );
            assert_eq!(crate::Error::from(e).exit_code(), crate::error::EXIT_USAGE);
        }
    }
}
