//! Kernel modules loaded at boot by systemd-modules-load (modules-load.d(5)). The boot unit (unit.rs) has default
//! dependencies, so it runs after sysinit.target, which systemd-modules-load.service is part of: up.sh finds the
//! modules loaded instead of relying on autoload. `PREPARE` loads the same list on the first configure.

use super::TunnelView;
use crate::state::Os;

/// What the data plane needs: GRE, the dummy interface holding the Elastic IP, the IPsec policy match, NETMAP.
pub const DATA_PLANE: [&str; 4] = ["ip_gre", "dummy", "xt_policy", "xt_NETMAP"];
/// iptables-nft runs xtables matches and targets (policy, NETMAP) through nft_compat.
pub const NFT_COMPAT: &str = "nft_compat";

/// Whether the distribution's `iptables` is the nf_tables variant: AL2023 ships iptables-nft, Ubuntu 24.04 defaults
/// to it, and so has Debian since 10 "buster" ("Debian 10 buster includes the iptables-nft utility by default", the
/// netfilter maintainer, https://lists.debian.org/debian-devel/2019/07/msg00332.html; the legacy variant stays a
/// manual `update-alternatives` choice in 12 and 13). (PREPARE asks `iptables --version` on the host itself.)
fn iptables_is_nft(os: Os) -> bool {
    match os {
        Os::Al2023 | Os::Ubuntu2404 | Os::Debian12 | Os::Debian13 => true,
    }
}

pub fn render(v: &TunnelView) -> String {
    let mut s = v.header("kernel modules loaded at boot");
    for m in DATA_PLANE {
        s.push_str(m);
        s.push('\n');
    }
    if iptables_is_nft(v.local.os) {
        s.push_str(NFT_COMPAT);
        s.push('\n');
    }
    s
}
