//! `vpclink up`, as a story: connect both sides; discover and survey them (what an earlier, perhaps interrupted,
//! run left: by state, then by tag); plan; preflight; then create what the survey did not find: key pair, security
//! groups and Elastic IP on both sides at once; then, once each side knows the other's Elastic IP, the rules beside
//! the hosts, and once the tunnel host runs, its association, source/dest check and routes. Independent calls go out
//! together; every step records what it made in the state at once, so re-running converges.

mod elastic_ip;
pub mod host_keys;
mod instance;
mod journal;
pub mod key_pair;
pub mod metrics;
mod operator;
mod preflight;
pub mod route;
pub mod security_group;
pub mod survey;

pub use instance::{ami_parameter, arch_from};
pub use journal::Journal;

use crate::aws::call_log::step as label;
use crate::aws::ec2::{Id, PlannedCall};
use crate::aws::tags::{ROLE_TEST, ROLE_TUNNEL};
use crate::aws::{DryRunLog, SideAws};
use crate::cli::UpArgs;
use crate::discover::SideFacts;
use crate::error::{Error, Result};
use crate::link::LinkPlan;
use crate::side::{PerSide, Side};
use crate::state::{LinkState, Options, Role, SideState, StateFiles};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::time::Duration;
use survey::Survey;

/// Read until `read` finds what it looks for, every 500 ms for at most `wait`; None when it never showed. EC2's
/// reads lag its creates (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html): something an
/// earlier (interrupted) run or the other side made a moment ago may not be listed yet.
pub(crate) async fn until_listed<T, F, Fut>(wait: Duration, mut read: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(found) = read().await? {
            return Ok(Some(found));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One side's view while provisioning.
pub struct Step<'a> {
    pub aws: &'a SideAws,
    pub facts: &'a SideFacts,
    pub survey: &'a Survey,
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
    /// Present when asked for (`up`).
    pub survey: Option<PerSide<Survey>>,
    pub plan: LinkPlan,
    pub existing: Option<LinkState>,
}

/// Provision both sides. `connected` comes from [`crate::commands::connect_and_plan`].
pub async fn up(
    a: &UpArgs,
    files: &StateFiles,
    c: Connected,
    (key, key_is_new): (ssh_key::PrivateKey, bool),
    dry: Option<DryRunLog>,
    json: bool,
) -> Result<UpReport> {
    let Connected {
        aws,
        facts,
        survey,
        plan,
        existing,
    } = c;
    let survey =
        survey.ok_or_else(|| Error::Runtime("internal: `up` was given no survey".into()))?;
    let options = options(a, existing.as_ref()).await?;
    let mut state = LinkState::new(plan.clone(), options.clone());
    if let Some(old) = &existing {
        state.east = old.east.clone();
        state.west = old.west.clone();
    }
    // The alarm topics (--alarm-topic), checked against each side's region before anything is made.
    let regions = PerSide::new(aws.east.region.clone(), aws.west.region.clone());
    metrics::apply_topics(&a.alarm_topic, &regions, &mut state)?;

    let public_key = key_pair::public_line(&key)?;

    // Preflight, both sides at once; any problem stops everything before the first change.
    preflight_both(&aws, &facts, &survey, &plan, &options, &state, &public_key).await?;

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
            survey: survey.get(side),
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
    crate::side::try_both(second_half(&steps.east), second_half(&steps.west)).await?;
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

/// Check both sides; report every problem of both at once.
async fn preflight_both(
    aws: &PerSide<SideAws>,
    facts: &PerSide<SideFacts>,
    survey: &PerSide<Survey>,
    plan: &LinkPlan,
    options: &Options,
    state: &LinkState,
    public_key: &str,
) -> Result<()> {
    let check = |side: Side| preflight::SideCheck {
        aws: aws.get(side),
        facts: facts.get(side),
        survey: survey.get(side),
        link: &plan.name,
        options,
        state: state.side(side),
        destinations: &plan.side(side.peer()).mapped,
        public_key,
    };
    let (east, west) = (check(Side::East), check(Side::West));
    let eip = preflight::eip_problems(&[preflight::eip_need(&east), preflight::eip_need(&west)]);
    let (east, west) = crate::side::both(preflight::check(&east), preflight::check(&west)).await;
    let eip = eip.into_iter().map(crate::error::Problem::from);
    match preflight::to_error(east.into_iter().chain(west).chain(eip).collect()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Key pair, groups and Elastic IP: nothing depends on anything else here.
async fn first_half(step: &Step<'_>, public_key: &str) -> Result<()> {
    step.say("key pair, security groups, Elastic IP");
    let test_group = async {
        if step.options().test_hosts {
            security_group::ensure_group(step, ROLE_TEST).await?;
        }
        Ok(())
    };
    tokio::try_join!(
        key_pair::ensure(step, public_key),
        security_group::ensure_group(step, ROLE_TUNNEL),
        test_group,
        elastic_ip::ensure_allocated(step),
        metrics::ensure_host_profile(step),
    )?;
    Ok(())
}

/// The rules (they name the peer's Elastic IP) beside the hosts; the tunnel host's association, source/dest check
/// and routes once it runs.
async fn second_half(step: &Step<'_>) -> Result<()> {
    step.say("rules, hosts, association, routes");
    let options = step.options();
    let test_sg = step
        .side_state(|s| s.test_sg.as_deref().map(Id::from_state))
        .filter(|_| options.test_hosts);
    let remote_mapped = step.plan().side(step.side().peer()).mapped.clone();
    let tunnel = async {
        let (eni, new) = tunnel_host(step).await?;
        // An earlier run's host (perhaps from before the link had a profile) gets its profile; then the alarm.
        let instance = step.side_state(|s| s.tunnel.as_ref().and_then(|h| h.instance_id.clone()));
        let alarm = async {
            if let (false, Some(id)) = (
                new,
                instance.as_deref().map(crate::aws::ec2::Id::from_state),
            ) {
                if let Some(real) = id.real() {
                    metrics::ensure_associated(step, real).await?;
                }
            }
            metrics::ensure_alarm(step).await
        };
        let associated = async {
            elastic_ip::ensure_associated(step, eni.as_str()).await?;
            // Reachable at the Elastic IP from now on: record the SSH target configure will use.
            let eip = step.side_state(|s| s.eip.as_ref().map(|e| e.public_ip));
            let host = step.side_state(|s| s.tunnel.clone());
            if let Some(host) = host {
                step.record_host(
                    Role::Tunnel,
                    crate::state::Host {
                        public_ip: eip,
                        ssh: Some(instance::ssh_target(Role::Tunnel, &host, eip)),
                        ..host
                    },
                )?;
            }
            Ok::<_, Error>(())
        };
        tokio::try_join!(
            associated,
            alarm,
            source_dest_check_off(step, &eni, new),
            route::ensure(step, &step.facts.tables, &remote_mapped, eni.as_str()),
        )?;
        Ok::<_, Error>(())
    };
    let test = async {
        match &test_sg {
            Some(sg) => test_host(step, sg.as_str()).await,
            None => Ok(()),
        }
    };
    tokio::try_join!(rules(step, test_sg.as_ref()), tunnel, test)?;
    Ok(())
}

/// Both groups' rules, at once.
async fn rules(step: &Step<'_>, test_sg: Option<&Id>) -> Result<()> {
    let plan = step.plan();
    let side = step.side();
    let peer_eip = step
        .peer_state(|s| s.eip.as_ref().map(|e| e.public_ip))
        .ok_or_else(|| Error::Runtime(format!("the {} side has no Elastic IP yet", side.peer())))?;
    let tunnel_sg = Id::from_state(
        step.side_state(|s| s.tunnel_sg.clone())
            .as_deref()
            .unwrap_or_default(),
    );
    let ssh_cidr = step
        .options()
        .ssh_cidr
        .expect("resolved before provisioning");
    let tunnel = async {
        let rules = security_group::tunnel_rules(ssh_cidr, peer_eip, &plan.side(side).cidrs);
        let names_peer = |r: &security_group::Rule| r.names(peer_eip);
        security_group::ensure_rules(step, &tunnel_sg, &rules, &|r| {
            if names_peer(r) {
                "rules_tunnel_peer_add"
            } else {
                "rules_tunnel_add"
            }
        })
        .await
    };
    let test = async {
        match test_sg {
            Some(test_sg) => {
                let rules =
                    security_group::test_rules(tunnel_sg.as_str(), &plan.side(side.peer()).mapped);
                security_group::ensure_rules(step, test_sg, &rules, &|_| "rules_test_add").await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(tunnel, test)?;
    Ok(())
}

/// The tunnel host runs and is recorded with its SSH target; returns its network interface and whether this run
/// launched it.
async fn tunnel_host(step: &Step<'_>) -> Result<(Id, bool)> {
    let side = step.side();
    let ami = step.survey.ami.clone().unwrap_or_default();
    let tunnel_sg = step.side_state(|s| s.tunnel_sg.clone()).unwrap_or_default();
    let key_name = key_pair::key_name(step.link());
    let public_subnet = step.facts.public_subnet().unwrap_or_default().to_string();
    let tunnel = instance::ensure(
        step,
        &instance::HostRequest {
            role: Role::Tunnel,
            tags_role: ROLE_TUNNEL,
            image_id: &ami,
            subnet_id: &public_subnet,
            security_group_id: &tunnel_sg,
            key_name: &key_name,
            instance_profile: step.side_state(metrics::launch_profile),
        },
    )
    .await?;
    let eni = tunnel
        .host
        .eni_id
        .as_deref()
        .map(Id::from_state)
        .ok_or_else(|| Error::Runtime(format!("{side} tunnel host has no network interface")))?;
    Ok((eni, tunnel.new))
}

/// Source/dest check off on the tunnel host's interface (it forwards for its VPC). A host launched by this run has
/// it on; an earlier run's host is asked (its interface, not the instance: emulators report only the former). One
/// that --dry-run only planned has nothing to ask.
async fn source_dest_check_off(step: &Step<'_>, eni: &Id, new: bool) -> Result<()> {
    let checked = match eni.real().filter(|_| !new) {
        None => None,
        Some(real) => label("eni_read", step.aws.ec2.describe_network_interface(real))
            .await?
            .and_then(|n| n.source_dest_check()),
    };
    if checked != Some(false) {
        let eni = eni.as_str();
        label(
            "srcdst_off",
            crate::aws::ec2::retry_not_found(|| step.aws.ec2.disable_source_dest_check(eni)),
        )
        .await?;
    }
    Ok(())
}

async fn test_host(step: &Step<'_>, test_sg: &str) -> Result<()> {
    let ami = step.survey.ami.clone().unwrap_or_default();
    let key_name = key_pair::key_name(step.link());
    let subnet = step.facts.test_subnet().unwrap_or_default().to_string();
    let test = instance::ensure(
        step,
        &instance::HostRequest {
            role: Role::Test,
            tags_role: ROLE_TEST,
            image_id: &ami,
            subnet_id: &subnet,
            security_group_id: test_sg,
            key_name: &key_name,
            instance_profile: None,
        },
    )
    .await?;
    let ssh = instance::ssh_target(Role::Test, &test.host, None);
    step.record_host(
        Role::Test,
        crate::state::Host {
            ssh: Some(ssh),
            ..test.host
        },
    )?;
    Ok(())
}
