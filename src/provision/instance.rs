//! The hosts: a tunnel host (public subnet, Elastic IP, source/dest check off) and optionally a test host per side.
//! Found again by tag after a crash; launched with a ClientToken so a retried RunInstances returns the same host.

use super::Step;
use crate::aws::call_log;
use crate::aws::ec2::{retry_not_found, Id, LaunchSpec, Made};
use crate::aws::tags::LinkTags;
use crate::error::{Error, Result};
use crate::render::cloud_init;
use crate::state::{Host, Os, Role, SshTarget};
use aws_sdk_ec2::types::{Instance, InstanceStateName};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The SSM public parameter naming the current AMI for an OS and CPU architecture.
///
/// Debian: the cloud team's `put-ssm` tool publishes each release AMI as `<prefix>/release/<release>/latest/<arch>`,
/// once under the codename and once under the number (debian-cloud-images, salsa.debian.org/cloud-team, read in its
/// GitHub mirror GoCarrot/debian-cloud-images: src/debian_cloud_images/cli/put_ssm.py, commit a8de7cb "Support
/// publication of EC2 AMI details to SSM parameters"); the prefix is the team's deployment setting, not in that code.
/// `/aws/service/debian` is the prefix the public parameters are read under in practice (e.g.
/// `/aws/service/debian/release/12/latest/amd64` and `.../13/latest/amd64` in public templates and scripts); no
/// Debian or AWS page found here states it. The numeric form is used: it names the release the way `--os` does.
pub fn ami_parameter(os: Os, arch: &str) -> String {
    let debian_arch = if arch == "arm64" { "arm64" } else { "amd64" };
    match os {
        Os::Al2023 => {
            format!("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}")
        }
        Os::Ubuntu2404 => {
            format!("/aws/service/canonical/ubuntu/server/24.04/stable/current/{debian_arch}/hvm/ebs-gp3/ami-id")
        }
        Os::Debian12 => format!("/aws/service/debian/release/12/latest/{debian_arch}"),
        Os::Debian13 => format!("/aws/service/debian/release/13/latest/{debian_arch}"),
    }
}

/// The architecture to take an AMI for, from what DescribeInstanceTypes says the type supports (arm64 when it
/// supports it, else x86_64); None when the type supports neither (e.g. Mac types).
pub fn arch_from(supported: &[String]) -> Option<&'static str> {
    if supported.iter().any(|a| a == "arm64") {
        Some("arm64")
    } else if supported.iter().any(|a| a == "x86_64") {
        Some("x86_64")
    } else {
        None
    }
}

/// The account the AMI gives the launch key pair to: "For a Debian AMI, the username is admin"
/// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/managing-users.html, "Default usernames").
pub fn login_user(os: Os) -> &'static str {
    match os {
        Os::Al2023 => "ec2-user",
        Os::Ubuntu2404 => "ubuntu",
        Os::Debian12 | Os::Debian13 => "admin",
    }
}

fn is_gone(i: &Instance) -> bool {
    matches!(
        i.state().and_then(|s| s.name()),
        Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
    )
}

fn primary_eni(i: &Instance) -> Option<String> {
    i.network_interfaces()
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()).unwrap_or(0) == 0)
        .and_then(|n| n.network_interface_id())
        .map(str::to_string)
}

/// A ClientToken that stays the same across retries of one launch (same link life: same `nonce`) but differs once
/// an earlier host of this role was terminated (AWS would otherwise hand back the terminated one) and for every new
/// life of a link name. EC2 caps tokens at 64 ASCII characters, and keeps one for at least 24 hours after the
/// instance is terminated, answering IdempotentParameterMismatch when it comes back with other parameters
/// (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html).
pub fn client_token(tags: &LinkTags, vpc_id: &str, nonce: &str, generation: usize) -> String {
    let digest = crate::configure::sha256_hex(&format!(
        "{}/{}/{}/{vpc_id}/{nonce}",
        tags.link, tags.side, tags.role
    ));
    format!("vpclink-{generation}-{}", &digest[..40])
}

/// A fresh launch nonce: 64 random bits as hex.
pub fn new_nonce() -> String {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How many spent tokens (terminated hosts, or tokens EC2 remembers with other parameters) a launch skips at most.
const MAX_TOKEN_SKIPS: usize = 8;

/// What to do after RunInstances answered: keep the host, or move on to the next token.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    Launched,
    /// The token is spent: it named a host that is gone, or EC2 remembers it with other parameters.
    NextToken,
}

pub fn judge_launch(result: Result<bool, &crate::aws::AwsError>) -> Option<TokenOutcome> {
    match result {
        Ok(false) => Some(TokenOutcome::Launched),
        Ok(true) => Some(TokenOutcome::NextToken),
        Err(e) if e.code() == "IdempotentParameterMismatch" => Some(TokenOutcome::NextToken),
        Err(_) => None,
    }
}

fn host_of(i: &Instance, os: Os) -> Option<Host> {
    Some(Host {
        instance_id: i.instance_id().map(str::to_string),
        eni_id: primary_eni(i),
        private_ip: i.private_ip_address()?.parse().ok()?,
        public_ip: None,
        os,
        ssh: None,
        host_key: None,
        uplink: None,
        ipsec_pubkey: None,
        libreswan: None,
    })
}

/// The current AMI for the link's OS on this instance type, from the SSM public parameter, checked to exist. The
/// type's architecture comes from DescribeInstanceTypes; both architectures' parameters are read beside it, so knowing
/// the architecture costs no round trip.
pub async fn resolve_ami(aws: &crate::aws::SideAws, os: Os, instance_type: &str) -> Result<String> {
    let side = aws.side;
    let parameter = |arch: &'static str| async move {
        let name = ami_parameter(os, arch);
        let value = aws
            .ssm
            .get_parameter()
            .name(&name)
            .send()
            .await
            .map_err(|e| {
                crate::aws::AwsError::new(side, &aws.profile, "ssm:GetParameter", &name, e)
            })?
            .parameter
            .and_then(|p| p.value)
            .ok_or_else(|| Error::Input(format!("{side} side: SSM parameter {name} has no value")));
        Ok::<_, Error>((name, value))
    };
    let (supported, x86, arm) = tokio::join!(
        call_log::step("itype", aws.ec2.instance_type_architectures(instance_type)),
        parameter("x86_64"),
        parameter("arm64"),
    );
    let supported = supported?;
    let arch = arch_from(&supported).ok_or_else(|| {
        Error::Input(format!(
            "{side} side: instance type {instance_type} is not offered in {} or supports neither x86_64 nor arm64 (it supports: {}); pass another --instance-type",
            aws.region,
            if supported.is_empty() { "nothing listed".to_string() } else { supported.join(", ") }
        ))
    })?;
    let (name, value) = if arch == "arm64" { arm? } else { x86? };
    let value = value?;
    match call_log::step("ami_image", aws.ec2.describe_image(&value)).await? {
        Some(_) => Ok(value),
        None => Err(Error::Input(format!(
            "{side} side: AMI {value} (from {name}) is not visible in {}; pick another --os or region",
            aws.region
        ))),
    }
}

pub struct HostRequest<'a> {
    pub role: Role,
    pub tags_role: &'static str,
    pub image_id: &'a str,
    pub subnet_id: &'a str,
    pub security_group_id: &'a str,
    pub key_name: &'a str,
    /// The instance profile to launch with (the tunnel host's metrics role), by name.
    pub instance_profile: Option<String>,
}

/// A host that runs, and whether this run launched it (else an earlier run did).
pub struct Launched {
    pub host: Host,
    pub new: bool,
}

/// The host for `req.role` runs: found (state, then tag, in the survey) or launched, then waited for.
pub async fn ensure(step: &Step<'_>, req: &HostRequest<'_>) -> Result<Launched> {
    let os = step.options().os;
    let (run_step, wait_step, start_step) = match req.role {
        Role::Tunnel => ("tunnel_run", "tunnel_wait", "tunnel_start"),
        Role::Test => ("test_run", "test_wait", "test_start"),
    };
    let tags = LinkTags::new(step.link(), step.side(), req.tags_role);
    let found = step.survey.instances_of(&tags);
    let alive: Vec<&Instance> = found.iter().copied().filter(|i| !is_gone(i)).collect();
    let recorded = step.side_state(|s| host_slot(s, req.role).and_then(|h| h.instance_id.clone()));
    let (instance, new) = match alive
        .iter()
        .find(|i| i.instance_id() == recorded.as_deref())
        .or(alive.first())
    {
        Some(i) => (Made::Real((*i).clone()), false),
        None => {
            let nonce = match step.side_state(|s| s.launch_nonce.clone()) {
                Some(n) => n,
                None => {
                    let n = new_nonce();
                    step.record(|s| s.launch_nonce = Some(n.clone()))?;
                    n
                }
            };
            let mut generation = found.len();
            loop {
                let spec = LaunchSpec {
                    tags: tags.clone(),
                    image_id: req.image_id.to_string(),
                    instance_type: step.options().instance_type.clone(),
                    subnet_id: req.subnet_id.to_string(),
                    security_group_id: req.security_group_id.to_string(),
                    key_name: req.key_name.to_string(),
                    user_data: cloud_init::user_data(req.role, os).to_string(),
                    client_token: client_token(&tags, step.vpc_id(), &nonce, generation),
                    iam_instance_profile: req.instance_profile.clone(),
                };
                // The key pair or group made a moment ago may not be visible yet; the same ClientToken makes a retry
                // return the same host.
                // A profile made a moment ago may be refused for some seconds (IAM is eventually consistent).
                let r = call_log::step(
                    run_step,
                    super::metrics::retry_profile_propagation(|| {
                        retry_not_found(|| step.aws.ec2.run_instance(&spec))
                    }),
                )
                .await;
                let outcome = judge_launch(r.as_ref().map(|m| match m {
                    Made::Real(i) => is_gone(i),
                    Made::Planned(_) => false,
                }));
                let spent = generation >= found.len() + MAX_TOKEN_SKIPS;
                match (outcome, r) {
                    (Some(TokenOutcome::NextToken), r) if !spent => {
                        tracing::debug!(
                            "{} {}: ClientToken {} is spent ({}); taking the next one",
                            step.side(),
                            req.tags_role,
                            spec.client_token,
                            r.map(|_| "its host is gone".to_string())
                                .unwrap_or_else(|e| e.to_string())
                        );
                        generation += 1;
                    }
                    (_, r) => break (r?, true),
                }
            }
        }
    };
    let instance = match instance {
        Made::Real(i) => i,
        // Planned by --dry-run: so is its interface, which the association, the check and the routes name.
        Made::Planned(id) => {
            let eni = Id::planned(step.side(), &format!("{} network interface", req.tags_role));
            let h = bare_host(os, id, Some(eni.into_string()));
            step.record(|s| set_host_slot(s, req.role, h.clone()))?;
            return Ok(Launched { host: h, new });
        }
    };
    let id = instance.instance_id().unwrap_or_default().to_string();
    // Record the id before waiting, so that a crash while it boots leaves it findable by state as well as by tag.
    if let Some(h) = host_of(&instance, os) {
        step.record(|s| set_host_slot(s, req.role, merge(host_slot(s, req.role), h.clone())))?;
    }
    let running = if is_running(&instance) {
        instance
    } else if step.aws.ec2.is_dry_run() {
        // A stopped host would be started (the wait below would never end in a dry run).
        if is_stopped(&instance) {
            step.aws.ec2.start_instance(&id).await?;
        }
        return Ok(Launched {
            host: host_of(&instance, os).unwrap_or_else(|| bare_host(os, id, None)),
            new,
        });
    } else {
        let wait = wait_running(step, &id, start_step);
        call_log::step(wait_step, wait).await?
    };
    let host = host_of(&running, os).ok_or_else(|| {
        Error::Runtime(format!(
            "{} {}: instance {id} has no private IP",
            step.side(),
            req.tags_role
        ))
    })?;
    Ok(Launched {
        host: step.record_host(req.role, host)?,
        new,
    })
}

fn is_running(i: &Instance) -> bool {
    i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Running)
}

fn is_stopped(i: &Instance) -> bool {
    i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Stopped)
}

/// A host known only by its ids (planned by --dry-run, or not yet running): no address, nothing learned.
fn bare_host(os: Os, instance_id: String, eni_id: Option<String>) -> Host {
    Host {
        instance_id: Some(instance_id),
        eni_id,
        private_ip: Ipv4Addr::UNSPECIFIED,
        public_ip: None,
        os,
        ssh: None,
        host_key: None,
        uplink: None,
        ipsec_pubkey: None,
        libreswan: None,
    }
}

/// Keep what configure learned about a host (host key, uplink, IPsec key) when it is the same instance.
fn merge(old: Option<&Host>, new: Host) -> Host {
    match old {
        Some(o) if o.instance_id == new.instance_id => Host {
            public_ip: new.public_ip.or(o.public_ip),
            ssh: new.ssh.or(o.ssh.clone()),
            host_key: o.host_key.clone(),
            uplink: o.uplink.clone(),
            ipsec_pubkey: o.ipsec_pubkey.clone(),
            ..new
        },
        _ => new,
    }
}

pub fn host_slot(s: &crate::state::SideState, role: Role) -> Option<&Host> {
    match role {
        Role::Tunnel => s.tunnel.as_ref(),
        Role::Test => s.test.as_ref(),
    }
}

pub fn set_host_slot(s: &mut crate::state::SideState, role: Role, h: Host) {
    match role {
        Role::Tunnel => s.tunnel = Some(h),
        Role::Test => s.test = Some(h),
    }
}

impl Step<'_> {
    pub fn record_host(&self, role: Role, host: Host) -> Result<Host> {
        let mut merged = host.clone();
        self.record(|s| {
            merged = merge(host_slot(s, role), host.clone());
            set_host_slot(s, role, merged.clone());
        })?;
        Ok(merged)
    }
}

/// Poll until the instance runs (EC2 is eventually consistent right after RunInstances: NotFound is retried). A host
/// that was stopped (by hand, or by AWS for maintenance) is started: it keeps its id, interface and routes.
async fn wait_running(step: &Step<'_>, id: &str, start_step: &'static str) -> Result<Instance> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let mut starts = 0;
    loop {
        let i = retry_not_found(|| async {
            step.aws
                .ec2
                .describe_instance(id)
                .await?
                .ok_or_else(|| crate::aws::AwsError {
                    side: step.side(),
                    profile: step.aws.profile.clone(),
                    action: "ec2:DescribeInstances",
                    resource: id.to_string(),
                    code: Some("InvalidInstanceID.NotFound".into()),
                    message: "not visible yet".into(),
                })
        })
        .await?;
        if is_running(&i) {
            return Ok(i);
        }
        match i.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Pending | InstanceStateName::Stopping) | None => {}
            Some(InstanceStateName::Stopped) if starts < 3 => {
                tracing::warn!("{} side: instance {id} is stopped; starting it", step.side());
                starts += 1;
                call_log::step(start_step, step.aws.ec2.start_instance(id)).await?;
            }
            Some(other) => {
                return Err(Error::Runtime(format!(
                    "{} side: instance {id} is {other} instead of starting; `vpclink status` shows it, `vpclink up` launches a new one once it is terminated",
                    step.side()
                )))
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Runtime(format!("{} side: instance {id} did not reach running in 10 minutes; run `vpclink up` again to keep waiting", step.side())));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How configure reaches a host: the tunnel host at its Elastic IP, a test host through its tunnel host.
pub fn ssh_target(role: Role, host: &Host, eip: Option<Ipv4Addr>) -> SshTarget {
    match role {
        Role::Tunnel => SshTarget {
            host: eip.unwrap_or(host.private_ip).to_string(),
            port: 22,
            user: login_user(host.os).into(),
            via_tunnel: false,
        },
        Role::Test => SshTarget {
            host: host.private_ip.to_string(),
            port: 22,
            user: login_user(host.os).into(),
            via_tunnel: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_and_ami_parameters() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(arch_from(&v(&["x86_64"])), Some("x86_64"));
        assert_eq!(arch_from(&v(&["i386", "x86_64"])), Some("x86_64"));
        assert_eq!(arch_from(&v(&["arm64"])), Some("arm64"));
        assert_eq!(arch_from(&v(&["x86_64_mac"])), None);
        assert_eq!(arch_from(&[]), None);
        assert_eq!(
            ami_parameter(Os::Al2023, "x86_64"),
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
        );
        assert_eq!(
            ami_parameter(Os::Ubuntu2404, "arm64"),
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
        );
        assert_eq!(
            ami_parameter(Os::Debian12, "x86_64"),
            "/aws/service/debian/release/12/latest/amd64"
        );
        assert_eq!(
            ami_parameter(Os::Debian13, "arm64"),
            "/aws/service/debian/release/13/latest/arm64"
        );
        assert_eq!(login_user(Os::Debian12), "admin");
        assert_eq!(login_user(Os::Debian13), "admin");
    }

    #[test]
    fn client_tokens_are_stable_short_and_change_per_generation() {
        let t = LinkTags::new(
            "a-very-long-link-name-24",
            crate::side::Side::West,
            "tunnel",
        );
        let a = client_token(&t, "vpc-0123456789abcdef0", "n1", 0);
        assert!(a.len() <= 64);
        assert_eq!(a, client_token(&t, "vpc-0123456789abcdef0", "n1", 0));
        assert_ne!(a, client_token(&t, "vpc-0123456789abcdef0", "n1", 1));
        // A new life of the same link name never presents the old life's tokens.
        assert_ne!(a, client_token(&t, "vpc-0123456789abcdef0", "n2", 0));
        let (n1, n2) = (new_nonce(), new_nonce());
        assert_eq!(n1.len(), 16);
        assert_ne!(n1, n2);
    }

    #[test]
    fn a_remembered_token_with_other_parameters_is_spent_not_fatal() {
        let err = |code: &str| crate::aws::AwsError {
            side: crate::side::Side::East,
            profile: "p".into(),
            action: "ec2:RunInstances",
            resource: "r".into(),
            code: Some(code.into()),
            message: "m".into(),
        };
        assert_eq!(judge_launch(Ok(false)), Some(TokenOutcome::Launched));
        assert_eq!(judge_launch(Ok(true)), Some(TokenOutcome::NextToken));
        assert_eq!(
            judge_launch(Err(&err("IdempotentParameterMismatch"))),
            Some(TokenOutcome::NextToken)
        );
        assert_eq!(
            judge_launch(Err(&err("InsufficientInstanceCapacity"))),
            None
        );
    }
}
