//! The monthly cost of the link and of AWS's managed alternatives, as a pure function of the layout, the traffic and
//! the prices. Every figure is a line item (what, quantity, unit, unit price, monthly USD); a price nobody knows is
//! "not priced", never guessed, and the option's total says it excludes it. Every assumption is a note.

use serde::Serialize;

/// AWS's pricing pages bill hourly resources at 730 hours a month.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// The root volume each host boots from: vpclink sets no block device mapping, so it is the AMI's (Amazon Linux
/// 2023, Debian and Ubuntu publish 8 GiB gp3 roots).
pub const ROOT_VOLUME_GB: f64 = 8.0;

/// What each side's tunnel hosts publish (the metrics contract, src/provision/metrics.rs): TunnelUp, IkeSaUp,
/// EspSaUp, TunnelRtt, four traffic counters, two conntrack figures and EC2's five ENA allowance counters, one set
/// per side (dimensions Link and Side).
pub const METRICS_PER_SIDE: f64 = 15.0;

/// PutMetricData calls a tunnel host makes a month: one a minute.
pub const REQUESTS_PER_HOST_MONTH: f64 = 60.0 * HOURS_PER_MONTH;

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The AWS Price List API (pricing:GetProducts), now.
    PriceList,
    /// vpclink's built-in table (see [`super::builtin::AS_OF`]).
    Builtin,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    pub usd: f64,
    pub source: Source,
}

impl Price {
    pub fn builtin(usd: f64) -> Price {
        Price {
            usd,
            source: Source::Builtin,
        }
    }

    pub fn listed(usd: f64) -> Price {
        Price {
            usd,
            source: Source::PriceList,
        }
    }
}

/// One region's on-demand prices (USD); None: not known, shown as "not priced".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegionPrices {
    /// Per instance-hour of the tunnel host's instance type, Linux, shared tenancy.
    pub instance_hour: Option<Price>,
    /// Per hour of an in-use public IPv4 address (an Elastic IP associated with a running instance included).
    pub public_ipv4_hour: Option<Price>,
    /// Per GB-month of gp3 storage.
    pub ebs_gp3_gb_month: Option<Price>,
    /// Per GB between public IPv4 addresses in this region, charged in each direction.
    pub intra_region_public_gb: Option<Price>,
    pub tgw_attachment_hour: Option<Price>,
    pub tgw_processing_gb: Option<Price>,
    /// The transit gateway's 1:1 attachment NAT, per attachment-hour: in neither the Price List query nor the table.
    pub tgw_attachment_nat_hour: Option<Price>,
    pub nat_gateway_hour: Option<Price>,
    pub nat_gateway_gb: Option<Price>,
    /// CloudWatch: per custom metric-month, per 1,000 PutMetricData requests, per standard-resolution alarm-month.
    pub cw_metric_month: Option<Price>,
    pub cw_requests_per_1000: Option<Price>,
    pub cw_alarm_month: Option<Price>,
    /// Route 53: per hosted zone-month (the names zone; `--no-dns` makes none).
    pub r53_zone_month: Option<Price>,
}

/// Everything the model needs to know about prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prices {
    pub east: RegionPrices,
    pub west: RegionPrices,
    /// Per GB out of the east region to the west region (unused when both sides share a region).
    pub east_to_west_gb: Option<Price>,
    pub west_to_east_gb: Option<Price>,
}

/// What is being priced.
#[derive(Debug, Clone, PartialEq)]
pub struct CostInput {
    pub east_region: String,
    pub west_region: String,
    pub instance_type: String,
    /// GB a month across the link, both directions together.
    pub traffic_gb: f64,
    /// The hot-standby layout: two tunnel hosts and two Elastic IPs per side.
    pub ha: bool,
}

impl CostInput {
    pub fn same_region(&self) -> bool {
        self.east_region == self.west_region
    }

    /// Tunnel hosts on each side.
    pub fn hosts_per_side(&self) -> u32 {
        if self.ha {
            2
        } else {
            1
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItem {
    pub what: String,
    pub quantity: f64,
    pub unit: String,
    /// USD per unit; None: not priced.
    pub unit_usd: Option<f64>,
    pub source: Option<Source>,
    /// quantity x unit price; None: not priced (and not in the total).
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    Vpclink,
    TransitGatewayAttachmentNat,
    PrivateNatGatewayTransitGateway,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionCost {
    pub kind: OptionKind,
    pub name: String,
    pub lines: Vec<LineItem>,
    /// The sum of the priced lines.
    pub total_usd: f64,
    /// The lines left out of the total because nobody knows their price.
    pub not_priced: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostTable {
    pub traffic_gb: f64,
    pub ha: bool,
    pub instance_type: String,
    pub hours_per_month: f64,
    pub options: Vec<OptionCost>,
    pub notes: Vec<String>,
}

fn line(what: String, quantity: f64, unit: &str, price: Option<Price>) -> LineItem {
    LineItem {
        what,
        quantity,
        unit: unit.to_string(),
        unit_usd: price.map(|p| p.usd),
        source: price.map(|p| p.source),
        monthly_usd: price.map(|p| p.usd * quantity),
    }
}

fn option(kind: OptionKind, name: &str, lines: Vec<LineItem>) -> OptionCost {
    OptionCost {
        kind,
        name: name.to_string(),
        total_usd: lines.iter().filter_map(|l| l.monthly_usd).sum(),
        not_priced: lines
            .iter()
            .filter(|l| l.monthly_usd.is_none())
            .map(|l| l.what.clone())
            .collect(),
        lines,
    }
}

/// The two sides with their regions and prices, east first.
fn sides<'a>(i: &'a CostInput, p: &'a Prices) -> [(&'static str, &'a str, &'a RegionPrices); 2] {
    [
        ("east", i.east_region.as_str(), &p.east),
        ("west", i.west_region.as_str(), &p.west),
    ]
}

/// Inter-region transfer out of each region, half the traffic each way (the same for every option that crosses).
fn inter_region_lines(i: &CostInput, p: &Prices) -> Vec<LineItem> {
    let half = i.traffic_gb / 2.0;
    vec![
        line(
            format!(
                "data transfer out of {} to {}",
                i.east_region, i.west_region
            ),
            half,
            "GB",
            p.east_to_west_gb,
        ),
        line(
            format!(
                "data transfer out of {} to {}",
                i.west_region, i.east_region
            ),
            half,
            "GB",
            p.west_to_east_gb,
        ),
    ]
}

fn vpclink(i: &CostInput, p: &Prices) -> OptionCost {
    let n = f64::from(i.hosts_per_side());
    let mut lines = Vec::new();
    for (side, region, rp) in sides(i, p) {
        lines.push(line(
            format!("{side} tunnel hosts ({}, {region})", i.instance_type),
            n * HOURS_PER_MONTH,
            "instance-hour",
            rp.instance_hour,
        ));
        lines.push(line(
            format!("{side} Elastic IPs (public IPv4)"),
            n * HOURS_PER_MONTH,
            "address-hour",
            rp.public_ipv4_hour,
        ));
        lines.push(line(
            format!("{side} root volumes ({ROOT_VOLUME_GB} GiB gp3 each)"),
            n * ROOT_VOLUME_GB,
            "GB-month",
            rp.ebs_gp3_gb_month,
        ));
        // What `up` makes besides the hosts: the agents' metrics and their calls, the alarm, the names zone.
        lines.push(line(
            format!("{side} CloudWatch custom metrics (the agents' figures)"),
            METRICS_PER_SIDE,
            "metric-month",
            rp.cw_metric_month,
        ));
        lines.push(line(
            format!("{side} PutMetricData requests (one a minute per tunnel host)"),
            n * REQUESTS_PER_HOST_MONTH / 1000.0,
            "1,000 requests",
            rp.cw_requests_per_1000,
        ));
        lines.push(line(
            format!("{side} CloudWatch alarm (tunnel down)"),
            1.0,
            "alarm-month",
            rp.cw_alarm_month,
        ));
        lines.push(line(
            format!("{side} Route 53 private hosted zone (names; none with --no-dns)"),
            1.0,
            "zone-month",
            rp.r53_zone_month,
        ));
    }
    if i.same_region() {
        // Each GB leaves one Elastic IP and enters the other: charged out and in.
        lines.push(line(
            format!(
                "traffic between public IPv4 addresses in {} (out and in)",
                i.east_region
            ),
            2.0 * i.traffic_gb,
            "GB",
            p.east.intra_region_public_gb,
        ));
    } else {
        lines.extend(inter_region_lines(i, p));
    }
    option(OptionKind::Vpclink, "vpclink", lines)
}

/// A transit gateway per region (one when both sides share it): attachments and data processing, and between two
/// regions the peering attachment on each and the inter-region transfer.
fn transit_gateway_lines(i: &CostInput, p: &Prices) -> Vec<LineItem> {
    let mut lines = Vec::new();
    if i.same_region() {
        lines.push(line(
            format!("transit gateway VPC attachments in {} (two)", i.east_region),
            2.0 * HOURS_PER_MONTH,
            "attachment-hour",
            p.east.tgw_attachment_hour,
        ));
        lines.push(line(
            "transit gateway data processing".to_string(),
            i.traffic_gb,
            "GB",
            p.east.tgw_processing_gb,
        ));
    } else {
        for (side, region, rp) in sides(i, p) {
            lines.push(line(
                format!("{side} transit gateway ({region}): VPC and peering attachments"),
                2.0 * HOURS_PER_MONTH,
                "attachment-hour",
                rp.tgw_attachment_hour,
            ));
            lines.push(line(
                format!("{side} transit gateway data processing (traffic {side} sends)"),
                i.traffic_gb / 2.0,
                "GB",
                rp.tgw_processing_gb,
            ));
        }
        lines.extend(inter_region_lines(i, p));
    }
    lines
}

fn transit_gateway_nat(i: &CostInput, p: &Prices) -> OptionCost {
    let mut lines = transit_gateway_lines(i, p);
    for (side, _, rp) in sides(i, p) {
        lines.push(line(
            format!("{side} VPC attachment's 1:1 NAT"),
            HOURS_PER_MONTH,
            "attachment-hour",
            rp.tgw_attachment_nat_hour,
        ));
    }
    option(
        OptionKind::TransitGatewayAttachmentNat,
        "transit gateway + attachment NAT",
        lines,
    )
}

fn private_nat(i: &CostInput, p: &Prices) -> OptionCost {
    let mut lines = transit_gateway_lines(i, p);
    for (side, region, rp) in sides(i, p) {
        lines.push(line(
            format!("{side} private NAT gateway ({region})"),
            HOURS_PER_MONTH,
            "gateway-hour",
            rp.nat_gateway_hour,
        ));
        lines.push(line(
            format!("{side} NAT gateway data processing (connections {side} opens)"),
            i.traffic_gb / 2.0,
            "GB",
            rp.nat_gateway_gb,
        ));
    }
    option(
        OptionKind::PrivateNatGatewayTransitGateway,
        "private NAT gateway + transit gateway (source NAT only)",
        lines,
    )
}

/// The assumptions behind every figure, said once.
fn notes(i: &CostInput) -> Vec<String> {
    let mut n = vec![
        format!("monthly = {HOURS_PER_MONTH} hours; on-demand Linux prices in USD, before tax, free tier, Savings Plans or reserved capacity"),
        format!("traffic: {} GB a month across the link, assumed half each way (east to west, west to east)", i.traffic_gb),
        "test hosts (`up` without --no-test-hosts) are not counted: they only prove the link".to_string(),
        format!("root volumes: the AMI's, {ROOT_VOLUME_GB} GiB gp3 per host assumed"),
        format!("vpclink's CloudWatch figures: {METRICS_PER_SIDE} custom metrics per side (EC2's five ENA counters included), one PutMetricData a minute per tunnel host; Route 53 queries to the names zone ($0.40 a million) and GetMetricData by `status` are not counted; the managed options' own monitoring is not counted either"),
        "not counted in any option: the tunnel's own overhead (ESP, NAT-T and GRE headers, IKE), and traffic between a VPC's hosts and the tunnel host or attachment in another Availability Zone (regional transfer, alike for all three)".to_string(),
        "transit gateway + attachment NAT: the attachment NAT's own charge is in neither the Price List query nor the built-in table, so it is shown as not priced and that total excludes it".to_string(),
        "private NAT gateway + transit gateway: source NAT only, the other side cannot open connections back; one gateway per side is counted, each processing the connections its side opens (half the traffic); reaching the other side's overlapping addresses also needs a non-overlapping range or load balancer there, not counted".to_string(),
    ];
    if i.same_region() {
        n.push(format!(
            "both sides in {}: one transit gateway with two VPC attachments; vpclink's tunnel runs between two public IPv4 addresses of that region",
            i.east_region
        ));
    } else {
        n.push(format!(
            "{} and {}: a transit gateway per region joined by a peering attachment (billed on each gateway); data processing on the gateway the traffic enters from a VPC",
            i.east_region, i.west_region
        ));
    }
    if i.ha {
        n.push("--ha: two tunnel hosts and two Elastic IPs per side (hot standby); the managed options are priced as one gateway per side (a NAT gateway is zonal: one per zone for zone failure, not counted)".to_string());
    }
    n
}

/// The cost table: vpclink beside the two managed alternatives.
pub fn cost(i: &CostInput, p: &Prices) -> CostTable {
    CostTable {
        traffic_gb: i.traffic_gb,
        ha: i.ha,
        instance_type: i.instance_type.clone(),
        hours_per_month: HOURS_PER_MONTH,
        options: vec![vpclink(i, p), transit_gateway_nat(i, p), private_nat(i, p)],
        notes: notes(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(usd: f64) -> RegionPrices {
        let p = Some(Price::builtin(usd));
        RegionPrices {
            instance_hour: p,
            public_ipv4_hour: p,
            ebs_gp3_gb_month: p,
            intra_region_public_gb: p,
            tgw_attachment_hour: p,
            tgw_processing_gb: p,
            tgw_attachment_nat_hour: None,
            nat_gateway_hour: p,
            nat_gateway_gb: p,
            cw_metric_month: p,
            cw_requests_per_1000: p,
            cw_alarm_month: p,
            r53_zone_month: p,
        }
    }

    fn prices(e: f64, w: f64, ew: f64, we: f64) -> Prices {
        Prices {
            east: all(e),
            west: all(w),
            east_to_west_gb: Some(Price::builtin(ew)),
            west_to_east_gb: Some(Price::builtin(we)),
        }
    }

    fn input(east: &str, west: &str, gb: f64, ha: bool) -> CostInput {
        CostInput {
            east_region: east.into(),
            west_region: west.into(),
            instance_type: "t3.small".into(),
            traffic_gb: gb,
            ha,
        }
    }

    fn quantity(o: &OptionCost, starts: &str, contains: &str) -> f64 {
        o.lines
            .iter()
            .filter(|l| l.what.starts_with(starts) && l.what.contains(contains))
            .map(|l| l.quantity)
            .sum()
    }

    #[test]
    fn vpclink_cross_region_by_hand() {
        // us-east-1 t3.small 0.0208, IPv4 0.005, gp3 0.08; out of us-east-1 0.02, out of eu-west-1 0.02.
        let mut p = prices(0.0, 0.0, 0.02, 0.02);
        for r in [&mut p.east, &mut p.west] {
            r.instance_hour = Some(Price::builtin(0.0208));
            r.public_ipv4_hour = Some(Price::builtin(0.005));
            r.ebs_gp3_gb_month = Some(Price::builtin(0.08));
        }
        let t = cost(&input("us-east-1", "eu-west-1", 100.0, false), &p);
        let v = &t.options[0];
        assert_eq!(v.kind, OptionKind::Vpclink);
        // 2 x (730 x 0.0208 + 730 x 0.005 + 8 x 0.08) + 100 x 0.02
        let want = 2.0 * (730.0 * 0.0208 + 730.0 * 0.005 + 8.0 * 0.08) + 100.0 * 0.02;
        assert!(
            (v.total_usd - want).abs() < 1e-9,
            "{} vs {want}",
            v.total_usd
        );
        assert!(v.not_priced.is_empty());
    }

    #[test]
    fn attachment_nat_is_never_priced_and_said_so() {
        let t = cost(
            &input("us-east-1", "us-east-1", 100.0, false),
            &prices(0.01, 0.01, 0.0, 0.0),
        );
        let tgw = &t.options[1];
        assert_eq!(tgw.kind, OptionKind::TransitGatewayAttachmentNat);
        assert_eq!(tgw.not_priced.len(), 2);
        assert!(tgw.not_priced.iter().all(|w| w.contains("1:1 NAT")));
        assert!(t.notes.iter().any(|n| n.contains("excludes it")));
        assert!(t.options[2].name.contains("source NAT only"));
        assert!(t
            .notes
            .iter()
            .any(|n| n.contains("cannot open connections back")));
    }

    #[test]
    fn same_region_uses_one_gateway_and_regional_transfer_both_ways() {
        let t = cost(
            &input("eu-west-1", "eu-west-1", 50.0, false),
            &prices(0.01, 0.01, 99.0, 99.0),
        );
        let v = &t.options[0];
        assert_eq!(quantity(v, "traffic between public", ""), 100.0);
        assert!(!v
            .lines
            .iter()
            .any(|l| l.what.starts_with("data transfer out")));
        let tgw = &t.options[1];
        assert_eq!(quantity(tgw, "transit gateway VPC attachments", ""), 1460.0);
        assert!(!tgw.lines.iter().any(|l| l.unit_usd == Some(99.0)));
    }

    #[test]
    fn an_unknown_price_is_left_out_and_named() {
        let mut p = prices(1.0, 1.0, 1.0, 1.0);
        p.west.instance_hour = None;
        let t = cost(&input("us-east-1", "mars-1", 10.0, false), &p);
        let v = &t.options[0];
        assert_eq!(v.not_priced, vec!["west tunnel hosts (t3.small, mars-1)"]);
        let line = v
            .lines
            .iter()
            .find(|l| l.what.starts_with("west tunnel"))
            .unwrap();
        assert_eq!(
            (line.unit_usd, line.monthly_usd, line.source),
            (None, None, None)
        );
    }

    proptest! {
        #[test]
        fn totals_are_sums_of_lines(e in 0.0f64..1.0, w in 0.0f64..1.0, ew in 0.0f64..0.2, we in 0.0f64..0.2,
                                    gb in 0.0f64..1e6, ha: bool, same: bool) {
            let west = if same { "us-east-1" } else { "ap-southeast-1" };
            let t = cost(&input("us-east-1", west, gb, ha), &prices(e, w, ew, we));
            for o in &t.options {
                let sum: f64 = o.lines.iter().filter_map(|l| l.monthly_usd).sum();
                prop_assert!((o.total_usd - sum).abs() <= 1e-9 * sum.max(1.0));
                for l in &o.lines {
                    if let (Some(u), Some(m)) = (l.unit_usd, l.monthly_usd) {
                        prop_assert!((m - u * l.quantity).abs() <= 1e-9 * m.abs().max(1.0));
                    }
                }
            }
        }

        #[test]
        fn more_traffic_never_costs_less(e in 0.0f64..1.0, w in 0.0f64..1.0, ew in 0.0f64..0.2,
                                         we in 0.0f64..0.2, gb in 0.0f64..1e5, more in 0.0f64..1e5,
                                         ha: bool, same: bool) {
            let west = if same { "eu-west-1" } else { "us-west-2" };
            let p = prices(e, w, ew, we);
            let a = cost(&input("eu-west-1", west, gb, ha), &p);
            let b = cost(&input("eu-west-1", west, gb + more, ha), &p);
            for (x, y) in a.options.iter().zip(&b.options) {
                prop_assert!(y.total_usd >= x.total_usd - 1e-9);
            }
        }

        #[test]
        fn ha_adds_exactly_two_hosts_and_two_addresses(gb in 0.0f64..1e5, same: bool, e in 0.001f64..1.0) {
            let west = if same { "us-east-2" } else { "eu-central-1" };
            let p = prices(e, e, 0.02, 0.02);
            let one = cost(&input("us-east-2", west, gb, false), &p);
            let two = cost(&input("us-east-2", west, gb, true), &p);
            let (v1, v2) = (&one.options[0], &two.options[0]);
            let hosts = |o: &OptionCost| quantity(o, "", "tunnel hosts") / HOURS_PER_MONTH;
            let ips = |o: &OptionCost| quantity(o, "", "Elastic IPs") / HOURS_PER_MONTH;
            prop_assert_eq!(hosts(v1), 2.0);
            prop_assert_eq!(hosts(v2), 4.0);
            prop_assert_eq!(ips(v1), 2.0);
            prop_assert_eq!(ips(v2), 4.0);
            // Only hosts, addresses, volumes and the hosts' metric calls change; the managed options do not.
            let delta = v2.total_usd - v1.total_usd;
            let want = 2.0 * HOURS_PER_MONTH * (e + e)
                + 2.0 * ROOT_VOLUME_GB * e
                + 2.0 * REQUESTS_PER_HOST_MONTH / 1000.0 * e;
            prop_assert!((delta - want).abs() <= 1e-6 * want.max(1.0));
            prop_assert_eq!(&one.options[1..], &two.options[1..]);
        }

        #[test]
        fn transfer_is_split_half_each_way(gb in 0.0f64..1e6) {
            let t = cost(&input("us-east-1", "eu-west-1", gb, false), &prices(0.0, 0.0, 0.02, 0.09));
            for o in &t.options {
                let out_e = quantity(o, "data transfer out of us-east-1", "");
                let out_w = quantity(o, "data transfer out of eu-west-1", "");
                prop_assert_eq!(out_e, gb / 2.0);
                prop_assert_eq!(out_w, gb / 2.0);
            }
        }
    }
}
