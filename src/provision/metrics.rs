//! The AWS side of the tunnel hosts' metrics (issue 13): per side, an IAM role and instance profile that let the host
//! publish to CloudWatch in its own account (and nothing else), and an alarm on "tunnel down for 2 minutes". The
//! names, namespace, dimensions and alarm settings are the metrics contract shared with the agent on the host.
//!
//! Pure parts first (names, documents, the alarm, the topic check); then the effects `up`, `down` and preflight use.

use super::Step;
use crate::aws::call_log::step as label;
use crate::aws::cloudwatch::AlarmSpec;
use crate::aws::iam::{self, is_already_exists, is_no_such_entity, tags_match};
use crate::aws::tags::LinkTags;
use crate::aws::{AwsError, SideAws};
use crate::error::{Error, Problem, Result};
use crate::side::{PerSide, Side};
use crate::state::{LinkState, MetricsState, SideState};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
use std::time::Duration;

/// The CloudWatch namespace every datum goes to.
pub const NAMESPACE: &str = "vpclink";
/// The role's only inline policy.
pub const POLICY_NAME: &str = "vpclink-metrics";
/// `vpclink:role` of the role and instance profile: their name is `vpclink-<link>-<side>-host`.
pub const ROLE_HOST: &str = "host";
/// `vpclink:role` of the alarm: its name is `vpclink-<link>-<side>-tunnel-down`.
pub const ROLE_ALARM: &str = "tunnel-down";

/// The contract's metrics with the statistic `status` reads each with over one minute: 1/0 gauges by their Minimum
/// (a down in the minute shows), deltas by their Sum, levels by their Maximum, the round trip by its Average.
pub const FIGURES: &[(&str, &str)] = &[
    ("TunnelUp", "Minimum"),
    ("IkeSaUp", "Minimum"),
    ("EspSaUp", "Minimum"),
    ("TunnelRtt", "Average"),
    ("BytesToPeer", "Sum"),
    ("BytesFromPeer", "Sum"),
    ("PacketsToPeer", "Sum"),
    ("PacketsFromPeer", "Sum"),
    ("ConntrackEntries", "Maximum"),
    ("ConntrackUse", "Maximum"),
    ("BwInAllowanceExceeded", "Sum"),
    ("BwOutAllowanceExceeded", "Sum"),
    ("PpsAllowanceExceeded", "Sum"),
    ("ConntrackAllowanceExceeded", "Sum"),
    ("LinklocalAllowanceExceeded", "Sum"),
];

pub fn host_tags(link: &str, side: Side) -> LinkTags {
    LinkTags::new(link, side, ROLE_HOST)
}

pub fn alarm_tags(link: &str, side: Side) -> LinkTags {
    LinkTags::new(link, side, ROLE_ALARM)
}

/// The role's and the instance profile's name: `vpclink-<link>-<side>-host`.
pub fn host_name(link: &str, side: Side) -> String {
    host_tags(link, side).name()
}

/// `vpclink-<link>-<side>-tunnel-down`.
pub fn alarm_name(link: &str, side: Side) -> String {
    alarm_tags(link, side).name()
}

/// The dimensions on every datum: Link and Side.
pub fn dimensions(link: &str, side: Side) -> Vec<(String, String)> {
    vec![
        ("Link".to_string(), link.to_string()),
        ("Side".to_string(), side.to_string()),
    ]
}

/// Who may assume the role: EC2, on the instance's behalf
/// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html).
pub fn trust_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string()
}

/// The role's only permission: PutMetricData, in the link's namespace only, by the documented condition key
/// `cloudwatch:namespace` (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
pub fn host_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
        }]
    })
    .to_string()
}

/// Whether two policy documents say the same (as JSON: IAM may reformat what it was given).
pub fn same_policy(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The contract's alarm: TunnelUp's Minimum below 1 in 2 of 2 one-minute periods; missing data is breaching (a dead
/// host publishes nothing); the topic, when given, on ALARM and on OK.
pub fn alarm_spec(link: &str, side: Side, topic: Option<&str>) -> AlarmSpec {
    AlarmSpec {
        name: alarm_name(link, side),
        description: format!("vpclink {link}: the {side} tunnel host reports the tunnel down (or nothing) for 2 minutes"),
        namespace: NAMESPACE.to_string(),
        metric: "TunnelUp".to_string(),
        dimensions: dimensions(link, side),
        statistic: Statistic::Minimum,
        period: 60,
        evaluation_periods: 2,
        datapoints_to_alarm: 2,
        threshold: 1.0,
        comparison: ComparisonOperator::LessThanThreshold,
        treat_missing_data: "breaching".to_string(),
        actions: topic.map(|t| vec![t.to_string()]).unwrap_or_default(),
    }
}

/// An SNS topic ARN, split: `arn:PARTITION:sns:REGION:ACCOUNT:NAME`
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

pub fn parse_topic(arn: &str) -> std::result::Result<TopicArn, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let bad = |why: &str| {
        Err(format!(
            "--alarm-topic {arn} is not an SNS topic ARN ({why}); expected arn:aws:sns:REGION:ACCOUNT:TOPIC"
        ))
    };
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name] => {
            if partition.is_empty() || region.is_empty() {
                return bad("no partition or region");
            }
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return bad("the account is not 12 digits");
            }
            let name_ok = !name.is_empty()
                && name.len() <= 256
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !name_ok {
                return bad("the topic name holds characters SNS does not allow");
            }
            Ok(TopicArn {
                partition: partition.to_string(),
                region: region.to_string(),
                account: account.to_string(),
                name: name.to_string(),
            })
        }
        [_, _, service, ..] if *service != "sns" => bad("not an sns ARN"),
        _ => bad("not of the form arn:PARTITION:sns:REGION:ACCOUNT:TOPIC"),
    }
}

/// The partition a region belongs to (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// Which topic each side's alarm notifies. A CloudWatch alarm's SNS action names a topic in the alarm's own region
/// (PutMetricAlarm's AlarmActions: `arn:aws:sns:region:account-id:sns-topic-name`, the alarm's region; cross-region
/// notification goes through EventBridge, not an alarm action); so each topic serves the side(s) in its region and
/// partition, and every side needs one when any is given. Empty: no topic (none asked for).
pub fn topics_per_side(
    topics: &[String],
    regions: &PerSide<String>,
) -> std::result::Result<PerSide<Option<String>>, String> {
    if topics.is_empty() {
        return Ok(PerSide::new(None, None));
    }
    let parsed: Vec<(String, TopicArn)> = topics
        .iter()
        .map(|t| parse_topic(t).map(|p| (t.clone(), p)))
        .collect::<std::result::Result<_, _>>()?;
    let pick = |side: Side| {
        let region = regions.get(side);
        let fits: Vec<&String> = parsed
            .iter()
            .filter(|(_, p)| p.region == *region && p.partition == partition_of(region))
            .map(|(t, _)| t)
            .collect();
        match fits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "no --alarm-topic for the {side} side, which is in {region}: a CloudWatch alarm notifies only an SNS topic in its own region (and partition {}); pass a topic in {region} too (--alarm-topic may be given once per region)",
                partition_of(region)
            )),
            more => Err(format!(
                "{} --alarm-topic values are in {region} ({}); give one topic per region",
                more.len(),
                more.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    };
    let (east, west) = (pick(Side::East)?, pick(Side::West)?);
    if let Some((t, _)) = parsed.iter().find(|(t, _)| *t != east && *t != west) {
        return Err(format!(
            "--alarm-topic {t} is in a region neither side is in ({} and {}); a CloudWatch alarm notifies only a topic in its own region",
            regions.east, regions.west
        ));
    }
    Ok(PerSide::new(Some(east), Some(west)))
}

/// EC2 refuses an instance profile IAM has not finished propagating: RunInstances (and AssociateIamInstanceProfile)
/// answer InvalidParameterValue "Invalid IAM Instance Profile name" (or "... ARN") for some seconds after
/// CreateInstanceProfile/AddRoleToInstanceProfile. IAM documents the cause: its changes are eventually consistent and
/// "not always immediately visible" (IAM User Guide, troubleshoot_general.html#troubleshoot_general_eventual-consistency;
/// AddRoleToInstanceProfile: "You must then wait for the change to appear across all of AWS because of eventual
/// consistency"). Only that error is retried, nothing else that says InvalidParameterValue.
pub fn is_profile_not_propagated(e: &AwsError) -> bool {
    e.code() == "InvalidParameterValue"
        && e.message
            .to_ascii_lowercase()
            .contains("iam instance profile")
}

/// How long a new instance profile may stay refused before `up` gives up (re-running resumes).
pub const PROFILE_PROPAGATION: Duration = Duration::from_secs(90);

/// Retry `f` while EC2 refuses a fresh instance profile ([`is_profile_not_propagated`]), with a doubling backoff
/// from 1 s to 10 s, for at most [`PROFILE_PROPAGATION`].
pub async fn retry_profile_propagation<T, F, Fut>(mut f: F) -> std::result::Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, AwsError>>,
{
    let mut delay = Duration::from_secs(1);
    let mut waited = Duration::ZERO;
    loop {
        match f().await {
            Err(e) if is_profile_not_propagated(&e) && waited < PROFILE_PROPAGATION => {
                tracing::debug!(
                    "{e}; the instance profile is not visible to EC2 yet, retrying in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

fn foreign(side: Side, what: &str, name: &str, account: &str, link: &str) -> String {
    format!(
        "{side} side: IAM {what} {name} exists in account {account} but its tags do not say it is link {link}'s {side} side (vpclink:link, vpclink:side, vpclink:role=host); vpclink never adopts an IAM {what} it did not make. Delete it if it is a leftover (`aws iam get-{what_cli} --{what_cli}-name {name}` shows it), or choose another link name with --name",
        what_cli = if what == "role" { "role" } else { "instance-profile" }
    )
}

/// Pick up the `--alarm-topic` values for both sides into the state (each side keeps its recorded topic when none
/// is given). Bad input is refused before anything is made.
pub fn apply_topics(
    topics: &[String],
    regions: &PerSide<String>,
    state: &mut LinkState,
) -> Result<()> {
    let per_side = topics_per_side(topics, regions).map_err(Error::Input)?;
    for side in Side::BOTH {
        if let Some(t) = per_side.get(side) {
            let m = state
                .side_mut(side)
                .metrics
                .get_or_insert_with(Default::default);
            m.alarm_topic = Some(t.clone());
        }
    }
    Ok(())
}

/// Preflight: a role or instance profile of the link's name that is not the link's is refused before anything is
/// made. IAM has no DryRun, so the IAM and CloudWatch permissions themselves are not probed here: the first call
/// that lacks one fails naming the action and the fix.
pub async fn preflight(aws: &SideAws, link: &str) -> Vec<Problem> {
    let (side, tags, name) = (
        aws.side,
        host_tags(link, aws.side),
        host_name(link, aws.side),
    );
    let (role, profile) = tokio::join!(
        label("probe_iam_role", aws.iam.get_role(&name)),
        label("probe_iam_profile", aws.iam.get_instance_profile(&name))
    );
    let mut problems = Vec::new();
    match role {
        Ok(Some(r)) if !tags_match(&tags, r.tags()) => problems.push(Problem::Input(foreign(
            side,
            "role",
            &name,
            &aws.account,
            link,
        ))),
        Err(e) => problems.push(e.into()),
        _ => {}
    }
    match profile {
        Ok(Some(p)) if !tags_match(&tags, p.tags()) => problems.push(Problem::Input(foreign(
            side,
            "instance profile",
            &name,
            &aws.account,
            link,
        ))),
        Err(e) => problems.push(e.into()),
        _ => {}
    }
    problems
}

/// Read a role or profile until it is listed (a create a moment ago may not be visible: IAM is eventually
/// consistent), for up to 20 s.
async fn until_visible<T, F, Fut>(mut get: F) -> std::result::Result<Option<T>, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<T>, AwsError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = get().await?;
        if found.is_some() || tokio::time::Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The role (with its policy) and the instance profile holding it exist and are recorded. Found again by name and
/// adopted only when their tags say they are this link's; EntityAlreadyExists on a create (an earlier run made it
/// and crashed before recording it, and the read did not list it yet) is adopted the same way.
pub async fn ensure_host_profile(step: &Step<'_>) -> Result<()> {
    let (side, link) = (step.side(), step.link().to_string());
    let (tags, name, account) = (
        host_tags(&link, side),
        host_name(&link, side),
        &step.aws.account,
    );
    let iam = &step.aws.iam;
    let own = |found: Option<(String, bool)>, what: &str| match found {
        Some((arn, true)) => Ok(Some(arn)),
        Some((_, false)) => Err(Error::Runtime(foreign(side, what, &name, account, &link))),
        None => Ok(None),
    };
    let read_role = || async {
        Ok::<_, AwsError>(
            iam.get_role(&name)
                .await?
                .map(|r| (r.arn().to_string(), tags_match(&tags, r.tags()))),
        )
    };
    let role_arn = match own(label("iam_role", read_role()).await?, "role")? {
        Some(arn) => Some(arn),
        None => match label(
            "iam_role_add",
            iam.create_role(&name, &trust_policy(), &tags),
        )
        .await
        {
            Ok(arn) => arn,
            Err(e) if is_already_exists(&e) => {
                own(label("iam_role", until_visible(read_role)).await?, "role")?
            }
            Err(e) => return Err(e.into()),
        },
    };
    step.record(|s| {
        let m = s.metrics.get_or_insert_with(Default::default);
        m.role = Some(name.clone());
        m.role_arn = role_arn.clone();
    })?;

    // The policy: put only when missing or different (a complete link needs no change).
    let current = match &role_arn {
        Some(_) => label("iam_policy", iam.get_role_policy(&name, POLICY_NAME)).await?,
        None => None,
    };
    let wanted = host_policy();
    if !current.is_some_and(|d| same_policy(&iam::url_decode(&d), &wanted)) {
        label(
            "iam_policy_put",
            iam.put_role_policy(&name, POLICY_NAME, &wanted),
        )
        .await?;
    }
    step.record(|s| {
        s.metrics.get_or_insert_with(Default::default).policy = Some(POLICY_NAME.to_string())
    })?;

    let read_profile = || async {
        Ok::<_, AwsError>(iam.get_instance_profile(&name).await?.map(|p| {
            let has_role = p.roles().iter().any(|r| r.role_name() == name);
            ((p.arn().to_string(), has_role), tags_match(&tags, p.tags()))
        }))
    };
    let split = |f: Option<((String, bool), bool)>| f.map(|((arn, has), ok)| ((arn, ok), has));
    let found = split(label("iam_profile", read_profile()).await?);
    let (profile_arn, has_role, created) = match found {
        Some(((arn, ok), has)) => (own(Some((arn, ok)), "instance profile")?, has, false),
        None => match label("iam_profile_add", iam.create_instance_profile(&name, &tags)).await {
            Ok(arn) => (arn, false, true),
            Err(e) if is_already_exists(&e) => {
                let again = split(label("iam_profile", until_visible(read_profile)).await?);
                let has = again.as_ref().is_some_and(|(_, h)| *h);
                (own(again.map(|(a, _)| a), "instance profile")?, has, false)
            }
            Err(e) => return Err(e.into()),
        },
    };
    if !has_role {
        let add = iam.add_role_to_instance_profile(&name, &name);
        match label("iam_profile_role", add).await {
            // A retry after a crash: the role is in already (LimitExceeded: a profile holds one role). Only if it
            // is ours: a profile holding another role would give the host credentials vpclink never granted.
            Err(e) if e.code() == "LimitExceeded" => {
                let again = split(label("iam_profile", read_profile()).await?);
                if !again.is_some_and(|(_, has)| has) {
                    return Err(e.into());
                }
            }
            other => other?,
        }
    }
    if created {
        label(
            "iam_profile_wait",
            iam.wait_instance_profile_exists(&name, Duration::from_secs(40)),
        )
        .await?;
    }
    step.record(|s| {
        let m = s.metrics.get_or_insert_with(Default::default);
        m.instance_profile = Some(name.clone());
        m.instance_profile_arn = profile_arn.clone();
    })?;
    Ok(())
}

/// The instance profile's name for RunInstances on this side (the tunnel host only).
pub fn launch_profile(s: &SideState) -> Option<String> {
    s.metrics.as_ref().and_then(|m| m.instance_profile.clone())
}

/// A tunnel host launched before the link had a profile (an older link) gets it: AssociateIamInstanceProfile, unless
/// an association exists (ours, or someone's: theirs is left alone with a warning).
pub async fn ensure_associated(step: &Step<'_>, instance_id: &str) -> Result<()> {
    let Some(profile) = step.side_state(launch_profile) else {
        return Ok(());
    };
    let ec2 = &step.aws.ec2;
    let found = label(
        "iam_assoc_read",
        ec2.describe_iam_instance_profile_associations(instance_id),
    )
    .await?;
    let live: Vec<_> = found
        .iter()
        .filter(|a| {
            matches!(
                a.state().map(|s| s.as_str()),
                Some("associating" | "associated")
            )
        })
        .collect();
    if let Some(a) = live.first() {
        let arn = a
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .unwrap_or_default();
        if !arn.ends_with(&format!("/{profile}")) {
            tracing::warn!(
                "{} side: tunnel host {instance_id} has instance profile {arn}, not {profile}; left alone, so it cannot publish the link's metrics",
                step.side()
            );
        }
        return Ok(());
    }
    label(
        "iam_assoc",
        retry_profile_propagation(|| ec2.associate_iam_instance_profile(instance_id, &profile)),
    )
    .await?;
    Ok(())
}

/// The side's tunnel-down alarm exists as the contract says (put only when missing or different) and is recorded.
pub async fn ensure_alarm(step: &Step<'_>) -> Result<()> {
    let (side, link) = (step.side(), step.link().to_string());
    let topic = step.side_state(|s| s.metrics.as_ref().and_then(|m| m.alarm_topic.clone()));
    let spec = alarm_spec(&link, side, topic.as_deref());
    let cw = &step.aws.cloudwatch;
    // PutMetricAlarm creates or updates: an alarm the state does not record yet is put without a read (one of the
    // same name left by an earlier life of the link is updated to the contract's settings). A recorded one is read,
    // so a complete link makes no call.
    let recorded = step.side_state(|s| s.metrics.as_ref().and_then(|m| m.alarm.clone()));
    let found = match recorded {
        Some(_) => label("alarm_read", cw.describe_alarms(&spec.name)).await?,
        None => Vec::new(),
    };
    let current = found
        .iter()
        .find(|a| a.alarm_name() == Some(spec.name.as_str()));
    if !current.is_some_and(|a| spec.matches(a)) {
        label(
            "alarm_put",
            cw.put_metric_alarm(&spec, &alarm_tags(&link, side)),
        )
        .await?;
    }
    step.record(|s| {
        s.metrics.get_or_insert_with(Default::default).alarm = Some(spec.name.clone())
    })?;
    Ok(())
}

/// What the link owns of this on one side: alarms, instance profiles, roles (by the state and by name and path,
/// each checked by its tags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub alarms: Vec<String>,
    pub instance_profiles: Vec<String>,
    pub roles: Vec<String>,
}

/// Collect the link's alarm, instance profile and role on one side. Without a state they are found by name under
/// the path `/vpclink/` (ListInstanceProfiles/ListRoles), and kept only when GetInstanceProfile/GetRole's tags say
/// they are this link's and side's. `leak_check`: the reads of `down`'s leak check (their own step names).
pub async fn collect(
    aws: &SideAws,
    link: &str,
    recorded: Option<&MetricsState>,
    leak_check: bool,
) -> Result<Owned> {
    let step =
        |inventory: &'static str, leak: &'static str| if leak_check { leak } else { inventory };
    let side = aws.side;
    let (name, tags, alarm) = (
        host_name(link, side),
        host_tags(link, side),
        alarm_name(link, side),
    );
    let recorded_profile = recorded.and_then(|m| m.instance_profile.clone());
    let recorded_role = recorded.and_then(|m| m.role.clone());
    let (alarms, profiles, roles) = tokio::join!(
        label(
            step("c_alarm", "l_alarm"),
            aws.cloudwatch.describe_alarms(&alarm)
        ),
        label(
            step("c_iam_profiles", "l_iam_profiles"),
            aws.iam.list_instance_profiles(iam::PATH)
        ),
        label(
            step("c_iam_roles", "l_iam_roles"),
            aws.iam.list_roles(iam::PATH)
        ),
    );
    let alarms: Vec<String> = alarms?
        .iter()
        .filter_map(|a| a.alarm_name())
        .filter(|n| *n == alarm)
        .map(str::to_string)
        .collect();
    let listed_profile = profiles?.iter().any(|p| p.instance_profile_name() == name);
    let listed_role = roles?.iter().any(|r| r.role_name() == name);
    let profile = async {
        if !(listed_profile || recorded_profile.as_deref() == Some(&name)) {
            return Ok(Vec::new());
        }
        let p = label(
            step("c_iam_profile", "l_iam_profile"),
            aws.iam.get_instance_profile(&name),
        )
        .await?;
        Ok::<_, AwsError>(match p {
            Some(p) if tags_match(&tags, p.tags()) => vec![name.clone()],
            Some(_) => {
                tracing::warn!(
                    "{side} side: instance profile {name} is not this link's (tags); left alone"
                );
                Vec::new()
            }
            None => Vec::new(),
        })
    };
    let role = async {
        if !(listed_role || recorded_role.as_deref() == Some(&name)) {
            return Ok(Vec::new());
        }
        let r = label(step("c_iam_role", "l_iam_role"), aws.iam.get_role(&name)).await?;
        Ok::<_, AwsError>(match r {
            Some(r) if tags_match(&tags, r.tags()) => vec![name.clone()],
            Some(_) => {
                tracing::warn!(
                    "{side} side: IAM role {name} is not this link's (tags); left alone"
                );
                Vec::new()
            }
            None => Vec::new(),
        })
    };
    let (instance_profiles, roles) = tokio::try_join!(profile, role)?;
    Ok(Owned {
        alarms,
        instance_profiles,
        roles,
    })
}

/// "Already gone" is done: IAM says NoSuchEntity, CloudWatch ResourceNotFound.
fn gone_ok(r: std::result::Result<(), AwsError>) -> std::result::Result<(), AwsError> {
    match r {
        Err(e) if is_no_such_entity(&e) || e.code() == "ResourceNotFound" || e.is_not_found() => {
            Ok(())
        }
        other => other,
    }
}

/// Retry DeleteConflict for a while: a role just taken out of its profile may still be listed in it.
async fn retry_conflict<F, Fut>(mut f: F) -> std::result::Result<(), AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), AwsError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_secs(1);
    loop {
        match f().await {
            Err(e) if e.code() == "DeleteConflict" && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
}

/// Delete the alarms (nothing depends on them).
pub async fn delete_alarms(aws: &SideAws, owned: &Owned) -> Result<()> {
    label("d_alarms", async {
        gone_ok(aws.cloudwatch.delete_alarms(&owned.alarms).await)
    })
    .await?;
    Ok(())
}

/// Delete the instance profiles (their roles taken out first) and the roles (their inline policy first). Run once
/// the instances that used the profile are terminated.
pub async fn delete_iam(aws: &SideAws, owned: &Owned) -> Result<()> {
    let iam = &aws.iam;
    for p in &owned.instance_profiles {
        let roles: Vec<String> =
            match label("d_iam_profile_read", iam.get_instance_profile(p)).await? {
                Some(found) => found
                    .roles()
                    .iter()
                    .map(|r| r.role_name().to_string())
                    .collect(),
                None => continue,
            };
        for r in &roles {
            let out = iam.remove_role_from_instance_profile(p, r);
            label("d_iam_profile_role", async { gone_ok(out.await) }).await?;
        }
        label("d_iam_profile", async {
            gone_ok(retry_conflict(|| iam.delete_instance_profile(p)).await)
        })
        .await?;
    }
    for r in &owned.roles {
        label("d_iam_policy", async {
            gone_ok(iam.delete_role_policy(r, POLICY_NAME).await)
        })
        .await?;
        label("d_iam_role", async {
            gone_ok(retry_conflict(|| iam.delete_role(r)).await)
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        assert_eq!(host_name("prod", Side::East), "vpclink-prod-east-host");
        assert_eq!(
            alarm_name("prod", Side::West),
            "vpclink-prod-west-tunnel-down"
        );
        assert_eq!(
            dimensions("prod", Side::West),
            vec![
                ("Link".to_string(), "prod".to_string()),
                ("Side".to_string(), "west".to_string())
            ]
        );
    }

    #[test]
    fn the_policy_allows_only_put_metric_data_in_the_namespace() {
        let p: serde_json::Value = serde_json::from_str(&host_policy()).unwrap();
        let statements = p["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0]["Effect"], "Allow");
        assert_eq!(statements[0]["Action"], "cloudwatch:PutMetricData");
        assert_eq!(
            statements[0]["Condition"]["StringEquals"]["cloudwatch:namespace"],
            "vpclink"
        );
        let t: serde_json::Value = serde_json::from_str(&trust_policy()).unwrap();
        assert_eq!(
            t["Statement"][0]["Principal"]["Service"],
            "ec2.amazonaws.com"
        );
        assert_eq!(t["Statement"][0]["Action"], "sts:AssumeRole");
        assert!(same_policy(&host_policy(), &p.to_string()));
        assert!(!same_policy(&host_policy(), &trust_policy()));
        assert!(!same_policy(&host_policy(), "not json"));
    }

    #[test]
    fn the_alarm_is_the_contracts() {
        let a = alarm_spec(
            "l",
            Side::East,
            Some("arn:aws:sns:eu-west-1:123456789012:ops"),
        );
        assert_eq!(a.name, "vpclink-l-east-tunnel-down");
        assert_eq!(
            (a.namespace.as_str(), a.metric.as_str()),
            ("vpclink", "TunnelUp")
        );
        assert_eq!(a.statistic, Statistic::Minimum);
        assert_eq!(
            (a.period, a.evaluation_periods, a.datapoints_to_alarm),
            (60, 2, 2)
        );
        assert_eq!(a.threshold, 1.0);
        assert_eq!(a.comparison, ComparisonOperator::LessThanThreshold);
        assert_eq!(a.treat_missing_data, "breaching");
        assert_eq!(a.actions, vec!["arn:aws:sns:eu-west-1:123456789012:ops"]);
        assert!(alarm_spec("l", Side::East, None).actions.is_empty());
    }

    fn regions(e: &str, w: &str) -> PerSide<String> {
        PerSide::new(e.to_string(), w.to_string())
    }

    #[test]
    fn topics_must_be_sns_arns_in_each_sides_region() {
        let eu = "arn:aws:sns:eu-west-1:123456789012:ops".to_string();
        let us = "arn:aws:sns:us-east-1:123456789012:ops".to_string();
        // None asked: none.
        let none = topics_per_side(&[], &regions("eu-west-1", "us-east-1")).unwrap();
        assert_eq!((none.east, none.west), (None, None));
        // One region, one topic for both.
        let one = topics_per_side(
            std::slice::from_ref(&eu),
            &regions("eu-west-1", "eu-west-1"),
        )
        .unwrap();
        assert_eq!(
            (one.east.as_ref(), one.west.as_ref()),
            (Some(&eu), Some(&eu))
        );
        // Two regions: one topic per region, in any order.
        let two = topics_per_side(
            &[us.clone(), eu.clone()],
            &regions("eu-west-1", "us-east-1"),
        )
        .unwrap();
        assert_eq!(
            (two.east.as_ref(), two.west.as_ref()),
            (Some(&eu), Some(&us))
        );
        // Two regions, one topic: refused, naming the side without one and why.
        let e = topics_per_side(
            std::slice::from_ref(&eu),
            &regions("eu-west-1", "us-east-1"),
        )
        .unwrap_err();
        assert!(e.contains("west side, which is in us-east-1"), "{e}");
        assert!(e.contains("only an SNS topic in its own region"), "{e}");
        // A topic in neither region, two in one, not SNS, bad account, wrong partition.
        let far = "arn:aws:sns:ap-south-1:123456789012:ops".to_string();
        assert!(topics_per_side(&[eu.clone(), far], &regions("eu-west-1", "eu-west-1")).is_err());
        let eu2 = "arn:aws:sns:eu-west-1:123456789012:ops2".to_string();
        assert!(
            topics_per_side(&[eu.clone(), eu2], &regions("eu-west-1", "eu-west-1"))
                .unwrap_err()
                .contains("one topic per region")
        );
        for bad in [
            "arn:aws:sqs:eu-west-1:123456789012:q",
            "arn:aws:sns:eu-west-1:1234:ops",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns:eu-west-1:123456789012:a b",
            "ops",
        ] {
            let e = topics_per_side(&[bad.to_string()], &regions("eu-west-1", "eu-west-1"))
                .unwrap_err();
            assert!(e.contains("is not an SNS topic ARN"), "{bad}: {e}");
        }
        let cn = "arn:aws:sns:cn-north-1:123456789012:ops".to_string();
        assert!(topics_per_side(
            std::slice::from_ref(&cn),
            &regions("cn-north-1", "cn-north-1")
        )
        .is_err());
        let cn = "arn:aws-cn:sns:cn-north-1:123456789012:ops".to_string();
        assert!(topics_per_side(&[cn], &regions("cn-north-1", "cn-north-1")).is_ok());
    }

    #[test]
    fn only_the_profile_propagation_refusal_is_retried() {
        let err = |code: &str, message: &str| AwsError {
            side: Side::East,
            profile: "p".into(),
            action: "ec2:RunInstances",
            resource: "r".into(),
            code: Some(code.into()),
            message: message.into(),
        };
        assert!(is_profile_not_propagated(&err(
            "InvalidParameterValue",
            "Value (vpclink-l-east-host) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
        )));
        assert!(is_profile_not_propagated(&err(
            "InvalidParameterValue",
            "Invalid IAM Instance Profile ARN"
        )));
        assert!(!is_profile_not_propagated(&err(
            "InvalidParameterValue",
            "Invalid value 'x' for instanceType"
        )));
        assert!(!is_profile_not_propagated(&err(
            "UnauthorizedOperation",
            "iam instance profile"
        )));
    }

    #[tokio::test]
    async fn propagation_is_retried_and_nothing_else() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let err = |code: &str, message: &str| AwsError {
            side: Side::East,
            profile: "p".into(),
            action: "ec2:RunInstances",
            resource: "r".into(),
            code: Some(code.into()),
            message: message.into(),
        };
        let r = retry_profile_propagation(|| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let e = err("InvalidParameterValue", "Invalid IAM Instance Profile name");
            async move {
                if n < 1 {
                    Err(e)
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 1, "retried once, then launched");
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let r: std::result::Result<(), AwsError> = retry_profile_propagation(|| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let e = err("InsufficientInstanceCapacity", "none");
            async move { Err(e) }
        })
        .await;
        assert_eq!(r.unwrap_err().code(), "InsufficientInstanceCapacity");
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not retried"
        );
    }
}
