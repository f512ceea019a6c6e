//! First-boot user-data, kept as files in cloud-init/ so they can be read and reviewed as they are.

use crate::state::{Os, Role};

const TUNNEL_AL2023: &str = include_str!("../../cloud-init/tunnel-al2023.yaml");
const TUNNEL_UBUNTU: &str = include_str!("../../cloud-init/tunnel-ubuntu2404.yaml");
const TEST_HOST: &str = include_str!("../../cloud-init/test-host.yaml");

pub fn user_data(role: Role, os: Os) -> &'static str {
    match (role, os) {
        (Role::Tunnel, Os::Al2023) => TUNNEL_AL2023,
        (Role::Tunnel, Os::Ubuntu2404 | Os::Debian) => TUNNEL_UBUNTU,
        (Role::Test, _) => TEST_HOST,
    }
}
