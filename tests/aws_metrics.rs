//! Issue 13, the AWS side of the metrics: `up` makes per side the tunnel host's role (only PutMetricData in namespace
//! vpclink), its instance profile (on the tunnel host, not the test host) and the tunnel-down alarm; `status --json`
//! shows figures published for the link's dimensions; `down` removes all of it, with or without the state file.
//! Everything is read back through the SDK, never through vpclink's own output. LocalStack (see tests/localstack).

mod localstack;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StandardUnit, Statistic,
};
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use localstack::{filter, stdout, SeedSpec, World};

fn creds(account: &str) -> Credentials {
    Credentials::new(account, "test", None, None, "vpclink-tests")
}

fn iam(w: &World, side: &str) -> aws_sdk_iam::Client {
    let s = w.side(side);
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s.region.clone()))
        .endpoint_url(&w.url)
        .credentials_provider(creds(&s.account))
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}

fn cloudwatch(w: &World, side: &str) -> aws_sdk_cloudwatch::Client {
    let s = w.side(side);
    let conf = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s.region.clone()))
        .endpoint_url(&w.url)
        .credentials_provider(creds(&s.account))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

fn host_name(w: &World, side: &str) -> String {
    format!("vpclink-{}-{side}-host", w.name)
}

fn alarm_name(w: &World, side: &str) -> String {
    format!("vpclink-{}-{side}-tunnel-down", w.name)
}

fn topic(w: &World, side: &str) -> String {
    let s = w.side(side);
    format!("arn:aws:sns:{}:{}:vpclink-ops", s.region, s.account)
}

fn has_tag(tags: &[(String, String)], key: &str, value: &str) -> bool {
    tags.iter().any(|(k, v)| k == key && v == value)
}

/// What is left of the link's IAM and CloudWatch resources on one side: (roles, instance profiles, alarms).
async fn left(w: &World, side: &str) -> (usize, usize, usize) {
    let iam = iam(w, side);
    let name = host_name(w, side);
    let roles = iam
        .list_roles()
        .path_prefix("/vpclink/")
        .send()
        .await
        .unwrap()
        .roles()
        .iter()
        .filter(|r| r.role_name() == name)
        .count();
    let profiles = iam
        .list_instance_profiles()
        .path_prefix("/vpclink/")
        .send()
        .await
        .unwrap()
        .instance_profiles()
        .iter()
        .filter(|p| p.instance_profile_name() == name)
        .count();
    let alarms = cloudwatch(w, side)
        .describe_alarms()
        .alarm_name_prefix(alarm_name(w, side))
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .len();
    (roles, profiles, alarms)
}

/// The role, its one policy, the instance profile, as `up` must leave them on one side.
async fn assert_identity(w: &World, side: &str) {
    let iam = iam(w, side);
    let name = host_name(w, side);
    let role = iam
        .get_role()
        .role_name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{side}: role {name}: {e:?}"))
        .role
        .unwrap();
    assert_eq!(role.path(), "/vpclink/");
    let trust = urlencoding_decode(role.assume_role_policy_document().unwrap_or_default());
    let trust: serde_json::Value = serde_json::from_str(&trust).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com",
        "{trust}"
    );
    let tags: Vec<(String, String)> = role
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert!(has_tag(&tags, "vpclink:link", &w.name), "{tags:?}");
    assert!(has_tag(&tags, "vpclink:side", side), "{tags:?}");
    assert!(has_tag(&tags, "vpclink:role", "host"), "{tags:?}");

    let policies = iam
        .list_role_policies()
        .role_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(policies.policy_names(), ["vpclink-metrics"]);
    let attached = iam
        .list_attached_role_policies()
        .role_name(&name)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty(), "no managed policy");
    let doc = iam
        .get_role_policy()
        .role_name(&name)
        .policy_name("vpclink-metrics")
        .send()
        .await
        .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&urlencoding_decode(doc.policy_document())).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": "vpclink"}}
            }]
        }),
        "{side}: only PutMetricData, only in namespace vpclink"
    );

    let profile = iam
        .get_instance_profile()
        .instance_profile_name(&name)
        .send()
        .await
        .unwrap()
        .instance_profile
        .unwrap();
    assert_eq!(profile.path(), "/vpclink/");
    let roles: Vec<&str> = profile.roles().iter().map(|r| r.role_name()).collect();
    assert_eq!(roles, [name.as_str()]);
}

/// GetRole/GetRolePolicy documents are URL-encoded on AWS (LocalStack may not encode them).
fn urlencoding_decode(s: &str) -> String {
    vpclink::aws::iam::url_decode(s)
}

/// The tunnel host carries the profile (IMDSv2 required, one hop); the test host carries none.
async fn assert_attached(w: &World, side: &str) {
    let state = w.state();
    let tunnel = state[side]["tunnel"]["instance_id"].as_str().unwrap();
    let ec2 = w.client(side);
    let out = ec2
        .describe_instances()
        .instance_ids(tunnel)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    let arn = i
        .iam_instance_profile()
        .and_then(|p| p.arn())
        .unwrap_or_else(|| panic!("{side}: tunnel host {tunnel} has no instance profile"));
    assert!(
        arn.ends_with(&format!("/{}", host_name(w, side))),
        "{side}: {arn}"
    );
    let md = i.metadata_options().expect("metadata options");
    assert_eq!(
        md.http_tokens().map(|t| t.as_str()),
        Some("required"),
        "IMDSv2 only"
    );
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    if let Some(test) = state[side]["test"]["instance_id"].as_str() {
        let out = ec2
            .describe_instances()
            .instance_ids(test)
            .send()
            .await
            .unwrap();
        let t = &out.reservations()[0].instances()[0];
        assert!(
            t.iam_instance_profile().is_none(),
            "{side}: the test host has no instance profile"
        );
    }
}

async fn assert_alarm(w: &World, side: &str, topic: &str) {
    let cw = cloudwatch(w, side);
    let out = cw
        .describe_alarms()
        .alarm_name_prefix(alarm_name(w, side))
        .send()
        .await
        .unwrap();
    let alarms = out.metric_alarms();
    assert_eq!(alarms.len(), 1, "{side}: {alarms:?}");
    let a = &alarms[0];
    assert_eq!(a.alarm_name(), Some(alarm_name(w, side).as_str()));
    assert_eq!(a.namespace(), Some("vpclink"));
    assert_eq!(a.metric_name(), Some("TunnelUp"));
    let mut dims: Vec<(String, String)> = a
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap().into(), d.value().unwrap().into()))
        .collect();
    dims.sort();
    assert_eq!(
        dims,
        [
            ("Link".to_string(), w.name.clone()),
            ("Side".to_string(), side.to_string())
        ]
    );
    assert_eq!(a.statistic(), Some(&Statistic::Minimum));
    assert_eq!(a.period(), Some(60));
    assert_eq!(a.evaluation_periods(), Some(2));
    assert_eq!(a.datapoints_to_alarm(), Some(2));
    assert_eq!(a.threshold(), Some(1.0));
    assert_eq!(
        a.comparison_operator(),
        Some(&ComparisonOperator::LessThanThreshold)
    );
    assert_eq!(a.treat_missing_data(), Some("breaching"));
    assert_eq!(a.alarm_actions(), [topic]);
    assert_eq!(a.ok_actions(), [topic]);
    let tags = cw
        .list_tags_for_resource()
        .resource_arn(a.alarm_arn().unwrap())
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = tags
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(has_tag(&tags, "vpclink:link", &w.name), "{tags:?}");
    assert!(has_tag(&tags, "vpclink:side", side), "{tags:?}");
}

/// Publish as the host agent would: the contract's namespace and dimensions.
async fn publish(w: &World, side: &str, figures: &[(&str, f64, StandardUnit)]) {
    let dims = [("Link", w.name.as_str()), ("Side", side)];
    let data: Vec<MetricDatum> = figures
        .iter()
        .map(|(name, value, unit)| {
            MetricDatum::builder()
                .metric_name(*name)
                .value(*value)
                .unit(unit.clone())
                .timestamp(std::time::SystemTime::now().into())
                .set_dimensions(Some(
                    dims.iter()
                        .map(|(n, v)| Dimension::builder().name(*n).value(*v).build())
                        .collect(),
                ))
                .build()
        })
        .collect();
    cloudwatch(w, side)
        .put_metric_data()
        .namespace("vpclink")
        .set_metric_data(Some(data))
        .send()
        .await
        .unwrap();
}

/// Every IAM and CloudWatch call (and EC2's instance-profile calls) names its step in the call log
/// (VPCLINK_CALL_LOG), and the bench's DAG (scripts/bench.d/aws_dag.py) knows each of those steps.
fn assert_steps_known(log: &std::path::Path, command: &str) {
    let ours: Vec<serde_json::Value> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|c| {
            let op = c["operation"].as_str().unwrap_or_default();
            matches!(c["service"].as_str(), Some("IAM" | "CloudWatch"))
                || op.contains("IamInstanceProfile")
        })
        .collect();
    assert!(
        !ours.is_empty(),
        "{command}: no IAM or CloudWatch call logged"
    );
    let unnamed: Vec<String> = ours
        .iter()
        .filter(|c| c["step"] == "")
        .map(|c| format!("{} {}", c["service"], c["operation"]))
        .collect();
    assert!(
        unnamed.is_empty(),
        "{command}: calls without a step: {unnamed:?}"
    );
    let only_ours = log.with_extension("ours.jsonl");
    let lines: Vec<String> = ours.iter().map(|c| c.to_string()).collect();
    std::fs::write(&only_ours, lines.join("\n") + "\n").unwrap();
    let dag = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bench.d/aws_dag.py"
        ))
        .arg(command)
        .arg(&only_ours)
        .output()
        .expect("python3 runs the bench's DAG");
    let out = String::from_utf8_lossy(&dag.stdout);
    assert!(
        dag.status.success() && !out.contains("\"error\""),
        "{command}: aws_dag.py: {out}"
    );
}

fn side_metrics<'a>(report: &'a serde_json::Value, side: &str) -> &'a serde_json::Value {
    report["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json has no metrics: {report}"))
        .iter()
        .find(|m| m["side"] == side)
        .unwrap_or_else(|| panic!("no {side} in {}", report["metrics"]))
}

fn figure(m: &serde_json::Value, metric: &str) -> Option<f64> {
    m["figures"]
        .as_array()?
        .iter()
        .find(|f| f["metric"] == metric)
        .and_then(|f| f["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread")]
async fn up_makes_role_profile_and_alarm_status_shows_figures_down_removes_them() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let (east_topic, west_topic) = (topic(&w, "east"), topic(&w, "west"));

    let up = w.up(&["--alarm-topic", &east_topic, "--alarm-topic", &west_topic]);
    assert_eq!(up.status.code(), Some(0), "{}", localstack::stderr(&up));
    for (side, topic) in [("east", &east_topic), ("west", &west_topic)] {
        assert_identity(&w, side).await;
        assert_attached(&w, side).await;
        assert_alarm(&w, side, topic).await;
        let m = &w.state()[side]["metrics"];
        assert_eq!(m["instance_profile"], host_name(&w, side), "{m}");
        assert_eq!(m["alarm"], alarm_name(&w, side), "{m}");
        assert_eq!(m["alarm_topic"], *topic, "{m}");
    }

    // A complete link needs no change: no IAM or CloudWatch call either (the topics are remembered).
    let noop = w.up(&["--dry-run", "--json"]);
    let noop: serde_json::Value = serde_json::from_slice(&noop.stdout).unwrap();
    assert_eq!(
        noop["dry_run"],
        serde_json::json!([]),
        "{}",
        noop["dry_run"]
    );

    // A tunnel host without its profile (a link from before issue 13) gets it back from `up`.
    let ec2 = w.client("east");
    let tunnel = w.state()["east"]["tunnel"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let assoc = ec2
        .describe_iam_instance_profile_associations()
        .filters(filter("instance-id", &tunnel))
        .send()
        .await
        .unwrap();
    let id = assoc.iam_instance_profile_associations()[0]
        .association_id()
        .unwrap()
        .to_string();
    ec2.disassociate_iam_instance_profile()
        .association_id(&id)
        .send()
        .await
        .unwrap();
    let status = w.run(&["status", "--json", "--name", &w.name]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let profile_item = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["side"] == "east" && i["resource"] == "instance-profile")
        .unwrap_or_else(|| panic!("no instance-profile item: {report}"));
    assert_eq!(profile_item["health"], "drift", "{profile_item}");
    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", localstack::stderr(&up));
    assert_attached(&w, "east").await;

    // Figures the agent would publish, for the link's dimensions; status --json shows the latest.
    publish(
        &w,
        "east",
        &[
            ("TunnelUp", 1.0, StandardUnit::None),
            ("TunnelRtt", 12.5, StandardUnit::Milliseconds),
            ("BytesToPeer", 4096.0, StandardUnit::Bytes),
            ("ConntrackUse", 3.0, StandardUnit::Percent),
        ],
    )
    .await;
    let status = w.run(&["status", "--json", "--name", &w.name]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let east = side_metrics(&report, "east");
    assert_eq!(figure(east, "TunnelUp"), Some(1.0), "{east}");
    assert_eq!(figure(east, "TunnelRtt"), Some(12.5), "{east}");
    assert_eq!(figure(east, "BytesToPeer"), Some(4096.0), "{east}");
    assert_eq!(figure(east, "ConntrackUse"), Some(3.0), "{east}");
    assert_eq!(
        figure(east, "PpsAllowanceExceeded"),
        None,
        "never made up: {east}"
    );
    assert_eq!(east["no_data"], false);
    assert_eq!(east["alarm"], alarm_name(&w, "east"));
    assert!(east["alarm_state"].is_string(), "{east}");
    let west = side_metrics(&report, "west");
    assert_eq!(west["no_data"], true, "nothing published for west: {west}");
    let human = w.run(&["status", "--name", &w.name]);
    let text = stdout(&human);
    assert!(
        text.contains("TunnelRtt") && text.contains("12.5"),
        "{text}"
    );
    assert!(text.contains("no data yet"), "{text}");

    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", localstack::stderr(&down));
    for side in ["east", "west"] {
        assert_eq!(
            left(&w, side).await,
            (0, 0, 0),
            "{side}: role, profile, alarm left"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn down_without_the_state_file_finds_role_profile_and_alarm() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    // Every IAM and CloudWatch call names its step in the call log (VPCLINK_CALL_LOG), as EC2's do.
    let log = w.dir.path().join("calls.jsonl");
    let args = w.up_args(&["--no-test-hosts"]);
    let mut command = w.command(&args);
    command.env("VPCLINK_CALL_LOG", &log);
    let up = localstack::cli::run(command, &args);
    assert_eq!(up.status.code(), Some(0), "{}", localstack::stderr(&up));
    assert_steps_known(&log, "up");
    for side in ["east", "west"] {
        assert_eq!(left(&w, side).await, (1, 1, 1), "{side}");
        // No topic given: the alarm notifies nothing.
        let alarms = cloudwatch(&w, side)
            .describe_alarms()
            .alarm_name_prefix(alarm_name(&w, side))
            .send()
            .await
            .unwrap();
        assert!(alarms.metric_alarms()[0].alarm_actions().is_empty());
    }
    std::fs::remove_file(w.state_file()).unwrap();
    let dry = w.run(&[
        "down",
        "--name",
        &w.name,
        "--east",
        "east",
        "--west",
        "west",
        "--dry-run",
        "--json",
    ]);
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let deleted = dry["deleted"].as_array().unwrap();
    for (i, side) in ["east", "west"].iter().enumerate() {
        assert_eq!(
            deleted[i]["alarms"],
            serde_json::json!([alarm_name(&w, side)]),
            "{dry}"
        );
        assert_eq!(
            deleted[i]["instance_profiles"],
            serde_json::json!([host_name(&w, side)])
        );
        assert_eq!(
            deleted[i]["iam_roles"],
            serde_json::json!([host_name(&w, side)])
        );
    }
    let down_args = [
        "down", "--name", &w.name, "--east", "east", "--west", "west", "--json",
    ];
    let down_log = w.dir.path().join("down-calls.jsonl");
    let mut command = w.command(&down_args);
    command.env("VPCLINK_CALL_LOG", &down_log);
    let down = localstack::cli::run(command, &down_args);
    assert_eq!(down.status.code(), Some(0), "{}", localstack::stderr(&down));
    assert_steps_known(&down_log, "down");
    let report: serde_json::Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(report["left"], 0, "the leak check counts them: {report}");
    let deleted = report["deleted"].as_array().unwrap();
    assert!(
        deleted
            .iter()
            .all(|d| d["iam_roles"].as_array().unwrap().len() == 1),
        "{report}"
    );
    for side in ["east", "west"] {
        assert_eq!(
            left(&w, side).await,
            (0, 0, 0),
            "{side}: role, profile, alarm left"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_lists_the_iam_and_cloudwatch_calls_and_a_topic_in_the_wrong_region_is_refused() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    assert_ne!(
        w.seed.east.region, w.seed.west.region,
        "the seed spans two regions"
    );

    // One topic, two regions: refused before anything is made (exit 2), saying why.
    let east_topic = topic(&w, "east");
    let refused = w.up(&["--alarm-topic", &east_topic]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        localstack::stderr(&refused)
    );
    let why = localstack::stderr(&refused);
    assert!(
        why.contains("only an SNS topic in its own region") && why.contains("west side"),
        "{why}"
    );
    let not_sns = w.up(&["--alarm-topic", "arn:aws:sqs:us-east-1:123456789012:q"]);
    assert_eq!(not_sns.status.code(), Some(2));
    assert!(localstack::stderr(&not_sns).contains("is not an SNS topic ARN"));
    for side in ["east", "west"] {
        assert_eq!(left(&w, side).await, (0, 0, 0), "{side}: nothing made");
    }

    let dry = w.up(&[
        "--dry-run",
        "--json",
        "--alarm-topic",
        &east_topic,
        "--alarm-topic",
        &topic(&w, "west"),
    ]);
    assert_eq!(dry.status.code(), Some(0), "{}", localstack::stderr(&dry));
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let calls = dry["dry_run"].as_array().unwrap();
    for side in ["east", "west"] {
        let of = |action: &str| {
            calls
                .iter()
                .filter(|c| c["side"] == side && c["action"] == action)
                .count()
        };
        for action in [
            "iam:CreateRole",
            "iam:PutRolePolicy",
            "iam:CreateInstanceProfile",
            "iam:AddRoleToInstanceProfile",
            "cloudwatch:PutMetricAlarm",
        ] {
            assert_eq!(of(action), 1, "{side} {action}: {calls:?}");
        }
        let run = calls
            .iter()
            .find(|c| {
                c["side"] == side
                    && c["action"] == "ec2:RunInstances"
                    && c["detail"].as_str().unwrap().contains("-tunnel ")
            })
            .unwrap_or_else(|| panic!("no tunnel RunInstances: {calls:?}"));
        assert!(
            run["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("IamInstanceProfile={}", host_name(&w, side))),
            "{run}"
        );
    }
    for side in ["east", "west"] {
        assert_eq!(
            left(&w, side).await,
            (0, 0, 0),
            "{side}: a dry run makes nothing"
        );
    }
}
