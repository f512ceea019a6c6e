use super::TunnelView;

/// Forwarding on; no redirects (the VPC router, not this host, decides paths); reverse-path filtering off because
/// decapsulated packets arrive on interfaces their source is not routed through.
pub fn render(v: &TunnelView) -> String {
    let mut s = v.header("kernel settings");
    s.push_str("net.ipv4.ip_forward = 1\n");
    for scope in ["all", "default", v.local.uplink.as_str()] {
        for (key, val) in [
            ("accept_redirects", 0),
            ("send_redirects", 0),
            ("rp_filter", 0),
        ] {
            s.push_str(&format!("net.ipv4.conf.{scope}.{key} = {val}\n"));
        }
    }
    s
}
