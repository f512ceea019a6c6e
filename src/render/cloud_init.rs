//! First-boot user-data, kept as files in cloud-init/ so they can be read and reviewed as they are.

use crate::state::{Os, Role};

const TUNNEL_AL2023: &str = include_str!("../../cloud-init/tunnel-al2023.yaml");
const TUNNEL_UBUNTU: &str = include_str!("../../cloud-init/tunnel-ubuntu2404.yaml");
const TUNNEL_DEBIAN: &str = include_str!("../../cloud-init/tunnel-debian.yaml");
const TEST_HOST: &str = include_str!("../../cloud-init/test-host.yaml");

/// The user-data a host gets on its first boot: `up` sends it as RunInstances' UserData, and `render` writes the same
/// bytes beside each host's files (a lab hands them to cloud-init's NoCloud data source).
pub fn user_data(role: Role, os: Os) -> &'static str {
    match (role, os) {
        (Role::Tunnel, Os::Al2023) => TUNNEL_AL2023,
        (Role::Tunnel, Os::Ubuntu2404) => TUNNEL_UBUNTU,
        (Role::Tunnel, Os::Debian12 | Os::Debian13) => TUNNEL_DEBIAN,
        (Role::Test, _) => TEST_HOST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// User-data is readable by anyone on the host (and by whoever may DescribeInstanceAttribute): packages only.
    #[test]
    fn user_data_is_cloud_config_without_key_material() {
        for os in [Os::Al2023, Os::Ubuntu2404, Os::Debian12, Os::Debian13] {
            for role in [Role::Tunnel, Role::Test] {
                let u = user_data(role, os);
                assert!(u.starts_with("#cloud-config\n"), "{role:?} {os:?}");
                for secret in [
                    "PRIVATE KEY",
                    "ssh_keys",
                    "ssh-ed25519 AAAA",
                    "ssh-rsa AAAA",
                    "0sAw",
                ] {
                    assert!(!u.contains(secret), "{role:?} {os:?}: {secret}");
                }
            }
        }
        for os in [Os::Debian12, Os::Debian13] {
            let u = user_data(Role::Tunnel, os);
            assert!(u.contains("Debian"), "{os:?}");
            for p in ["libreswan", "iptables", "tcpdump"] {
                assert!(u.contains(&format!("\n  - {p}\n")), "{os:?}: {p}");
            }
        }
    }
}
