//! A thin wrapper over the EC2 client: one method per API call (reads in read.rs, DryRun permission probes in
//! probe.rs, changes in change.rs), each returning [`AwsError`] with the side, profile,
//! IAM action and resource filled in. With a [`DryRunLog`], calls that change something are recorded instead of
//! made and return [`Made::Planned`] (an id that names what would have been made, `<new ...>`); reads still go to
//! AWS, and take only real ids: a caller holding an [`Id`] decides with [`Made::real`] what to do with a planned one.

mod change;
mod probe;
mod read;

use super::error::AwsError;
use super::tags::LinkTags;
use crate::side::Side;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::Client;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A call `--dry-run` would have made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCall {
    pub side: Side,
    pub action: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct DryRunLog(Arc<Mutex<Vec<PlannedCall>>>);

impl DryRunLog {
    pub fn calls(&self) -> Vec<PlannedCall> {
        self.0.lock().expect("dry-run log").clone()
    }

    /// Record a call another service's wrapper (IAM, CloudWatch) would have made.
    pub fn record(&self, call: PlannedCall) {
        self.0.lock().expect("dry-run log").push(call);
    }
}

/// What a call that creates something gave back: the real thing, or under `--dry-run` the planned id of what it
/// would have made (`<new east tunnel security group>`), which nothing in AWS answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made<T = String> {
    /// The placeholder id, as the dry-run call list shows it.
    Planned(String),
    Real(T),
}

/// A resource id: real, or planned by `--dry-run`.
pub type Id = Made<String>;

impl Id {
    /// The id of something `--dry-run` would make on `side`: `what` is e.g. "tunnel security group".
    pub fn planned(side: Side, what: &str) -> Id {
        Made::Planned(format!("<new {side} {what}>"))
    }

    /// Back from the state, which holds ids as text (a dry run's state holds planned ones, and is never saved).
    pub fn from_state(text: &str) -> Id {
        if text.starts_with("<new ") {
            Made::Planned(text.to_string())
        } else {
            Made::Real(text.to_string())
        }
    }

    /// The id only if it exists: what a read of it needs.
    pub fn real(&self) -> Option<&str> {
        match self {
            Made::Real(id) => Some(id),
            Made::Planned(_) => None,
        }
    }

    /// The text the state and the dry-run call list hold: the id, or the placeholder.
    pub fn as_str(&self) -> &str {
        match self {
            Made::Real(id) | Made::Planned(id) => id,
        }
    }

    pub fn into_string(self) -> String {
        match self {
            Made::Real(id) | Made::Planned(id) => id,
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What RunInstances needs for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub tags: LinkTags,
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_id: String,
    pub key_name: String,
    /// Plain text; base64-encoded here.
    pub user_data: String,
    pub client_token: String,
    /// The instance profile's name (tunnel hosts: their metrics role); None for none.
    pub iam_instance_profile: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
    side: Side,
    profile: String,
    dry: Option<DryRunLog>,
}

type R<T> = Result<T, AwsError>;

impl Ec2 {
    pub fn new(client: Client, side: Side, profile: &str, dry: Option<DryRunLog>) -> Self {
        Ec2 {
            client,
            side,
            profile: profile.to_string(),
            dry,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry.is_some()
    }

    fn err<E: ProvideErrorMetadata + std::error::Error + 'static, Rs: std::fmt::Debug>(
        &self,
        action: &'static str,
        resource: impl Into<String>,
    ) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, Rs>) -> AwsError + '_ {
        let resource = resource.into();
        move |e| AwsError::new(self.side, &self.profile, action, resource, e)
    }

    /// Called first by every method that changes something. In dry-run mode: record the call and return true (the
    /// caller then returns a placeholder). Fails when a test injected a fault at this call (VPCLINK_FAULT_AT).
    fn begin(&self, action: &'static str, detail: impl Into<String>) -> R<bool> {
        if fault::hit() {
            return Err(AwsError {
                side: self.side,
                profile: self.profile.clone(),
                action,
                resource: detail.into(),
                code: Some("InjectedFault".into()),
                message: "fault injected by VPCLINK_FAULT_AT (tests only)".into(),
            });
        }
        Ok(match &self.dry {
            Some(log) => {
                log.0.lock().expect("dry-run log").push(PlannedCall {
                    side: self.side,
                    action,
                    detail: detail.into(),
                });
                true
            }
            None => false,
        })
    }

    /// Every change: [`Self::begin`], then, unless dry-run (which returns `planned` and never calls `call`), the
    /// call, its error carrying `action` and `resource`.
    async fn change<T, E, Rs, Fut>(
        &self,
        action: &'static str,
        detail: String,
        resource: impl Into<String>,
        planned: T,
        call: impl FnOnce() -> Fut,
    ) -> R<T>
    where
        Fut: std::future::Future<Output = Result<T, aws_sdk_ec2::error::SdkError<E, Rs>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        Rs: std::fmt::Debug,
    {
        if self.begin(action, detail)? {
            return Ok(planned);
        }
        // Boxed: an SDK call's future is large, and `up` runs dozens at once on the main thread's stack.
        Box::pin(call()).await.map_err(self.err(action, resource))
    }

    /// The planned id of what `what` names on this side.
    fn planned(&self, what: &str) -> Id {
        Id::planned(self.side, what)
    }
}

/// Test hook: VPCLINK_FAULT_AT=N makes the Nth change this process attempts fail, as an API error would, so the tests
/// can prove that a run that died there resumes.
mod fault {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    pub fn hit() -> bool {
        crate::settings::get()
            .fault_at
            .is_some_and(|at| CALLS.fetch_add(1, Ordering::SeqCst) + 1 == at)
    }
}

fn not_found_is_none<T>(e: AwsError) -> R<Option<T>> {
    if e.is_not_found() {
        Ok(None)
    } else {
        Err(e)
    }
}

/// DryRunOperation is the success answer of a DryRun call.
fn dry_run_outcome(r: R<()>) -> R<()> {
    match r {
        Err(e) if e.is_dry_run_ok() => Ok(()),
        other => other,
    }
}

/// Retry `f` while EC2 says "not found" about something just created (eventual consistency), up to ~40 s.
pub async fn retry_not_found<T, F, Fut>(mut f: F) -> R<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R<T>>,
{
    let mut delay = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        match f().await {
            Err(e) if e.is_not_found() && waited < Duration::from_secs(40) => {
                tracing::debug!("{e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_id_reads_as_none_and_round_trips_through_the_state() {
        let planned = Id::planned(Side::East, "tunnel network interface");
        assert_eq!(planned.as_str(), "<new east tunnel network interface>");
        assert_eq!(planned.real(), None);
        assert_eq!(Id::from_state(planned.as_str()), planned);
        let real = Id::from_state("eni-0123");
        assert_eq!(real, Made::Real("eni-0123".to_string()));
        assert_eq!(real.real(), Some("eni-0123"));
        assert_eq!(real.to_string(), "eni-0123");
    }
}
