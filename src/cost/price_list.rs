//! What to ask the AWS Price List API (GetProducts filters) and how to read its answer, as pure functions.
//!
//! GetProducts returns `PriceList`, a list of JSON documents, one per product: `product.attributes` (usagetype,
//! operation, ...) and `terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD` (a decimal string), see
//! https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html and "Reading
//! the price list files" in the Billing User Guide. Usage types carry a region prefix ("USE2-NatGateway-Hours";
//! us-east-1 often none), so products are matched on the usage type's suffix.

use super::model::{Price, RegionPrices};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One GetProducts request: a service code and TERM_MATCH filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub service_code: &'static str,
    pub filters: Vec<(&'static str, String)>,
}

impl Query {
    fn new(service_code: &'static str, filters: &[(&'static str, &str)]) -> Query {
        Query {
            service_code,
            filters: filters.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }
}

/// The per-region queries, in the order [`region_prices`] reads their answers.
pub fn region_queries(region: &str, instance_type: &str) -> [Query; 4] {
    [
        // On-demand Linux, shared tenancy, no pre-installed software, the capacity status of a running instance.
        Query::new(
            "AmazonEC2",
            &[
                ("regionCode", region),
                ("instanceType", instance_type),
                ("operatingSystem", "Linux"),
                ("tenancy", "Shared"),
                ("preInstalledSw", "NA"),
                ("capacitystatus", "Used"),
                ("licenseModel", "No License required"),
            ],
        ),
        Query::new(
            "AmazonEC2",
            &[
                ("regionCode", region),
                ("productFamily", "Storage"),
                ("volumeApiName", "gp3"),
            ],
        ),
        Query::new(
            "AmazonEC2",
            &[("regionCode", region), ("productFamily", "NAT Gateway")],
        ),
        // Public IPv4 addresses and transit gateway attachments and processing are AmazonVPC products.
        Query::new("AmazonVPC", &[("regionCode", region)]),
    ]
}

/// Transfer out of `from` to `to`: between two regions, or (from == to) between public addresses in one region.
pub fn transfer_query(from: &str, to: &str) -> Query {
    let kind = if from == to {
        "IntraRegion"
    } else {
        "InterRegion Outbound"
    };
    Query::new(
        "AWSDataTransfer",
        &[
            ("fromRegionCode", from),
            ("toRegionCode", to),
            ("transferType", kind),
        ],
    )
}

/// One product of an answer: its attributes and its on-demand USD prices (first tier first).
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub attributes: BTreeMap<String, String>,
    pub usd: Vec<f64>,
}

impl Product {
    fn attr(&self, name: &str) -> &str {
        self.attributes.get(name).map(String::as_str).unwrap_or("")
    }

    /// The usage type without its region prefix matches `suffix`.
    fn usage_is(&self, suffix: &str) -> bool {
        let u = self.attr("usagetype");
        u == suffix || u.ends_with(&format!("-{suffix}"))
    }

    /// The first non-zero price (a free first tier, as data transfer has, is skipped).
    fn price(&self) -> Option<f64> {
        self.usd.iter().copied().find(|p| *p > 0.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a price list document could not be read: {0}")]
pub struct ParseError(String);

#[derive(Deserialize)]
struct Doc {
    product: DocProduct,
    #[serde(default)]
    terms: DocTerms,
}

#[derive(Deserialize)]
struct DocProduct {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct DocTerms {
    #[serde(rename = "OnDemand", default)]
    on_demand: BTreeMap<String, DocOffer>,
}

#[derive(Deserialize)]
struct DocOffer {
    #[serde(rename = "priceDimensions", default)]
    price_dimensions: BTreeMap<String, DocDimension>,
}

#[derive(Deserialize)]
struct DocDimension {
    #[serde(rename = "pricePerUnit", default)]
    price_per_unit: BTreeMap<String, String>,
    #[serde(rename = "beginRange", default)]
    begin_range: Option<String>,
}

/// Read the PriceList documents of one answer.
pub fn parse(documents: &[String]) -> Result<Vec<Product>, ParseError> {
    documents
        .iter()
        .map(|d| {
            let doc: Doc = serde_json::from_str(d).map_err(|e| ParseError(e.to_string()))?;
            let mut dims: Vec<(f64, f64)> = Vec::new();
            for offer in doc.terms.on_demand.values() {
                for dim in offer.price_dimensions.values() {
                    let Some(usd) = dim.price_per_unit.get("USD") else {
                        continue;
                    };
                    let usd: f64 = usd
                        .parse()
                        .map_err(|_| ParseError(format!("pricePerUnit.USD {usd:?}")))?;
                    let begin = dim
                        .begin_range
                        .as_deref()
                        .and_then(|b| b.parse().ok())
                        .unwrap_or(0.0);
                    dims.push((begin, usd));
                }
            }
            dims.sort_by(|a, b| a.0.total_cmp(&b.0));
            Ok(Product {
                attributes: doc.product.attributes,
                usd: dims.into_iter().map(|(_, p)| p).collect(),
            })
        })
        .collect()
}

fn find(products: &[Product], pick: impl Fn(&Product) -> bool) -> Option<Price> {
    products
        .iter()
        .filter(|p| pick(p))
        .find_map(Product::price)
        .map(Price::listed)
}

/// A region's prices from the answers to [`region_queries`] (instance, storage, NAT gateway, VPC) and the
/// intra-region transfer answer; what an answer lacks stays None.
pub fn region_prices(
    instance_type: &str,
    answers: [&[Product]; 4],
    intra_region: Option<&[Product]>,
) -> RegionPrices {
    let [instance, storage, nat, vpc] = answers;
    let box_usage = format!("BoxUsage:{instance_type}");
    // The VPC attachment's price; the peering attachment is billed at the same hourly rate.
    let tgw_hour = find(vpc, |p| {
        p.usage_is("TransitGateway-Hours") && p.attr("operation") == "TransitGatewayVPC"
    })
    .or_else(|| find(vpc, |p| p.usage_is("TransitGateway-Hours")));
    RegionPrices {
        instance_hour: find(instance, |p| p.usage_is(&box_usage)),
        public_ipv4_hour: find(vpc, |p| p.usage_is("PublicIPv4:InUseAddress")),
        ebs_gp3_gb_month: find(storage, |p| p.usage_is("EBS:VolumeUsage.gp3")),
        intra_region_public_gb: intra_region
            .and_then(|a| find(a, |p| p.usage_is("DataTransfer-Regional-Bytes"))),
        tgw_attachment_hour: tgw_hour,
        tgw_processing_gb: find(vpc, |p| p.usage_is("TransitGateway-Bytes")),
        tgw_attachment_nat_hour: None,
        nat_gateway_hour: find(nat, |p| p.usage_is("NatGateway-Hours")),
        nat_gateway_gb: find(nat, |p| p.usage_is("NatGateway-Bytes")),
        // Not asked of the Price List (AmazonCloudWatch, AmazonRoute53): small, and the same in most regions; the
        // built-in table fills them, and the note says so.
        cw_metric_month: None,
        cw_requests_per_1000: None,
        cw_alarm_month: None,
        r53_zone_month: None,
    }
}

/// Per GB out of a region to another, from the answer to [`transfer_query`].
pub fn inter_region_price(answer: &[Product]) -> Option<Price> {
    find(answer, |p| p.attr("transferType") == "InterRegion Outbound")
}

/// Fill what the Price List did not answer from `fallback` (the built-in table); returns the names of the prices
/// taken from it.
pub fn fill(listed: &mut RegionPrices, fallback: Option<&RegionPrices>) -> Vec<&'static str> {
    let mut filled = Vec::new();
    let Some(b) = fallback else {
        return filled;
    };
    let pairs: [(&'static str, &mut Option<Price>, Option<Price>); 12] = [
        ("instance", &mut listed.instance_hour, b.instance_hour),
        (
            "public IPv4",
            &mut listed.public_ipv4_hour,
            b.public_ipv4_hour,
        ),
        ("gp3", &mut listed.ebs_gp3_gb_month, b.ebs_gp3_gb_month),
        (
            "regional transfer",
            &mut listed.intra_region_public_gb,
            b.intra_region_public_gb,
        ),
        (
            "transit gateway attachment",
            &mut listed.tgw_attachment_hour,
            b.tgw_attachment_hour,
        ),
        (
            "transit gateway processing",
            &mut listed.tgw_processing_gb,
            b.tgw_processing_gb,
        ),
        (
            "NAT gateway hour",
            &mut listed.nat_gateway_hour,
            b.nat_gateway_hour,
        ),
        (
            "NAT gateway GB",
            &mut listed.nat_gateway_gb,
            b.nat_gateway_gb,
        ),
        (
            "CloudWatch metric",
            &mut listed.cw_metric_month,
            b.cw_metric_month,
        ),
        (
            "CloudWatch requests",
            &mut listed.cw_requests_per_1000,
            b.cw_requests_per_1000,
        ),
        (
            "CloudWatch alarm",
            &mut listed.cw_alarm_month,
            b.cw_alarm_month,
        ),
        (
            "Route 53 zone",
            &mut listed.r53_zone_month,
            b.r53_zone_month,
        ),
    ];
    for (name, slot, fallback) in pairs {
        if slot.is_none() && fallback.is_some() {
            *slot = fallback;
            filled.push(name);
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::model::Source;

    fn doc(usagetype: &str, extra: &str, usd: &[(&str, &str)]) -> String {
        let dims: Vec<String> = usd
            .iter()
            .enumerate()
            .map(|(i, (begin, p))| {
                format!(r#""SKU.TERM.R{i}":{{"unit":"Hrs","beginRange":"{begin}","endRange":"Inf","pricePerUnit":{{"USD":"{p}"}}}}"#)
            })
            .collect();
        format!(
            r#"{{"product":{{"productFamily":"x","attributes":{{"usagetype":"{usagetype}"{extra}}},"sku":"SKU"}},"serviceCode":"AmazonVPC","terms":{{"OnDemand":{{"SKU.TERM":{{"priceDimensions":{{{}}},"sku":"SKU"}}}}}}}}"#,
            dims.join(",")
        )
    }

    #[test]
    fn reads_usd_price_dimensions_tier_order_and_skips_free_tiers() {
        let p = parse(&[doc(
            "USE2-DataTransfer-Regional-Bytes",
            "",
            &[("10", "0.0100000000"), ("0", "0.0000000000")],
        )])
        .unwrap();
        assert_eq!(p[0].usd, vec![0.0, 0.01]);
        assert_eq!(p[0].price(), Some(0.01));
    }

    #[test]
    fn matches_usage_types_with_and_without_region_prefix() {
        let vpc = parse(&[
            doc("USE2-PublicIPv4:InUseAddress", "", &[("0", "0.005")]),
            doc(
                "USE2-TransitGateway-Hours",
                r#","operation":"TransitGatewayPeering""#,
                &[("0", "0.07")],
            ),
            doc(
                "USE2-TransitGateway-Hours",
                r#","operation":"TransitGatewayVPC""#,
                &[("0", "0.05")],
            ),
            doc("USE2-TransitGateway-Bytes", "", &[("0", "0.02")]),
        ])
        .unwrap();
        let nat = parse(&[
            doc("NatGateway-Hours", "", &[("0", "0.045")]),
            doc("NatGateway-Bytes", "", &[("0", "0.045")]),
        ])
        .unwrap();
        let r = region_prices("t3.small", [&[], &[], &nat, &vpc], None);
        assert_eq!(r.public_ipv4_hour, Some(Price::listed(0.005)));
        assert_eq!(r.tgw_attachment_hour, Some(Price::listed(0.05)));
        assert_eq!(r.tgw_processing_gb, Some(Price::listed(0.02)));
        assert_eq!(r.nat_gateway_hour, Some(Price::listed(0.045)));
        assert_eq!(r.instance_hour, None);
        assert_eq!(r.tgw_attachment_nat_hour, None);
    }

    #[test]
    fn a_lookalike_usage_type_does_not_match() {
        let p = parse(&[doc("USE2-BoxUsage:t3.small.x", "", &[("0", "1")])]).unwrap();
        assert_eq!(
            region_prices("t3.small", [&p, &[], &[], &[]], None).instance_hour,
            None
        );
    }

    #[test]
    fn bad_documents_are_errors_not_zeroes() {
        assert!(parse(&["{".to_string()]).is_err());
        assert!(parse(&[doc("X", "", &[("0", "cheap")])]).is_err());
    }

    #[test]
    fn fill_takes_only_what_is_missing_and_names_it() {
        let mut listed = RegionPrices {
            instance_hour: Some(Price::listed(0.03)),
            ..Default::default()
        };
        let b = crate::cost::builtin::region("us-east-1", "t3.small").unwrap();
        let filled = fill(&mut listed, Some(&b));
        assert_eq!(listed.instance_hour.unwrap().source, Source::PriceList);
        assert_eq!(listed.nat_gateway_hour.unwrap().source, Source::Builtin);
        assert!(!filled.contains(&"instance") && filled.contains(&"gp3"));
        assert_eq!(listed.tgw_attachment_nat_hour, None);
    }

    #[test]
    fn queries_name_region_and_type() {
        let q = region_queries("eu-west-1", "t3.small");
        assert!(q[0].filters.contains(&("instanceType", "t3.small".into())));
        assert!(q
            .iter()
            .all(|q| q.filters.contains(&("regionCode", "eu-west-1".into()))));
        assert_eq!(transfer_query("a", "a").filters[2].1, "IntraRegion");
        assert_eq!(
            transfer_query("a", "b").filters[2].1,
            "InterRegion Outbound"
        );
    }
}
