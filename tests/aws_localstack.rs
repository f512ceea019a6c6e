//! `up`, `status` and `down` against LocalStack, asserted through the EC2 API: every resource exactly once with the
//! right attributes, SG rules exactly as specified, a route in every table, source/dest check off; `up` twice adds
//! nothing; `down` leaves nothing with the link's tags. Uses `up --no-configure`: nothing boots on LocalStack.

mod localstack;

use localstack::{count, filter, stdout, tag, Counts, SeedSpec, World};
use std::collections::BTreeSet;

type RuleKey = (String, i32, i32, String);

fn mapped(state: &serde_json::Value, side: &str) -> Vec<String> {
    state["plan"][side]["mapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

async fn ingress(ec2: &aws_sdk_ec2::Client, group: &str) -> BTreeSet<RuleKey> {
    ec2.describe_security_group_rules()
        .filters(filter("group-id", group))
        .send()
        .await
        .unwrap()
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() != Some(true))
        .map(|r| {
            let src = r
                .cidr_ipv4()
                .map(str::to_string)
                .or_else(|| {
                    r.referenced_group_info()
                        .and_then(|g| g.group_id())
                        .map(str::to_string)
                })
                .unwrap();
            (
                r.ip_protocol().unwrap().to_string(),
                r.from_port().unwrap(),
                r.to_port().unwrap(),
                src,
            )
        })
        .collect()
}

fn rule(p: &str, from: i32, to: i32, src: &str) -> RuleKey {
    (p.into(), from, to, src.into())
}

/// Everything `up` promises on one side, read back from AWS.
async fn assert_side(w: &World, side: &str, peer: &str, test_hosts: bool) {
    tokio::time::sleep(localstack::settle()).await;
    let ec2 = w.client(side);
    let seed = w.side(side);
    let state = w.state();
    let remote_mapped = mapped(&state, peer);
    let link = || tag("vpclink:link", &w.name);
    let role = |r: &str| tag("vpclink:role", r);

    // Exactly one of each, tagged.
    let c = count(w, side).await;
    let tables = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", &seed.vpc_id))
        .send()
        .await
        .unwrap();
    let tables = tables.route_tables();
    assert_eq!(
        c,
        Counts {
            instances: if test_hosts { 2 } else { 1 },
            elastic_ips: 1,
            security_groups: if test_hosts { 2 } else { 1 },
            key_pairs: 1,
            eni_routes: tables.len() * remote_mapped.len(),
        },
        "{side}: resources by tag"
    );

    // The tunnel host: public subnet, IMDSv2 only, its group and the link's key, the side tag.
    let reservations = ec2
        .describe_instances()
        .filters(link())
        .filters(role("tunnel"))
        .filters(filter("instance-state-name", "running"))
        .send()
        .await
        .unwrap();
    let tunnel = &reservations.reservations()[0].instances()[0];
    assert_eq!(
        tunnel.subnet_id(),
        seed.public_subnet.as_deref(),
        "{side}: tunnel host in the public subnet"
    );
    assert_eq!(
        tunnel
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str()),
        Some("required"),
        "{side}: IMDSv2 required"
    );
    assert_eq!(
        tunnel.key_name(),
        Some(format!("vpclink-{}", w.name).as_str())
    );
    assert!(tunnel
        .tags()
        .iter()
        .any(|t| t.key() == Some("vpclink:side") && t.value() == Some(side)));
    let eni = tunnel.network_interfaces()[0]
        .network_interface_id()
        .unwrap()
        .to_string();
    let tunnel_sg = tunnel.security_groups()[0].group_id().unwrap().to_string();

    // Source/dest check off on the interface.
    let nic = ec2
        .describe_network_interfaces()
        .network_interface_ids(&eni)
        .send()
        .await
        .unwrap();
    assert_eq!(
        nic.network_interfaces()[0].source_dest_check(),
        Some(false),
        "{side}: source/dest check off"
    );

    // The Elastic IP is on that interface.
    let addrs = ec2
        .describe_addresses()
        .filters(link())
        .send()
        .await
        .unwrap();
    assert_eq!(
        addrs.addresses()[0].network_interface_id(),
        Some(eni.as_str()),
        "{side}: EIP associated"
    );

    // Security group rules, exactly.
    let peer_ec2 = w.client(peer);
    let peer_eip = peer_ec2
        .describe_addresses()
        .filters(link())
        .send()
        .await
        .unwrap()
        .addresses()[0]
        .public_ip()
        .unwrap()
        .to_string();
    let p = format!("{peer_eip}/32");
    let mut want: BTreeSet<RuleKey> = [
        rule("tcp", 22, 22, "203.0.113.0/24"),
        rule("udp", 500, 500, &p),
        rule("udp", 4500, 4500, &p),
        rule("50", -1, -1, &p),
        rule("icmp", 8, -1, &p),
    ]
    .into_iter()
    .collect();
    for c in state["plan"][side]["cidrs"].as_array().unwrap() {
        want.insert(rule("-1", -1, -1, c.as_str().unwrap()));
    }
    assert_eq!(
        ingress(&ec2, &tunnel_sg).await,
        want,
        "{side}: tunnel host rules"
    );

    if test_hosts {
        let r = ec2
            .describe_instances()
            .filters(link())
            .filters(role("test"))
            .filters(filter("instance-state-name", "running"))
            .send()
            .await
            .unwrap();
        let test = &r.reservations()[0].instances()[0];
        assert!(
            seed.private_subnets
                .iter()
                .any(|s| Some(s.as_str()) == test.subnet_id()),
            "{side}: test host private"
        );
        let test_sg = test.security_groups()[0].group_id().unwrap().to_string();
        let mut want: BTreeSet<RuleKey> = [rule("tcp", 22, 22, &tunnel_sg)].into_iter().collect();
        for m in &remote_mapped {
            want.insert(rule("-1", -1, -1, m));
        }
        assert_eq!(
            ingress(&ec2, &test_sg).await,
            want,
            "{side}: test host rules"
        );
    }

    // A route for each of the remote side's mapped ranges to the tunnel host, in every route table.
    assert!(
        tables.len() >= 4,
        "{side}: the seed has a main table and per-subnet tables"
    );
    for t in tables {
        for m in &remote_mapped {
            let r: Vec<_> = t
                .routes()
                .iter()
                .filter(|r| r.destination_cidr_block() == Some(m.as_str()))
                .collect();
            assert_eq!(
                r.len(),
                1,
                "{side}: {} has one route for {m}",
                t.route_table_id().unwrap()
            );
            assert_eq!(r[0].network_interface_id(), Some(eni.as_str()));
        }
    }
}

async fn assert_linked(w: &World, test_hosts: bool) {
    assert_side(w, "east", "west", test_hosts).await;
    assert_side(w, "west", "east", test_hosts).await;
}

async fn assert_nothing_left(w: &World) {
    for side in ["east", "west"] {
        assert_eq!(
            count(w, side).await,
            Counts::default(),
            "{side}: resources left after down"
        );
    }
    assert!(!w.state_file().exists(), "state file removed by down");
}

/// Each side's calls go out concurrently; the call log (VPCLINK_CALL_LOG) shows the policy gates still hold: no
/// change before both sides' reads and probes ended (`up`: survey and preflight; `down`: the inventory), no leak
/// check before the last delete. Every call names its step, and the bench's DAG knows every step.
fn assert_calls_are_gated(log: &std::path::Path, command: &str) {
    let text = std::fs::read_to_string(log).expect("call log written");
    let calls: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = |c: &serde_json::Value| c["step"].as_str().unwrap_or("").to_string();
    assert!(
        calls.iter().all(|c| !step(c).is_empty()),
        "{command}: a call without a step"
    );
    let (before, after): (&[&str], fn(&str) -> bool) = match command {
        "up" => (
            &[
                "sts",
                "vpcs",
                "subnets",
                "tables",
                "prefix_lists",
                "prefix_entries",
                "ami",
                "itype",
                "ami_image",
                "offerings",
                "kp_find",
                "addresses",
                "eip_quota",
                "probe_key",
                "probe_eip",
                "groups",
                "instances",
                "probe_sg",
                "probe_run",
            ],
            |s| !s.starts_with("probe_"),
        ),
        _ => (&[], |s| s.starts_with("d_")),
    };
    // down: the inventory is every collect step and the connect
    let is_before =
        |s: &str| before.contains(&s) || (command == "down" && (s == "sts" || s.starts_with("c_")));
    let reads_end = calls
        .iter()
        .filter(|c| is_before(&step(c)))
        .map(|c| c["end_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let changes: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|c| !is_before(&step(c)) && after(&step(c)))
        .collect();
    assert!(!changes.is_empty(), "{command}: no change logged");
    for c in &changes {
        assert!(
            c["start_ms"].as_f64().unwrap() >= reads_end,
            "{command}: {} ({}) started before the gate",
            step(c),
            c["operation"]
        );
    }
    if command == "down" {
        let last_delete = changes
            .iter()
            .map(|c| c["end_ms"].as_f64().unwrap())
            .fold(0.0, f64::max);
        for c in calls.iter().filter(|c| step(c).starts_with("l_")) {
            assert!(
                c["start_ms"].as_f64().unwrap() >= last_delete,
                "leak check before a delete"
            );
        }
    }
    let dag = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bench.d/aws_dag.py"
        ))
        .arg(command)
        .arg(log)
        .output()
        .expect("python3 runs the bench's DAG");
    let out = String::from_utf8_lossy(&dag.stdout);
    assert!(
        dag.status.success() && !out.contains("\"error\""),
        "{command}: aws_dag.py: {out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn up_provisions_everything_once_status_sees_drift_and_down_removes_all() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;

    let plan = w.run(&["plan", "--east", "east", "--west", "west", "--json"]);
    assert_eq!(plan.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(
        plan["east"]["cidrs"].as_array().unwrap().len(),
        2,
        "primary and secondary CIDR"
    );
    assert_eq!(plan["east"]["route_tables"].as_array().unwrap().len(), 5);

    let dry = w.up(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    assert!(stdout(&dry).contains("ec2:RunInstances"));
    for side in ["east", "west"] {
        assert_eq!(
            count(&w, side).await,
            Counts::default(),
            "--dry-run creates nothing"
        );
    }

    let up_log = w.dir.path().join("up.calls.jsonl");
    let up = w
        .command(&w.up_args(&[]))
        .env("VPCLINK_CALL_LOG", &up_log)
        .output()
        .unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", stdout(&up));
    assert_linked(&w, true).await;
    let first = (count(&w, "east").await, count(&w, "west").await);
    assert_calls_are_gated(&up_log, "up");

    // A tunnel group that lost its route destinations (made by an older vpclink, or edited) gets them back.
    let east_sg = w.state()["east"]["tunnel_sg"].as_str().unwrap().to_string();
    let routes_tag = |c: aws_sdk_ec2::Client, sg: String| async move {
        c.describe_security_groups()
            .group_ids(sg)
            .send()
            .await
            .unwrap()
            .security_groups()[0]
            .tags()
            .iter()
            .find(|t| t.key() == Some("vpclink:routes"))
            .and_then(|t| t.value().map(str::to_string))
    };
    let named = mapped(&w.state(), "west").join(" ");
    assert_eq!(
        routes_tag(w.client("east"), east_sg.clone()).await,
        Some(named.clone())
    );
    w.client("east")
        .delete_tags()
        .resources(&east_sg)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("vpclink:routes")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(routes_tag(w.client("east"), east_sg.clone()).await, None);

    let again = w.up(&[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        routes_tag(w.client("east"), east_sg.clone()).await,
        Some(named),
        "up names the routes on the group again"
    );
    assert_eq!(
        (count(&w, "east").await, count(&w, "west").await),
        first,
        "up twice: no duplicates"
    );
    assert_linked(&w, true).await;

    let status = w.run(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(status.status.code(), Some(0));
    let noop = w.up(&["--dry-run", "--json"]);
    let noop: serde_json::Value = serde_json::from_slice(&noop.stdout).unwrap();
    assert_eq!(
        noop["dry_run"],
        serde_json::json!([]),
        "a complete link needs no change: {}",
        noop["dry_run"]
    );

    // Drift: source/dest check back on, a route deleted. status names both; up repairs them.
    let east = w.client("east");
    let eni = w.state()["east"]["tunnel"]["eni_id"]
        .as_str()
        .unwrap()
        .to_string();
    east.modify_network_interface_attribute()
        .network_interface_id(&eni)
        .source_dest_check(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let west_mapped = mapped(&w.state(), "west");
    east.delete_route()
        .route_table_id(&w.seed.east.route_tables[2])
        .destination_cidr_block(&west_mapped[0])
        .send()
        .await
        .unwrap();
    // The deleted route may still be listed for a moment (eventual consistency; the strict layer does this too).
    tokio::time::sleep(localstack::settle()).await;
    let status = w.run(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(status.status.code(), Some(1), "drift is a non-zero exit");
    let drifted: Vec<String> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ok"] == false)
        .map(|i| {
            format!(
                "{} {}",
                i["resource"].as_str().unwrap(),
                i["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        drifted,
        vec![
            format!("source-dest-check {eni}"),
            format!("route {} {}", w.seed.east.route_tables[2], west_mapped[0])
        ]
    );
    assert_eq!(w.up(&[]).status.code(), Some(0));
    assert_linked(&w, true).await;

    // A stopped tunnel host (by hand, or by AWS for maintenance) is started again, the same instance.
    let west = w.client("west");
    let west_tunnel = w.state()["west"]["tunnel"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    west.stop_instances()
        .instance_ids(&west_tunnel)
        .send()
        .await
        .unwrap();
    let state_of = |c: aws_sdk_ec2::Client, id: String| async move {
        c.describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap()
            .reservations()[0]
            .instances()[0]
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
    };
    assert_ne!(
        state_of(west.clone(), west_tunnel.clone()).await.as_deref(),
        Some("running"),
        "the emulator stopped the host"
    );
    assert_eq!(w.up(&[]).status.code(), Some(0), "up starts a stopped host");
    assert_eq!(
        state_of(west.clone(), west_tunnel.clone()).await.as_deref(),
        Some("running")
    );
    assert_eq!(
        w.state()["west"]["tunnel"]["instance_id"].as_str(),
        Some(west_tunnel.as_str()),
        "the same host"
    );
    assert_linked(&w, true).await;

    let down_log = w.dir.path().join("down.calls.jsonl");
    let down = w
        .command(&["down", "--name", &w.name])
        .env("VPCLINK_CALL_LOG", &down_log)
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(0));
    assert_nothing_left(&w).await;
    assert_calls_are_gated(&down_log, "down");
    assert_eq!(
        w.run(&["down", "--name", &w.name, "--east", "east", "--west", "west"])
            .status
            .code(),
        Some(0),
        "down is idempotent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn down_without_state_finds_everything_by_tag() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    // Without --no-configure, up provisions and then refuses to SSH to LocalStack's loopback Elastic IPs.
    let full = w.run(&[
        "up",
        "--east",
        "east",
        "--west",
        "west",
        "--ssh-cidr",
        "203.0.113.0/24",
        "--no-test-hosts",
    ]);
    assert_eq!(full.status.code(), Some(1));
    assert!(
        localstack::stderr(&full).contains("loopback address"),
        "{}",
        localstack::stderr(&full)
    );
    assert_eq!(w.up(&["--no-test-hosts"]).status.code(), Some(0));
    assert_linked(&w, false).await;
    // The worst case: the state is lost and the east tunnel host is already gone (an earlier `down` died after
    // terminating it), so nothing but the tunnel group's tags says the routes to its interface were ours.
    let east_host = w.state()["east"]["tunnel"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(w.state_file()).unwrap();
    let east = w.client("east");
    east.terminate_instances()
        .instance_ids(&east_host)
        .send()
        .await
        .unwrap();
    assert!(
        count(&w, "east").await.eni_routes > 0,
        "the routes outlive their host"
    );
    let no_state = w.run(&["down", "--name", &w.name]);
    assert_eq!(
        no_state.status.code(),
        Some(2),
        "without state and profiles, down cannot know where to look"
    );
    assert_eq!(w.down().status.code(), Some(0));
    assert_nothing_left(&w).await;
}

/// Kill `up` at a spread of moments (and fail it at a spread of API calls), run it again: it converges to the same
/// link with no duplicates; `down` then leaves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn interrupted_up_converges_and_down_leaves_nothing() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    for ms in [0u64, 40, 90, 150, 220, 300, 400, 550, 750] {
        let mut child = w
            .command(&w.up_args(&[]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        let up = w.up(&[]);
        assert_eq!(up.status.code(), Some(0), "up after a kill at {ms} ms");
        assert_linked(&w, true).await;
        assert_eq!(
            w.down().status.code(),
            Some(0),
            "down after a kill at {ms} ms"
        );
        assert_nothing_left(&w).await;
    }
    for call in [1usize, 3, 5, 8, 12, 17, 23, 30] {
        let failed = w
            .command(&w.up_args(&[]))
            .env("VPCLINK_FAULT_AT", call.to_string())
            .output()
            .unwrap();
        assert_eq!(
            failed.status.code(),
            Some(1),
            "an API error at call {call} fails the run: {}",
            localstack::stderr(&failed)
        );
        assert!(localstack::stderr(&failed).contains("InjectedFault"));
        assert_eq!(
            w.up(&[]).status.code(),
            Some(0),
            "up after a fault at call {call}"
        );
        assert_linked(&w, true).await;
        assert_eq!(w.down().status.code(), Some(0));
        assert_nothing_left(&w).await;
    }
}
