systemctl daemon-reload
systemctl enable --no-reload vpclink-golden.service ipsec.service vpclink-metrics.service
systemctl restart vpclink-golden.service
systemctl restart ipsec.service
systemctl restart vpclink-metrics.service
