//! `vpclink up`, as a story: connect both sides, discover, plan, preflight, then create (or find again) key pair,
//! security groups and Elastic IPs on both sides at once; then, once each side knows the other's Elastic IP, rules,
//! hosts, association, source/dest check and routes. Every step records what it made in the state at once, and
//! every step first looks for what an earlier, interrupted run made (state, then tags), so re-running converges.

mod elastic_ip;
pub mod host_keys;
mod instance;
mod journal;
pub mod key_pair;
mod operator;
mod preflight;
pub mod route;
pub mod security_group;

pub use instance::{ami_parameter, arch_of};
pub use journal::Journal;

use crate::aws::tags::{ROLE_TEST, ROLE_TUNNEL};
use crate::aws::{ec2::PlannedCall, DryRunLog, SideAws};
use crate::cli::UpArgs;
use crate::discover::SideFacts;
use crate::error::{Error, Result};
use crate::link::LinkPlan;
use crate::side::{PerSide, Side};
use crate::state::{LinkState, Options, Role, SideState, StateFiles};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::time::Duration;

/// One side's view while provisioning.
pub struct Step<'a> {
    pub aws: &'a SideAws,
    pub facts: &'a SideFacts,
    journal: &'a Journal,
    link: String,
    bar: ProgressBar,
}

impl Step<'_> {
    pub fn side(&self) -> Side {
        self.aws.side
    }
    pub fn link(&self) -> &str {
        &self.link
    }
    pub fn vpc_id(&self) -> &str {
        &self.facts.vpc.id
    }
    pub fn options(&self) -> Options {
        self.journal.read(|s| s.options.clone())
    }
    pub fn plan(&self) -> LinkPlan {
        self.journal.read(|s| s.plan.clone())
    }
    pub fn side_state<T>(&self, f: impl FnOnce(&SideState) -> T) -> T {
        self.journal.read(|s| f(s.side(self.aws.side)))
    }
    pub fn peer_state<T>(&self, f: impl FnOnce(&SideState) -> T) -> T {
        self.journal.read(|s| f(s.side(self.aws.side.peer())))
    }
    pub fn record(&self, f: impl FnOnce(&mut SideState)) -> Result<()> {
        Ok(self.journal.record(|s| f(s.side_mut(self.aws.side)))?)
    }
    fn say(&self, msg: &str) {
        self.bar.set_message(format!("{}: {msg}", self.side()));
    }
}

/// What `up` did (or, with --dry-run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub plan: LinkPlan,
    pub state: LinkState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<PlannedCall>>,
}

pub struct Connected {
    pub aws: PerSide<SideAws>,
    pub facts: PerSide<SideFacts>,
    pub plan: LinkPlan,
    pub existing: Option<LinkState>,
}

/// Provision both sides. `connected` comes from [`crate::commands::connect_and_plan`].
pub async fn up(
    a: &UpArgs,
    files: &StateFiles,
    c: Connected,
    dry: Option<DryRunLog>,
    json: bool,
) -> Result<UpReport> {
    let Connected {
        aws,
        facts,
        plan,
        existing,
    } = c;
    let options = options(a, existing.as_ref()).await?;
    let mut state = LinkState::new(plan.clone(), options.clone());
    if let Some(old) = &existing {
        state.east = old.east.clone();
        state.west = old.west.clone();
    }

    let (key, key_is_new) = key_pair::load_or_make(files)?;
    let public_key = key_pair::public_line(&key)?;

    // Preflight, both sides at once; any problem stops everything before the first change.
    let amis = preflight_both(&aws, &facts, &plan, &options, &state, &public_key).await?;

    let journal = if dry.is_some() {
        Journal::new(state, None)
    } else {
        files.save(&state)?;
        if key_is_new {
            key_pair::persist(files, &key)?;
        }
        Journal::new(state, Some(files.clone()))
    };

    let multi = MultiProgress::with_draw_target(if json || dry.is_some() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let step = |side: Side| {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Step {
            aws: aws.get(side),
            facts: facts.get(side),
            journal: &journal,
            link: plan.name.clone(),
            bar,
        }
    };
    let steps = PerSide::new(step(Side::East), step(Side::West));

    // Phase 1: what the other side needs to know about (the Elastic IP), and what has no dependency.
    crate::side::try_both(
        first_half(&steps.east, &public_key),
        first_half(&steps.west, &public_key),
    )
    .await?;
    // Phase 2: everything that depends on the peer's Elastic IP or on this side's host.
    crate::side::try_both(
        second_half(&steps.east, amis.get(Side::East)),
        second_half(&steps.west, amis.get(Side::West)),
    )
    .await?;
    for s in [&steps.east, &steps.west] {
        s.bar
            .finish_with_message(format!("{}: provisioned", s.side()));
    }

    Ok(UpReport {
        plan,
        state: journal.snapshot(),
        dry_run: dry.map(|d| d.calls()),
    })
}

/// The run's options; the SSH source defaults to what the link had, else this machine's public address.
async fn options(a: &UpArgs, existing: Option<&LinkState>) -> Result<Options> {
    let ssh_cidr = match a.ssh_cidr.or(existing.and_then(|s| s.options.ssh_cidr)) {
        Some(c) => c,
        None => operator::public_cidr().await.ok_or_else(|| {
            Error::Input(
                "cannot learn this machine's public address for the tunnel hosts' SSH rule; pass --ssh-cidr (e.g. your address/32)"
                    .into(),
            )
        })?,
    };
    Ok(Options {
        os: a.os,
        instance_type: a.instance_type.clone(),
        test_hosts: !a.no_test_hosts,
        ssh_cidr: Some(ssh_cidr),
    })
}

/// Check both sides; report every problem of both at once. Returns each side's AMI.
async fn preflight_both(
    aws: &PerSide<SideAws>,
    facts: &PerSide<SideFacts>,
    plan: &LinkPlan,
    options: &Options,
    state: &LinkState,
    public_key: &str,
) -> Result<PerSide<String>> {
    let check = |side: Side| preflight::SideCheck {
        aws: aws.get(side),
        facts: facts.get(side),
        link: &plan.name,
        options,
        state: state.side(side),
        destinations: &plan.side(side.peer()).mapped,
        public_key,
    };
    let (east, west) = (check(Side::East), check(Side::West));
    let (east, west) = crate::side::both(preflight::check(&east), preflight::check(&west)).await;
    match preflight::to_error(east.0.into_iter().chain(west.0).collect()) {
        Some(e) => Err(e),
        None => Ok(PerSide::new(
            east.1.unwrap_or_default(),
            west.1.unwrap_or_default(),
        )),
    }
}

async fn first_half(step: &Step<'_>, public_key: &str) -> Result<()> {
    step.say("key pair");
    key_pair::ensure(step, public_key).await?;
    step.say("security groups");
    security_group::ensure_group(step, ROLE_TUNNEL).await?;
    if step.options().test_hosts {
        security_group::ensure_group(step, ROLE_TEST).await?;
    }
    step.say("Elastic IP");
    elastic_ip::ensure_allocated(step).await?;
    Ok(())
}

async fn second_half(step: &Step<'_>, ami: &str) -> Result<()> {
    let plan = step.plan();
    let options = step.options();
    let side = step.side();
    let peer_eip = step
        .peer_state(|s| s.eip.as_ref().map(|e| e.public_ip))
        .ok_or_else(|| Error::Runtime(format!("the {} side has no Elastic IP yet", side.peer())))?;
    let tunnel_sg = step.side_state(|s| s.tunnel_sg.clone()).unwrap_or_default();
    let ssh_cidr = options.ssh_cidr.expect("resolved before provisioning");

    step.say("security group rules");
    let rules = security_group::tunnel_rules(ssh_cidr, peer_eip, &plan.side(side).cidrs);
    security_group::ensure_rules(step, &tunnel_sg, &rules).await?;
    let test_sg = step.side_state(|s| s.test_sg.clone());
    if let (true, Some(test_sg)) = (options.test_hosts, &test_sg) {
        let rules = security_group::test_rules(&tunnel_sg, &plan.side(side.peer()).mapped);
        security_group::ensure_rules(step, test_sg, &rules).await?;
    }

    step.say("tunnel host");
    let key_name = key_pair::key_name(&plan.name);
    let public_subnet = step.facts.public_subnet().unwrap_or_default().to_string();
    let tunnel = instance::ensure(
        step,
        &instance::HostRequest {
            role: Role::Tunnel,
            tags_role: ROLE_TUNNEL,
            image_id: ami,
            subnet_id: &public_subnet,
            security_group_id: &tunnel_sg,
            key_name: &key_name,
        },
    )
    .await?;
    let eni = tunnel
        .eni_id
        .clone()
        .ok_or_else(|| Error::Runtime(format!("{side} tunnel host has no network interface")))?;

    step.say("Elastic IP association");
    elastic_ip::ensure_associated(step, &eni).await?;
    step.say("source/dest check");
    let checked = step
        .aws
        .ec2
        .describe_network_interface(&eni)
        .await?
        .and_then(|n| n.source_dest_check());
    if checked != Some(false) {
        crate::aws::ec2::retry_not_found(|| step.aws.ec2.disable_source_dest_check(&eni)).await?;
    }
    let eip = step.side_state(|s| s.eip.as_ref().map(|e| e.public_ip));
    step.record_host(
        Role::Tunnel,
        crate::state::Host {
            public_ip: eip,
            ssh: Some(instance::ssh_target(Role::Tunnel, &tunnel, eip)),
            ..tunnel
        },
    )?;

    if let (true, Some(test_sg)) = (options.test_hosts, &test_sg) {
        step.say("test host");
        let subnet = step.facts.test_subnet().unwrap_or_default().to_string();
        let test = instance::ensure(
            step,
            &instance::HostRequest {
                role: Role::Test,
                tags_role: ROLE_TEST,
                image_id: ami,
                subnet_id: &subnet,
                security_group_id: test_sg,
                key_name: &key_name,
            },
        )
        .await?;
        let ssh = instance::ssh_target(Role::Test, &test, None);
        step.record_host(
            Role::Test,
            crate::state::Host {
                ssh: Some(ssh),
                ..test
            },
        )?;
    }

    step.say("routes");
    route::ensure(
        step,
        &step.facts.tables,
        &plan.side(side.peer()).mapped,
        &eni,
    )
    .await?;
    Ok(())
}
