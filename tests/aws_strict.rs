//! What real EC2 refuses and the emulators accept, caught through the strict layer in front of LocalStack
//! (localstack/strict, started by localstack/run): each test is a defect a first real user would have met, and fails
//! on a vpclink without its fix. Uses `up --no-configure`: nothing boots on LocalStack.

mod localstack;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use localstack::{cli, count, filter, stderr, stdout, strict_config, Counts, SeedSpec, World};

fn state_routes(w: &World, side: &str) -> Vec<(String, String)> {
    w.state()[side]["routes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["route_table_id"].as_str().unwrap().to_string(),
                        r["destination"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn assert_nothing_left(w: &World) {
    for side in ["east", "west"] {
        assert_eq!(
            count(w, side).await,
            Counts::default(),
            "{side}: left after down"
        );
    }
}

/// EC2 keeps a ClientToken for at least 24 h after its instance is terminated, while the instance leaves
/// DescribeInstances after about an hour: a second life of a link name must not present the first life's tokens
/// (they come back with other parameters: new groups, and IdempotentParameterMismatch follows).
#[tokio::test(flavor = "multi_thread")]
async fn up_after_down_with_the_same_name_launches_with_new_client_tokens() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    for side in ["east", "west"] {
        // Terminated instances vanish from Describe at once (AWS: about an hour later); deletes are seen at once
        // here, so that only the tokens are on trial.
        strict_config(
            &url,
            &w.side(side).account,
            "\"terminated_visible_s\": 0, \"stale_ms\": 0",
        );
    }
    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stdout(&up));
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    let again = w.up(&[]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "second life of the same name: {}",
        stderr(&again)
    );
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_nothing_left(&w).await;
}

/// A route table associated with an internet gateway (ingress routing) accepts only destinations inside the VPC:
/// vpclink leaves it out, says so, and routes every other table.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_route_tables_are_skipped_and_said_so() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let ec2 = w.client("east");
    let edge = ec2
        .create_route_table()
        .vpc_id(&w.seed.east.vpc_id)
        .send()
        .await
        .unwrap()
        .route_table
        .unwrap()
        .route_table_id
        .unwrap();
    ec2.associate_route_table()
        .route_table_id(&edge)
        .gateway_id(&w.seed.east.igw)
        .send()
        .await
        .unwrap();

    let plan = w.run(&["plan", "--east", "east", "--west", "west"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains(&format!(
            "east: skipped: {edge} is associated with gateway {}",
            w.seed.east.igw
        )),
        "plan names the skipped table: {text}"
    );

    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let routes = state_routes(&w, "east");
    assert!(!routes.is_empty());
    assert!(routes.iter().all(|(t, _)| t != &edge), "{routes:?}");
    for t in &w.seed.east.route_tables {
        assert!(routes.iter().any(|(r, _)| r == t), "{t} routed: {routes:?}");
    }
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_nothing_left(&w).await;
}

/// Two VPCs of one team: both sides in one account and one region share the key pair name and the Elastic IP pool.
#[tokio::test(flavor = "multi_thread")]
async fn both_sides_in_one_account_and_region() {
    let url = localstack_or_skip!();
    let w = World::new(
        &url,
        SeedSpec {
            one_account: true,
            ..SeedSpec::default()
        },
    )
    .await;
    let account = w.seed.east.account.clone();
    assert_eq!(account, w.seed.west.account);

    // One address free in the shared pool (AWS's default quota, 5): each side alone would pass; together they need
    // two.
    let ec2 = w.client("east");
    let mut taken = Vec::new();
    for _ in 0..4 {
        taken.push(
            ec2.allocate_address()
                .send()
                .await
                .unwrap()
                .allocation_id
                .unwrap(),
        );
    }
    // Addresses allocated a moment ago are not listed yet (eventual consistency): let them show.
    tokio::time::sleep(localstack::settle()).await;
    let vpcs = [
        "--east-vpc",
        w.seed.east.vpc_id.as_str(),
        "--west-vpc",
        w.seed.west.vpc_id.as_str(),
    ];
    let refused = w.up(&vpcs);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let why = stderr(&refused);
    assert!(
        why.contains("east and west share this account and region"),
        "{why}"
    );
    for side in ["east", "west"] {
        assert_eq!(
            count(&w, side).await,
            Counts::default(),
            "preflight created nothing"
        );
    }

    for id in &taken[..2] {
        ec2.release_address()
            .allocation_id(id)
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(localstack::settle()).await;
    let up = w.up(&vpcs);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let kp = ec2
        .describe_key_pairs()
        .filters(filter("key-name", &format!("vpclink-{}", w.name)))
        .send()
        .await
        .unwrap();
    assert_eq!(kp.key_pairs().len(), 1, "one key pair serves both sides");
    let again = w.up(&[]);
    assert_eq!(again.status.code(), Some(0), "re-run: {}", stderr(&again));
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_nothing_left(&w).await;
}

/// A route whose destination is a managed prefix list (a corporate range to a transit gateway) occupies the list's
/// CIDRs: the planner must not map a VPC onto them. IPv6 lists and routes are ignored cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn prefix_list_routes_are_occupied_space() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let plan_json = || {
        let p = w.run(&["plan", "--east", "east", "--west", "west", "--json"]);
        assert_eq!(p.status.code(), Some(0), "{}", stderr(&p));
        serde_json::from_slice::<serde_json::Value>(&p.stdout).unwrap()
    };
    let before = plan_json();
    let first = before["west"]["mapped"][0].as_str().unwrap().to_string();

    // East routes exactly that range, through a prefix list, to its internet gateway; plus an IPv6 list.
    let ec2 = w.client("east");
    let pl = |family: &str, cidr: &str| {
        let ec2 = ec2.clone();
        let (family, cidr) = (family.to_string(), cidr.to_string());
        async move {
            ec2.create_managed_prefix_list()
                .prefix_list_name(format!("corp-{family}"))
                .address_family(family)
                .max_entries(10)
                .entries(
                    aws_sdk_ec2::types::AddPrefixListEntry::builder()
                        .cidr(cidr)
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .prefix_list
                .unwrap()
                .prefix_list_id
                .unwrap()
        }
    };
    let v4 = pl("IPv4", &first).await;
    let v6 = pl("IPv6", "2600:1f18:abcd::/48").await;
    for list in [&v4, &v6] {
        ec2.create_route()
            .route_table_id(&w.seed.east.main_table)
            .destination_prefix_list_id(list)
            .gateway_id(&w.seed.east.igw)
            .send()
            .await
            .unwrap();
    }
    let after = plan_json();
    let first_now: ipnet::Ipv4Net = after["west"]["mapped"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let taken: ipnet::Ipv4Net = first.parse().unwrap();
    for side in ["east", "west"] {
        for m in after[side]["mapped"].as_array().unwrap() {
            let m: ipnet::Ipv4Net = m.as_str().unwrap().parse().unwrap();
            assert!(
                !m.contains(&taken.network()) && !taken.contains(&m.network()),
                "{side} mapped {m} overlaps the prefix list's {taken} (was {first_now})"
            );
        }
    }
}

/// An instance type is not offered in every zone: the hosts go into subnets of zones that offer it (here: the
/// seed's zone "a" does not; a public subnet in zone "b" is added).
#[tokio::test(flavor = "multi_thread")]
async fn hosts_go_to_zones_that_offer_the_instance_type() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let ec2 = w.client("east");
    let east = &w.seed.east;
    let zone_b = format!("{}b", east.region);
    let subnet_b = ec2
        .create_subnet()
        .vpc_id(&east.vpc_id)
        .cidr_block("10.0.9.0/24")
        .availability_zone(&zone_b)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Subnet)
                .tags(Tag::builder().key("Name").value("public-b").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    // Public: its own table with the default route to the internet gateway.
    let rt = ec2
        .create_route_table()
        .vpc_id(&east.vpc_id)
        .send()
        .await
        .unwrap()
        .route_table
        .unwrap()
        .route_table_id
        .unwrap();
    ec2.associate_route_table()
        .route_table_id(&rt)
        .subnet_id(&subnet_b)
        .send()
        .await
        .unwrap();
    ec2.create_route()
        .route_table_id(&rt)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&east.igw)
        .send()
        .await
        .unwrap();
    strict_config(
        &url,
        &east.account,
        &format!("\"unoffered\": {{\"{}a\": [\"t3.small\"]}}", east.region),
    );

    // Asking for the zone-a public subnet is refused with the reason, before anything is made.
    let public_a = east.public_subnet.clone().unwrap();
    let refused = w.up(&["--east-subnet", &public_a]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("offered in"),
        "{}",
        stderr(&refused)
    );

    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    for role in ["tunnel", "test"] {
        let id = w.state()["east"][role]["instance_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = ec2
            .describe_instances()
            .instance_ids(&id)
            .send()
            .await
            .unwrap();
        let i = &r.reservations()[0].instances()[0];
        assert_eq!(
            i.placement().and_then(|p| p.availability_zone()),
            Some(zone_b.as_str()),
            "east {role} host in a zone that offers t3.small"
        );
    }
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_nothing_left(&w).await;
}

/// A Xen instance type (t2) refuses GetConsoleOutput with Latest=true, and every console is empty for its first
/// seconds: vpclink keeps polling through both and pins the host key cloud-init printed, before any SSH.
#[tokio::test(flavor = "multi_thread")]
async fn host_keys_are_pinned_from_the_console_of_a_xen_instance() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4IuHARW6OKs96O8yoZMF8pHJbieJu8AkIFUjSwbcg2";
    let console = format!(
        "[   12.0] cloud-init[1012]: Cloud-init v. 22.4.2 finished\n-----BEGIN SSH HOST KEY KEYS-----\n{key} root@ip-10-0-1-10\n-----END SSH HOST KEY KEYS-----\n"
    );
    let setting = format!(
        "\"console_text\": {}",
        serde_json::to_string(&console).unwrap()
    );
    for side in ["east", "west"] {
        strict_config(&url, &w.side(side).account, &setting);
    }
    let up = w.up(&["--instance-type", "t2.micro", "--no-test-hosts"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    // configure pins the keys first; it then stops at LocalStack's loopback Elastic IPs, which is expected here.
    let configure = w.run(&["configure", "--name", &w.name]);
    assert_ne!(configure.status.code(), Some(0));
    for side in ["east", "west"] {
        assert_eq!(
            w.state()[side]["tunnel"]["host_key"].as_str(),
            Some(key),
            "{side} tunnel host key pinned from the console: {}",
            stderr(&configure)
        );
    }
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_nothing_left(&w).await;
}

/// Reads lag deletes: right after `down` deletes a group or releases an address, Describe may still list it. The
/// leak check reads again for a while before it calls anything left behind.
#[tokio::test(flavor = "multi_thread")]
async fn down_waits_out_reads_that_lag_deletes() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    for side in ["east", "west"] {
        strict_config(&url, &w.side(side).account, "\"stale_ms\": 4000");
    }
    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert!(
        !w.state_file().exists(),
        "state removed once nothing is left"
    );
    assert_nothing_left(&w).await;
}

/// A re-run finds the key pair in place; AWS may answer a DryRun import of an existing name with
/// InvalidKeyPair.Duplicate rather than DryRunOperation, so the permission probe must not be sent then.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_with_the_key_pair_in_place_sends_no_import_probe() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let again = w.up(&[]);
    assert_eq!(again.status.code(), Some(0), "re-run: {}", stderr(&again));
    let stats = localstack::strict_stats(&url, &w.seed.east.account);
    assert_eq!(
        stats["refusals"]["key_pair_duplicate"]
            .as_u64()
            .unwrap_or(0),
        0,
        "no import (probe or real) refused as a duplicate: {stats}"
    );
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
}

/// Real consoles, through GetConsoleOutput: tests/fixtures/console holds Debian 13 guests' first-boot serial
/// consoles captured by scripts/lab, with the key each guest's sshd presented. East's whole console must pin exactly
/// that key; west's, cut before the key block, is polled for the bounded wait (VPCLINK_CONSOLE_KEY_WAIT) and then
/// left to trust on first use, with the warning that names `vpclink pin`.
#[tokio::test(flavor = "multi_thread")]
async fn real_consoles_pin_the_presented_key_and_a_silent_one_is_waited_on_then_left() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console");
    let read = |p: &str| std::fs::read_to_string(fixtures.join(p)).unwrap();
    let east_console = read("debian13-east/console.txt");
    let presented = read("debian13-east/presented.pub").trim().to_string();
    let west_full = read("debian13-west/console.txt");
    let west_cut = &west_full[..west_full
        .find("-----BEGIN SSH HOST KEY KEYS-----")
        .expect("the west fixture has a key block")];
    for (side, console) in [("east", east_console.as_str()), ("west", west_cut)] {
        let setting = format!(
            "\"console_text\": {}",
            serde_json::to_string(console).unwrap()
        );
        strict_config(&url, &w.side(side).account, &setting);
    }
    let up = w.up(&["--no-test-hosts"]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let started = std::time::Instant::now();
    let mut c = w.command(&["configure", "--name", &w.name]);
    c.env("VPCLINK_CONSOLE_KEY_WAIT", "12");
    let configure = cli::run(c, &["configure"]);
    // configure then stops at LocalStack's loopback Elastic IPs, which is expected here.
    assert_ne!(configure.status.code(), Some(0));
    let err = stderr(&configure);
    assert_eq!(
        w.state()["east"]["tunnel"]["host_key"].as_str(),
        Some(presented.as_str()),
        "east: the key pinned from the real console is the one sshd presented: {err}"
    );
    assert!(
        w.state()["west"]["tunnel"]["host_key"].is_null(),
        "west's console had no key block: nothing pinned: {err}"
    );
    assert!(
        err.contains("showed no SSH host key within 12 s") && err.contains("vpclink pin"),
        "the warning for west: {err}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(12),
        "west's console was waited on for the whole budget"
    );
    let down = w.down();
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert_nothing_left(&w).await;
}
