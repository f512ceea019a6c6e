//! A thin wrapper over the AWS Price List API client: one method per API call.
//!
//! The Price List Query API answers only at a few endpoints, whatever the region of the VPCs: "the following two
//! endpoints: https://api.pricing.us-east-1.amazonaws.com, https://api.pricing.ap-south-1.amazonaws.com"
//! (aws-sdk-pricing's crate documentation, from the API reference), so the client always asks us-east-1. Prices are public: any signed caller with pricing:GetProducts gets them.
//! An endpoint_url of the profile (or AWS_ENDPOINT_URL_PRICING, which overrides it: AWS SDKs and Tools Reference
//! Guide, "Service-specific endpoints") is honoured like for every other client.

use super::error::AwsError;
use super::{call_log, sdk_config};
use crate::side::Side;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_pricing::types::{Filter, FilterType};
use std::time::Duration;

/// The Price List API's home region.
pub const PRICING_REGION: &str = "us-east-1";

/// Pages of one GetProducts query read at most (100 products each): enough for a region's AmazonVPC products.
const MAX_PAGES: usize = 5;

#[derive(Debug, Clone)]
pub struct Pricing {
    client: aws_sdk_pricing::Client,
    side: Side,
    profile: String,
}

impl Pricing {
    /// A client with the profile's credentials and endpoint, in [`PRICING_REGION`]. The lookup is an extra, never
    /// worth holding `plan` up: one retry, short timeouts.
    pub async fn new(side: Side, profile: &str) -> Pricing {
        let config = sdk_config(profile, Some(PRICING_REGION)).await;
        let mut b = aws_sdk_pricing::config::Builder::from(&config)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(4))
                    .operation_timeout(Duration::from_secs(6))
                    .build(),
            );
        if let Some(log) = call_log::interceptor(side) {
            b.push_interceptor(log);
        }
        Pricing {
            client: aws_sdk_pricing::Client::from_conf(b.build()),
            side,
            profile: profile.to_string(),
        }
    }

    /// GetProducts with TERM_MATCH filters: the PriceList documents of every page (up to [`MAX_PAGES`]).
    /// https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html
    pub async fn get_products(
        &self,
        service_code: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<String>, AwsError> {
        let resource = format!(
            "{service_code} {}",
            filters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let filters: Vec<Filter> = filters
            .iter()
            .map(|(field, value)| {
                Filter::builder()
                    .r#type(FilterType::TermMatch)
                    .field(*field)
                    .value(value)
                    .build()
                    .expect("type, field and value are set")
            })
            .collect();
        let mut documents = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = call_log::step(
                "pricing",
                self.client
                    .get_products()
                    .service_code(service_code)
                    .format_version("aws_v1")
                    .set_filters(Some(filters.clone()))
                    .max_results(100)
                    .set_next_token(token.take())
                    .send(),
            )
            .await
            .map_err(|e| {
                AwsError::new(
                    self.side,
                    &self.profile,
                    "pricing:GetProducts",
                    resource.clone(),
                    e,
                )
            })?;
            documents.extend(out.price_list().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(documents)
    }
}
