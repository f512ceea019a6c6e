//! The metrics agent on the tunnel host: the program (src/render/metrics_agent.py, pushed byte for byte), its
//! configuration and its systemd unit. It publishes the link's health to CloudWatch in the side's own account
//! (namespace `vpclink`, dimensions Link and Side) with the instance profile's credentials, read through IMDSv2 by
//! boto3's default credential chain: no key is ever written to the host.

use super::{TunnelView, GRE_IF};
use serde::Serialize;

/// The agent, as the host runs it. Python 3.9+ and the distribution's boto3 (python3-boto3 on Debian, Ubuntu and
/// AL2023; see cloud-init/tunnel-*.yaml).
pub const AGENT: &str = include_str!("metrics_agent.py");
pub const AGENT_PATH: &str = "/usr/local/sbin/vpclink-metrics";
pub const CONFIG_PATH: &str = "/etc/vpclink/metrics.json";
pub const UNIT: &str = "vpclink-metrics.service";
/// The CloudWatch namespace every datum goes to (the alarms read it there).
pub const NAMESPACE: &str = "vpclink";
/// CloudWatch's standard resolution is one datum a minute; the tunnel-down alarm evaluates 60 s periods.
pub const INTERVAL_S: u64 = 60;

/// /etc/vpclink/metrics.json: what the agent publishes about, and where. No secrets (mode 0644).
#[derive(Debug, Serialize)]
struct AgentConfig<'a> {
    link: &'a str,
    side: &'a str,
    region: &'a str,
    namespace: &'a str,
    /// None on AWS (the regional endpoint); VPCLINK_AGENT_ENDPOINT_URL for a lab's emulator.
    endpoint_url: Option<&'a str>,
    gre_dev: &'a str,
    peer_inner: String,
    uplink: &'a str,
    conn: String,
    interval_s: u64,
}

pub fn config(v: &TunnelView, endpoint_url: Option<&str>) -> String {
    let (_, peer_inner) = v.inner();
    let conn = v.conn_name();
    let cfg = AgentConfig {
        link: &v.link.name,
        side: v.side.as_str(),
        region: &v.link.side(v.side).region,
        namespace: NAMESPACE,
        endpoint_url,
        gre_dev: GRE_IF,
        peer_inner: peer_inner.to_string(),
        uplink: &v.local.uplink,
        conn,
        interval_s: INTERVAL_S,
    };
    let mut s = serde_json::to_string_pretty(&cfg).expect("plain strings and numbers serialise");
    s.push('\n');
    s
}

/// Runs as root: `ipsec whack` talks to pluto's root-only control socket and `ping -I` binds to the GRE device.
/// The hardening keeps what it needs: the whole file system read-only (ProtectSystem=strict still lets it connect
/// to /run/pluto/pluto.ctl, a socket, and read /proc/sys), no home directories, a private /tmp, and no way to gain
/// privileges. Restart=always: a crash or a boto3 that is missing for now never ends the publishing for good
/// (TreatMissingData=breaching on the alarm turns a silent host into an alarm anyway).
pub fn unit(v: &TunnelView) -> String {
    format!(
        "{header}[Unit]
Description=vpclink {name}: publish the link's health to CloudWatch (namespace {NAMESPACE}) every {INTERVAL_S} s
Wants=network-online.target
After=network-online.target {link_unit} ipsec.service

[Service]
Type=simple
ExecStart={AGENT_PATH} --config {CONFIG_PATH}
Restart=always
RestartSec=10
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
",
        header = v.header("metrics agent"),
        name = v.link.name,
        link_unit = v.unit_name(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{tunnel_host_with, Libreswan, TunnelFacts, TunnelView};
    use super::*;
    use crate::link::{LinkPlan, SidePlan};
    use crate::side::Side;
    use crate::state::Os;

    fn side(region: &str) -> SidePlan {
        SidePlan {
            profile: "p".into(),
            region: region.into(),
            account: "111111111111".into(),
            vpc_id: "vpc-1".into(),
            cidrs: vec!["10.0.0.0/16".parse().unwrap()],
            mapped: vec!["10.1.0.0/16".parse().unwrap()],
            route_tables: vec![],
            public_subnet: None,
            skipped_tables: vec![],
        }
    }

    fn facts(ip: &str) -> TunnelFacts {
        TunnelFacts {
            private_ip: "10.0.0.10".parse().unwrap(),
            public_ip: ip.parse().unwrap(),
            uplink: "eth0".into(),
            os: Os::Debian13,
            rsa_pubkey: "0sAwEAAexampleexample".into(),
            libreswan: Libreswan::expected(Os::Debian13),
        }
    }

    /// Each side publishes in its own region, about the peer's inner address, to the endpoint the setting names.
    #[test]
    fn config_per_side_and_endpoint() {
        let link = LinkPlan {
            name: "m".into(),
            overlapping: true,
            east: side("eu-west-1"),
            west: side("us-east-2"),
        };
        let (e, w) = (facts("198.51.100.1"), facts("203.0.113.1"));
        for (s, local, peer, region, peer_inner) in [
            (Side::East, &e, &w, "eu-west-1", "169.254.248.2"),
            (Side::West, &w, &e, "us-east-2", "169.254.248.1"),
        ] {
            let view = TunnelView {
                link: &link,
                side: s,
                local,
                peer,
            };
            for endpoint in [None, Some("http://10.0.2.2:4566")] {
                let cfg = tunnel_host_with(&view, endpoint);
                let file = |p: &str| cfg.files.iter().find(|f| f.path == p).expect(p);
                let json: serde_json::Value =
                    serde_json::from_str(&file(CONFIG_PATH).content).unwrap();
                assert_eq!(json["region"], region);
                assert_eq!(json["side"], s.as_str());
                assert_eq!(json["peer_inner"], peer_inner);
                assert_eq!(json["uplink"], "eth0");
                assert_eq!(json["conn"], "vpclink-m");
                assert_eq!(json["endpoint_url"].as_str(), endpoint);
                assert_eq!(file(CONFIG_PATH).mode, 0o644);
                assert_eq!(file(AGENT_PATH).mode, 0o755);
                assert_eq!(file(AGENT_PATH).content, AGENT);
                let unit = &file(&format!("/etc/systemd/system/{UNIT}")).content;
                assert!(unit.contains(&format!("ExecStart={AGENT_PATH} --config {CONFIG_PATH}\n")));
                assert!(unit.contains("Restart=always\n"));
                assert!(cfg
                    .apply
                    .iter()
                    .any(|c| c == &format!("systemctl restart {UNIT}")));
            }
        }
    }

    /// The agent's own defaults agree with what is rendered.
    #[test]
    fn agent_reads_the_rendered_config_path() {
        assert!(AGENT.starts_with("#!/usr/bin/python3\n"));
        assert!(AGENT.contains(&format!("CONFIG = \"{CONFIG_PATH}\"")));
    }
}
