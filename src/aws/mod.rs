//! The AWS effect layer: one SdkConfig per side, built explicitly from that side's profile (never from AWS_PROFILE),
//! and thin wrappers with one method per API call.

pub mod call_log;
mod caller;
pub mod cloudwatch;
pub mod ec2;
mod error;
pub mod iam;
pub mod pricing;
pub mod profile;
pub mod route53;
pub mod tags;

pub use ec2::{DryRunLog, Ec2};
pub use error::AwsError;

use crate::side::Side;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::time::Duration;

/// What the user asked for on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideTarget {
    pub side: Side,
    pub profile: String,
    pub region: Option<String>,
}

/// One side's clients and identity.
#[derive(Debug, Clone)]
pub struct SideAws {
    pub side: Side,
    pub profile: String,
    pub region: String,
    pub account: String,
    pub ec2: Ec2,
    pub ssm: aws_sdk_ssm::Client,
    /// The tunnel hosts' role and instance profile (IAM is global: one per account).
    pub iam: iam::Iam,
    /// The tunnel-down alarm and the hosts' figures, in this side's region.
    pub cloudwatch: cloudwatch::CloudWatch,
    /// The private zones for the other side's names (Route 53 is global: see route53.rs).
    pub route53: route53::Route53,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{side} side: profile '{profile}' is not defined in {files}; pass an existing profile (`aws configure list-profiles` lists them)")]
    UnknownProfile {
        side: Side,
        profile: String,
        files: String,
    },
    #[error("{side} side: profile '{profile}' has no region; set `region` in its config or pass --{side}-region")]
    NoRegion { side: Side, profile: String },
    #[error(transparent)]
    Identity(AwsError),
}

impl ConnectError {
    /// Bad input (exit 2), not a failure at run time: nothing was attempted yet.
    pub fn is_usage(&self) -> bool {
        match self {
            ConnectError::UnknownProfile { .. } | ConnectError::NoRegion { .. } => true,
            // Only codes that say the credentials do not work; throttling, 5xx and no answer are run time.
            ConnectError::Identity(e) => e.needs_user_fix(),
        }
    }
}

/// The SdkConfig for one profile, as the AWS CLI would resolve it (config and credentials files, endpoint_url,
/// AWS_* variables), with an optional region override. Throttling is retried with backoff by the SDK, and no call
/// hangs: an endpoint that stops answering fails the attempt (retried) instead of stalling the run.
pub async fn sdk_config(profile: &str, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .profile_name(profile)
        .retry_config(RetryConfig::standard().with_max_attempts(8))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    loader.load().await
}

/// Build the clients for one side and learn its account (STS GetCallerIdentity doubles as a credentials check).
pub async fn connect(
    target: &SideTarget,
    dry_run: Option<DryRunLog>,
) -> Result<SideAws, ConnectError> {
    let SideTarget {
        side,
        profile,
        region,
    } = target;
    let (side, profile) = (*side, profile.clone());
    if !profile::defined(&profile).await {
        return Err(ConnectError::UnknownProfile {
            side,
            profile,
            files: profile::files_description(),
        });
    }
    let config = sdk_config(&profile, region.as_deref()).await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| ConnectError::NoRegion {
            side,
            profile: profile.clone(),
        })?;
    // The first call: a wrong endpoint or no network should be reported in a second, not after eight retries.
    let mut sts = aws_sdk_sts::config::Builder::from(&config)
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    let mut ec2 = aws_sdk_ec2::config::Builder::from(&config);
    let mut ssm = aws_sdk_ssm::config::Builder::from(&config);
    let mut iam = aws_sdk_iam::config::Builder::from(&config);
    let mut cloudwatch = aws_sdk_cloudwatch::config::Builder::from(&config);
    let mut route53 = aws_sdk_route53::config::Builder::from(&config);
    if let Some(log) = call_log::interceptor(side) {
        sts.push_interceptor(log.clone());
        ec2.push_interceptor(log.clone());
        iam.push_interceptor(log.clone());
        cloudwatch.push_interceptor(log.clone());
        route53.push_interceptor(log.clone());
        ssm.push_interceptor(log);
    }
    let sts = aws_sdk_sts::Client::from_conf(sts.build());
    let account = call_log::step("sts", sts.get_caller_identity().send())
        .await
        .map_err(|e| {
            ConnectError::Identity(AwsError::new(
                side,
                &profile,
                "sts:GetCallerIdentity",
                "the caller",
                e,
            ))
        })?
        .account
        .unwrap_or_default();
    Ok(SideAws {
        side,
        region,
        account,
        ec2: Ec2::new(
            aws_sdk_ec2::Client::from_conf(ec2.build()),
            side,
            &profile,
            dry_run.clone(),
        ),
        ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
        iam: iam::Iam::new(
            aws_sdk_iam::Client::from_conf(iam.build()),
            side,
            &profile,
            dry_run.clone(),
        ),
        cloudwatch: cloudwatch::CloudWatch::new(
            aws_sdk_cloudwatch::Client::from_conf(cloudwatch.build()),
            side,
            &profile,
            dry_run.clone(),
        ),
        route53: route53::Route53::new(
            aws_sdk_route53::Client::from_conf(route53.build()),
            side,
            &profile,
            dry_run.clone(),
        ),
        profile,
    })
}
