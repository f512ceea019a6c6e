//! One error type for every AWS call: which side and profile, which call on which resource, the AWS error code, and
//! what the user can do about it.

use crate::side::Side;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::fmt;

#[derive(Debug, Clone, thiserror::Error)]
pub struct AwsError {
    pub side: Side,
    pub profile: String,
    /// The IAM action, e.g. "ec2:CreateRoute".
    pub action: &'static str,
    /// What it was done to: an id, a name, or "rtb-1 10.64.0.0/16".
    pub resource: String,
    /// The AWS error code (UnauthorizedOperation, InvalidGroup.NotFound...); None when no answer came back.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} side (profile {}): {} on {} failed: {}{}. Fix: {}",
            self.side,
            self.profile,
            self.action,
            self.resource,
            self.code
                .as_deref()
                .map(|c| format!("{c}: "))
                .unwrap_or_default(),
            self.message.trim_end_matches('.'),
            self.fix()
        )
    }
}

/// "dispatch failure: io error: ...: Connection refused": each cause once, without debug dumps.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

impl AwsError {
    pub fn new<E, R>(
        side: Side,
        profile: &str,
        action: &'static str,
        resource: impl Into<String>,
        err: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let (code, message) = match &err {
            SdkError::ServiceError(_) => (
                err.code().map(str::to_string),
                err.message().unwrap_or("no message").to_string(),
            ),
            _ => (None, chain(&err)),
        };
        AwsError {
            side,
            profile: profile.to_string(),
            action,
            resource: resource.into(),
            code,
            message,
        }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// The resource is gone (or not visible yet: EC2 is eventually consistent right after a create).
    pub fn is_not_found(&self) -> bool {
        let c = self.code();
        c.ends_with(".NotFound")
    }

    /// A DryRun call that would have succeeded.
    pub fn is_dry_run_ok(&self) -> bool {
        self.code() == "DryRunOperation"
    }

    pub fn is_denied(&self) -> bool {
        matches!(
            self.code(),
            "UnauthorizedOperation"
                | "AccessDenied"
                | "AccessDeniedException"
                | "Client.UnauthorizedOperation"
        )
    }

    /// Failed for now, not for good: no answer came back (dispatch failure, timeout, unreadable response),
    /// throttling, or AWS's own fault (5xx). Running the same command again is the fix.
    pub fn is_transient(&self) -> bool {
        self.code.is_none()
            || matches!(
                self.code(),
                "RequestLimitExceeded"
                    | "Throttling"
                    | "ThrottlingException"
                    | "ThrottledException"
                    | "TooManyRequestsException"
                    | "RequestThrottled"
                    | "RequestThrottledException"
                    | "SlowDown"
                    | "PriorRequestNotComplete"
                    | "InternalError"
                    | "InternalFailure"
                    | "InternalServerError"
                    | "InternalServiceError"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException"
                    | "Unavailable"
                    | "RequestTimeout"
                    | "RequestTimeoutException"
            )
    }

    /// The credentials (or the account's opt-in to the region) do not work: the user must fix the profile.
    pub fn is_credentials(&self) -> bool {
        matches!(
            self.code(),
            "AuthFailure"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "ExpiredTokenException"
                | "RequestExpired"
                | "UnrecognizedClientException"
                | "InvalidAccessKeyId"
                | "MissingAuthenticationToken"
                | "IncompleteSignature"
                | "OptInRequired"
        )
    }

    /// The request named something that is not there or said something AWS refuses: bad input.
    pub fn is_bad_input(&self) -> bool {
        let c = self.code();
        self.is_not_found()
            || c.ends_with(".Malformed")
            || matches!(
                c,
                "InvalidParameterValue"
                    | "InvalidParameterCombination"
                    | "InvalidParameter"
                    | "MissingParameter"
                    | "ValidationError"
                    | "ValidationException"
                    | "Unsupported"
                    | "ParameterNotFound"
            )
    }

    /// What the user must fix before anything can work (bad input, missing permission, credentials), as opposed
    /// to a failure at run time. Only meaningful before anything was created (connect, discovery, preflight):
    /// after that, every AWS failure is a run-time failure.
    pub fn needs_user_fix(&self) -> bool {
        !self.is_transient() && (self.is_bad_input() || self.is_denied() || self.is_credentials())
    }

    pub fn is_duplicate(&self) -> bool {
        let c = self.code();
        c.ends_with(".Duplicate") || c == "RouteAlreadyExists"
    }

    /// What to do about it, in one sentence.
    pub fn fix(&self) -> String {
        let (p, a) = (&self.profile, self.action);
        match self.code() {
            c if self.is_denied() || c == "UnauthorizedOperation" => {
                format!("missing permission {a} on profile {p}; add it to the IAM policy of that profile's user or role")
            }
            "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "RequestExpired" => {
                format!("the credentials of profile {p} are not valid or have expired; refresh them (e.g. `aws sso login --profile {p}`)")
            }
            "AddressLimitExceeded" => {
                "the Elastic IP quota of this region is used up; release unused addresses or request a quota increase".into()
            }
            "RouteLimitExceeded" => {
                "the route table is full (50 routes by default); remove unused routes or request a quota increase".into()
            }
            "InstanceLimitExceeded" | "VcpuLimitExceeded" | "InsufficientInstanceCapacity" => {
                "no capacity or quota for this instance type here; try another --instance-type or request a quota increase".into()
            }
            "ParameterNotFound" => {
                "this region publishes no such image parameter; pick another --os, instance type (CPU architecture) or region".into()
            }
            "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
                "AWS is throttling this account; wait a minute and run the same command again (it resumes)".into()
            }
            "" => format!(
                "no answer from AWS; check the network, and the region and endpoint_url of profile {p}, then run the same command again (it resumes)"
            ),
            _ if self.is_not_found() => format!(
                "{} does not exist (any more); `vpclink status` shows what drifted, `vpclink up` recreates it",
                self.resource
            ),
            _ => "run the same command again (it resumes); if it keeps failing, the message above says why".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str) -> AwsError {
        AwsError {
            side: Side::West,
            profile: "partner".into(),
            action: "ec2:CreateRoute",
            resource: "rtb-1 10.64.0.0/16".into(),
            code: Some(code.into()),
            message: "You are not authorized to perform this operation.".into(),
        }
    }

    #[test]
    fn messages_name_side_profile_action_resource_code_and_fix() {
        assert_eq!(
            err("UnauthorizedOperation").to_string(),
            "west side (profile partner): ec2:CreateRoute on rtb-1 10.64.0.0/16 failed: UnauthorizedOperation: You are \
             not authorized to perform this operation. Fix: missing permission ec2:CreateRoute on profile partner; add \
             it to the IAM policy of that profile's user or role"
        );
        assert!(err("InvalidInstanceID.NotFound").is_not_found());
        assert!(!err("InvalidInstanceID.Malformed").is_not_found());
        assert!(err("InvalidPermission.Duplicate").is_duplicate());
        assert!(err("AddressLimitExceeded")
            .fix()
            .contains("Elastic IP quota"));
    }

    #[test]
    fn kinds() {
        for c in [
            "UnauthorizedOperation",
            "AccessDenied",
            "InvalidVpcID.NotFound",
            "InvalidParameterValue",
            "InvalidClientTokenId",
            "AuthFailure",
            "ExpiredToken",
            "InvalidGroupId.Malformed",
        ] {
            assert!(err(c).needs_user_fix() && !err(c).is_transient(), "{c}");
        }
        for c in [
            "RequestLimitExceeded",
            "Throttling",
            "InternalError",
            "ServiceUnavailable",
            "Unavailable",
        ] {
            assert!(err(c).is_transient() && !err(c).needs_user_fix(), "{c}");
        }
        let mut none = err("x");
        none.code = None;
        assert!(none.is_transient() && !none.needs_user_fix());
        // Neither: a failure at run time.
        for c in [
            "IncorrectState",
            "DependencyViolation",
            "InsufficientInstanceCapacity",
        ] {
            assert!(!err(c).is_transient() && !err(c).needs_user_fix(), "{c}");
        }
    }
}
