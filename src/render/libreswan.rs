use super::TunnelView;
use crate::state::Os;
use serde::Serialize;

/// The libreswan a host runs, from `ipsec --version` ("Linux Libreswan 4.10 (XFRM) on 6.1.0-..." on 4.x,
/// "Libreswan 5.2" on 5.x). The renderer chooses by it where the generations differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Libreswan {
    pub major: u32,
    pub minor: u32,
}

impl Libreswan {
    /// The version in `ipsec --version` output: the word after "Libreswan", e.g. "4.10", "5.2", "5.0rc1".
    pub fn parse(s: &str) -> Option<Self> {
        let mut words = s.split_whitespace();
        words.find(|w| w.eq_ignore_ascii_case("libreswan"))?;
        Self::parse_version(words.next()?)
    }

    /// A bare version as the state records it ("5.2", "4.10"; "v5.0rc1" too).
    pub fn parse_version(v: &str) -> Option<Self> {
        let v = v.trim_start_matches(['v', 'V']);
        let mut parts = v.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let digits: String = p?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = num(parts.next())?;
        Some(Libreswan {
            major,
            minor: num(parts.next()).unwrap_or(0),
        })
    }

    /// The version the host reported, or else what its OS ships, with a note saying it was assumed.
    pub fn reported_or_expected(reported: Option<Self>, os: Os) -> (Self, Option<String>) {
        match reported {
            Some(v) => (v, None),
            None => {
                let assumed = Self::expected(os);
                let note =
                    format!("libreswan version not known; assumed {assumed}, what {os:?} ships");
                (assumed, Some(note))
            }
        }
    }

    /// What each supported OS ships, for rendering before configure has asked the host: AL2023 4.12, Ubuntu 24.04
    /// 4.14, Debian 12 4.10, Debian 13 5.2 (the distributions' package versions; Debian's measured in the lab).
    pub fn expected(os: Os) -> Self {
        let (major, minor) = match os {
            Os::Al2023 => (4, 12),
            Os::Ubuntu2404 => (4, 14),
            Os::Debian12 => (4, 10),
            Os::Debian13 => (5, 2),
        };
        Libreswan { major, minor }
    }

    /// libreswan 5 ignores `dpdaction=` for IKEv2 ("properly ignore dpdaction=", v5.0 in libreswan's CHANGES;
    /// Debian 13's 5.2 logs "obsolete keyword ignored: dpdaction=restart"): an `auto=start` connection whose peer
    /// stops answering the liveness probes is revived by pluto itself.
    pub fn takes_dpdaction(self) -> bool {
        self.major < 5
    }
}

impl std::fmt::Display for Libreswan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One IKEv2 connection between the tunnel hosts, authenticated by RSA host keys made on each host.
///
/// Behind EC2's 1:1 NAT the host never sees its Elastic IP. Transport mode between private address and peer EIP
/// fails there (TS_UNACCEPTABLE, measured); what works is tunnel mode whose traffic selectors are the two Elastic
/// IPs (each on its host's dummy interface) restricted to GRE, with IKE itself running from the private address
/// and identifying as the Elastic IP. NAT-T (UDP 4500) is then always in use.
///
/// Only east initiates (`auto=start`); west waits (`auto=add`). When both restarted at once, both initiated, each
/// dropped its own attempt, and the ESP SPIs no longer matched: traffic was lost both ways for ~75 s (measured in
/// the lab). West coming back after a reboot is found by east's liveness check, which restarts the connection
/// (libreswan 4: `dpdaction=restart`; libreswan 5: pluto's revival of `auto=start` connections).
pub fn render(v: &TunnelView) -> String {
    let (l, r) = (v.local, v.peer);
    let mut s = v.header(&format!(
        "libreswan connection (for libreswan {})",
        l.libreswan
    ));
    let liveness = if l.libreswan.takes_dpdaction() {
        "\t# IKEv2 liveness: probe every 10 s; libreswan 4 ignores dpdtimeout= and gives up after retransmit-timeout.
\tdpddelay=10
\tretransmit-timeout=30s
\tdpdaction=restart
"
    } else {
        "\t# IKEv2 liveness: probe every 10 s, give up after retransmit-timeout; libreswan 5 then revives the connection
\t# by itself (dpdaction= is obsolete there).
\tdpddelay=10
\tretransmit-timeout=30s
"
    };
    s.push_str(&format!(
        "conn {name}
\tauthby=rsasig
\tikev2=insist
\ttype=tunnel
\t# IKE from the private address; the Elastic IP is identity and traffic selector.
\tleft={lpriv}
\tleftid={lpub}
\tleftsubnet={lpub}/32
\tleftprotoport=gre
\tleftrsasigkey={lkey}
\tright={rpub}
\trightid={rpub}
\trightsubnet={rpub}/32
\trightprotoport=gre
\trightrsasigkey={rkey}
\t# AES-GCM only: the tunnel MTU is computed for it.
\tesp=aes_gcm256
\tencapsulation=yes
{liveness}\tikelifetime=8h
\tsalifetime=1h
\tauto={auto}
",
        name = v.conn_name(),
        lpriv = l.private_ip,
        lpub = l.public_ip,
        lkey = l.rsa_pubkey,
        rpub = r.public_ip,
        rkey = r.rsa_pubkey,
        liveness = liveness,
        auto = match v.side {
            crate::side::Side::East => "start",
            crate::side::Side::West => "add",
        },
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_both_generations_output() {
        let v4 = Libreswan::parse("Linux Libreswan 4.10 (XFRM) on 6.1.0-28-cloud-amd64").unwrap();
        assert_eq!((v4.major, v4.minor), (4, 10));
        assert!(v4.takes_dpdaction());
        let v5 = Libreswan::parse("Libreswan 5.2").unwrap();
        assert_eq!((v5.major, v5.minor), (5, 2));
        assert!(!v5.takes_dpdaction());
        assert_eq!(Libreswan::parse("Libreswan v5.0rc1").unwrap().major, 5);
        assert_eq!(Libreswan::parse("Libreswan 6").unwrap().to_string(), "6.0");
        assert_eq!(Libreswan::parse("strongSwan 5.9.14"), None);
        assert_eq!(Libreswan::parse(""), None);
    }

    #[test]
    fn only_debian_13_is_expected_to_run_libreswan_5() {
        for os in [Os::Al2023, Os::Ubuntu2404, Os::Debian12] {
            assert!(Libreswan::expected(os).takes_dpdaction(), "{os:?}");
        }
        assert!(!Libreswan::expected(Os::Debian13).takes_dpdaction());
    }
}
