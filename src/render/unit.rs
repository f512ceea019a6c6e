use super::TunnelView;

/// Re-applies firewall, interfaces and routes at every boot, before libreswan starts. The firewall is loaded first
/// inside up.sh, so GRE cannot exist on the host without the rules that keep it inside IPsec.
pub fn render(v: &TunnelView) -> String {
    format!(
        "{header}[Unit]
Description=vpclink {name}: firewall, GRE inside IPsec and NETMAP towards the {peer} VPC
Wants=network-online.target
After=network-online.target
Before=ipsec.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={dir}/up.sh
# A boot where the network comes up late fails once, then succeeds; the firewall is always loaded first.
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
",
        header = v.header("boot-time apply"),
        name = v.link.name,
        peer = v.side.peer(),
        dir = v.dir(),
    )
}
