//! Who makes a call, as every service wrapper but EC2's needs it (EC2's adds fault injection, src/aws/ec2): the side
//! and profile that an [`AwsError`] names, and under `--dry-run` the log that calls changing something go to instead.

use super::ec2::{DryRunLog, PlannedCall};
use super::error::AwsError;
use crate::side::Side;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, Clone)]
pub struct Caller {
    pub side: Side,
    pub profile: String,
    pub dry: Option<DryRunLog>,
}

impl Caller {
    pub fn new(side: Side, profile: &str, dry: Option<DryRunLog>) -> Self {
        Caller {
            side,
            profile: profile.to_string(),
            dry,
        }
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry.is_some()
    }

    /// The error for `action` on `resource`, from whatever the SDK returned.
    pub fn err<E, Rs>(
        &self,
        action: &'static str,
        resource: impl Into<String>,
    ) -> impl FnOnce(SdkError<E, Rs>) -> AwsError + '_
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        Rs: std::fmt::Debug,
    {
        let resource = resource.into();
        move |e| AwsError::new(self.side, &self.profile, action, resource, e)
    }

    /// An error for `action` on `resource` that the SDK did not return as one (a waiter that gave up, a request
    /// that could not be built): same side, profile and fix as every other.
    pub fn error(
        &self,
        action: &'static str,
        resource: impl Into<String>,
        code: Option<&str>,
        message: String,
    ) -> AwsError {
        AwsError {
            side: self.side,
            profile: self.profile.clone(),
            action,
            resource: resource.into(),
            code: code.map(str::to_string),
            message,
        }
    }

    /// Under `--dry-run`: record the call and say so (the caller then makes none).
    pub fn planned(&self, action: &'static str, detail: String) -> bool {
        match &self.dry {
            Some(log) => {
                log.record(PlannedCall {
                    side: self.side,
                    action,
                    detail,
                });
                true
            }
            None => false,
        }
    }
}
