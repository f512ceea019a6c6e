//! The built-in price table: what `plan` shows when the Price List API cannot be asked (no pricing:GetProducts
//! permission, no network, an emulator that does not serve it). On-demand USD, the list prices of AWS's public
//! pricing pages as known when the table was written, NOT re-read from those pages then (this machine has no way to
//! them); `plan` says which figures come from here, and the Price List answer replaces them wherever it can:
//!   instances:           https://aws.amazon.com/ec2/pricing/on-demand/
//!   public IPv4, NAT gw: https://aws.amazon.com/vpc/pricing/
//!   data transfer:       https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer
//!   transit gateway:     https://aws.amazon.com/transit-gateway/pricing/
//!   gp3 volumes:         https://aws.amazon.com/ebs/pricing/
//! The transit gateway's attachment NAT is not on those pages' tables: it stays unpriced.

use super::model::{Price, RegionPrices};

/// When the table was written; `plan` prints it beside every built-in price.
pub const AS_OF: &str = "2026-11-28";

/// The regions the table covers.
pub const REGIONS: [&str; 7] = [
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
];

/// (region, t3.micro, t3.small, t3.medium, t4g.small) per instance-hour, Linux.
const INSTANCES: [(&str, f64, f64, f64, f64); 7] = [
    ("us-east-1", 0.0104, 0.0208, 0.0416, 0.0168),
    ("us-east-2", 0.0104, 0.0208, 0.0416, 0.0168),
    ("us-west-2", 0.0104, 0.0208, 0.0416, 0.0168),
    ("eu-west-1", 0.0114, 0.0228, 0.0456, 0.0184),
    ("eu-central-1", 0.012, 0.024, 0.048, 0.0192),
    ("ap-southeast-1", 0.0132, 0.0264, 0.0528, 0.0212),
    ("ap-northeast-1", 0.0136, 0.0272, 0.0544, 0.0216),
];

/// The instance types the table knows.
pub const INSTANCE_TYPES: [&str; 4] = ["t3.micro", "t3.small", "t3.medium", "t4g.small"];

/// (region, gp3 per GB-month, TGW attachment-hour, NAT gateway hour = per GB processed, inter-region out per GB).
const NETWORK: [(&str, f64, f64, f64, f64); 7] = [
    ("us-east-1", 0.08, 0.05, 0.045, 0.02),
    ("us-east-2", 0.08, 0.05, 0.045, 0.02),
    ("us-west-2", 0.08, 0.05, 0.045, 0.02),
    ("eu-west-1", 0.088, 0.05, 0.048, 0.02),
    ("eu-central-1", 0.0952, 0.06, 0.052, 0.02),
    ("ap-southeast-1", 0.096, 0.07, 0.059, 0.09),
    ("ap-northeast-1", 0.096, 0.07, 0.062, 0.09),
];

/// The same everywhere in the table: public IPv4 per hour, transit gateway data processing per GB, transfer
/// between public IPv4 addresses in one region per GB in each direction.
const PUBLIC_IPV4_HOUR: f64 = 0.005;
// CloudWatch's first tiers (https://aws.amazon.com/cloudwatch/pricing/): $0.30 per custom metric-month (first 10,000),
// $0.01 per 1,000 PutMetricData requests, $0.10 per standard-resolution alarm-month; Route 53
// (https://aws.amazon.com/route53/pricing/): $0.50 per hosted zone-month (first 25). The same in these regions.
const CW_METRIC_MONTH: f64 = 0.30;
const CW_REQUESTS_PER_1000: f64 = 0.01;
const CW_ALARM_MONTH: f64 = 0.10;
const R53_ZONE_MONTH: f64 = 0.50;
const TGW_PROCESSING_GB: f64 = 0.02;
const INTRA_REGION_PUBLIC_GB: f64 = 0.01;

/// The table's prices for a region, or None for a region it does not cover.
pub fn region(region: &str, instance_type: &str) -> Option<RegionPrices> {
    let (_, gp3, tgw, nat, _) = NETWORK.iter().find(|n| n.0 == region)?;
    let (_, micro, small, medium, t4g) = INSTANCES.iter().find(|n| n.0 == region)?;
    let instance = match instance_type {
        "t3.micro" => Some(*micro),
        "t3.small" => Some(*small),
        "t3.medium" => Some(*medium),
        "t4g.small" => Some(*t4g),
        _ => None,
    };
    let b = |v: f64| Some(Price::builtin(v));
    Some(RegionPrices {
        instance_hour: instance.map(Price::builtin),
        public_ipv4_hour: b(PUBLIC_IPV4_HOUR),
        ebs_gp3_gb_month: b(*gp3),
        intra_region_public_gb: b(INTRA_REGION_PUBLIC_GB),
        tgw_attachment_hour: b(*tgw),
        tgw_processing_gb: b(TGW_PROCESSING_GB),
        tgw_attachment_nat_hour: None,
        nat_gateway_hour: b(*nat),
        nat_gateway_gb: b(*nat),
        cw_metric_month: b(CW_METRIC_MONTH),
        cw_requests_per_1000: b(CW_REQUESTS_PER_1000),
        cw_alarm_month: b(CW_ALARM_MONTH),
        r53_zone_month: b(R53_ZONE_MONTH),
    })
}

/// Per GB out of `from` to `to` (another region); None when the table does not cover `from`.
pub fn inter_region(from: &str, to: &str) -> Option<Price> {
    // The one pair the data transfer page prices lower: between US East (N. Virginia) and US East (Ohio).
    if matches!(
        (from, to),
        ("us-east-1", "us-east-2") | ("us-east-2", "us-east-1")
    ) {
        return Some(Price::builtin(0.01));
    }
    NETWORK
        .iter()
        .find(|n| n.0 == from)
        .map(|n| Price::builtin(n.4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::model::Source;

    #[test]
    fn every_listed_region_has_every_price_but_attachment_nat() {
        for r in REGIONS {
            for t in INSTANCE_TYPES {
                let p = region(r, t).unwrap();
                for v in [
                    p.instance_hour,
                    p.public_ipv4_hour,
                    p.ebs_gp3_gb_month,
                    p.intra_region_public_gb,
                    p.tgw_attachment_hour,
                    p.tgw_processing_gb,
                    p.cw_metric_month,
                    p.cw_requests_per_1000,
                    p.cw_alarm_month,
                    p.r53_zone_month,
                    p.nat_gateway_hour,
                    p.nat_gateway_gb,
                ] {
                    let v = v.unwrap();
                    assert!(v.usd > 0.0 && v.usd < 1.0 && v.source == Source::Builtin);
                }
                assert_eq!(p.tgw_attachment_nat_hour, None);
            }
            for to in REGIONS.iter().filter(|t| **t != r) {
                assert!(inter_region(r, to).is_some());
            }
        }
    }

    #[test]
    fn unknown_regions_and_types_are_not_guessed() {
        assert_eq!(region("me-central-1", "t3.small"), None);
        assert_eq!(inter_region("me-central-1", "us-east-1"), None);
        assert_eq!(
            region("us-east-1", "c7i.48xlarge").unwrap().instance_hour,
            None
        );
        assert_eq!(inter_region("us-east-1", "us-east-2").unwrap().usd, 0.01);
        assert_eq!(inter_region("us-east-1", "us-west-2").unwrap().usd, 0.02);
    }
}
