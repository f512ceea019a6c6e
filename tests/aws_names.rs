//! Names (issue 13) against LocalStack, asserted through the Route 53 and EC2 APIs (never through vpclink's output
//! alone): `up` makes one private zone per side, associated with that side's VPC, holding every interface of the
//! other VPC at its mapped address; an interface created or deleted shows as drift in `status` and `sync` follows
//! it; a second `sync` changes nothing; `down` leaves no zone, also without the state file; `--dry-run` lists the
//! Route 53 calls and makes none; `--no-dns` makes no zone.

mod localstack;

use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use localstack::{settle, stdout, SeedSpec, World};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

fn route53(w: &World, side: &str) -> aws_sdk_route53::Client {
    let s = w.side(side);
    let conf = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s.region.clone()))
        .endpoint_url(&w.url)
        .credentials_provider(Credentials::new(
            &s.account,
            "test",
            None,
            None,
            "vpclink-tests",
        ))
        .build();
    aws_sdk_route53::Client::from_conf(conf)
}

/// The zone name vpclink documents: the zone on `side` names the other side's hosts.
fn zone_name(w: &World, side: &str) -> String {
    let other = if side == "east" { "west" } else { "east" };
    format!("{other}.{}.vpclink.internal", w.name)
}

/// The private zones of that name in the side's account.
async fn zones(w: &World, side: &str) -> Vec<aws_sdk_route53::types::HostedZone> {
    let want = format!("{}.", zone_name(w, side));
    route53(w, side)
        .list_hosted_zones()
        .send()
        .await
        .unwrap()
        .hosted_zones()
        .iter()
        .filter(|z| z.name() == want)
        .cloned()
        .collect()
}

/// The zone's A records: name (no trailing dot) -> the one address.
async fn a_records(w: &World, side: &str, zone_id: &str) -> BTreeMap<String, Ipv4Addr> {
    let out = route53(w, side)
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await
        .unwrap();
    assert!(!out.is_truncated(), "the test zones are small");
    out.resource_record_sets()
        .iter()
        .filter(|s| s.r#type().as_str() == "A")
        .map(|s| {
            assert_eq!(s.resource_records().len(), 1, "{}", s.name());
            (
                s.name().trim_end_matches('.').to_string(),
                s.resource_records()[0].value().parse().unwrap(),
            )
        })
        .collect()
}

/// `real` on `side` as the other side reaches it, from the state's plan (what `vpclink map` uses).
fn mapped(state: &serde_json::Value, side: &str, real: Ipv4Addr) -> Ipv4Addr {
    let plan = &state["plan"][side];
    let cidrs = plan["cidrs"].as_array().unwrap();
    let maps = plan["mapped"].as_array().unwrap();
    for (c, m) in cidrs.iter().zip(maps) {
        let c: ipnet::Ipv4Net = c.as_str().unwrap().parse().unwrap();
        let m: ipnet::Ipv4Net = m.as_str().unwrap().parse().unwrap();
        if c.contains(&real) {
            let offset = u32::from(real) - u32::from(c.network());
            return Ipv4Addr::from(u32::from(m.network()) + offset);
        }
    }
    panic!("{real} is in no CIDR of {side}");
}

/// Every private address of every interface of the side's VPC, as EC2 reports them.
async fn vpc_addresses(w: &World, side: &str) -> Vec<(String, Ipv4Addr)> {
    tokio::time::sleep(settle()).await;
    let out = w
        .client(side)
        .describe_network_interfaces()
        .filters(localstack::filter("vpc-id", &w.side(side).vpc_id))
        .send()
        .await
        .unwrap();
    out.network_interfaces()
        .iter()
        .flat_map(|n| {
            n.private_ip_addresses().iter().map(move |a| {
                (
                    n.network_interface_id().unwrap().to_string(),
                    a.private_ip_address().unwrap().parse().unwrap(),
                )
            })
        })
        .collect()
}

fn ip_name(a: Ipv4Addr, zone: &str) -> String {
    let [x, y, z, t] = a.octets();
    format!("ip-{x}-{y}-{z}-{t}.{zone}")
}

fn zone_id(state: &serde_json::Value, side: &str) -> String {
    state[side]["names"]["zone_id"]
        .as_str()
        .unwrap_or_else(|| panic!("state has no {side} zone id: {}", state[side]))
        .to_string()
}

/// Both sides: one zone, private, associated with the side's own VPC; an ip- record for every address of the other
/// VPC at its mapped address, and nothing else of vpclink's at another address.
async fn assert_zones_match(w: &World) {
    let state = w.state();
    for (side, other) in [("east", "west"), ("west", "east")] {
        let found = zones(w, side).await;
        assert_eq!(
            found.len(),
            1,
            "{side}: exactly one zone {}",
            zone_name(w, side)
        );
        let id = zone_id(&state, side);
        assert!(found[0].id().ends_with(&id));
        let z = route53(w, side)
            .get_hosted_zone()
            .id(&id)
            .send()
            .await
            .unwrap();
        assert!(
            z.hosted_zone().unwrap().config().unwrap().private_zone(),
            "{side}: a private zone"
        );
        let vpcs: Vec<&str> = z.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
        assert_eq!(
            vpcs,
            vec![w.side(side).vpc_id.as_str()],
            "{side}: associated with its own VPC only"
        );

        let records = a_records(w, side, &id).await;
        let zone = zone_name(w, side);
        let addresses = vpc_addresses(w, other).await;
        assert!(!addresses.is_empty());
        for (eni, a) in &addresses {
            assert_eq!(
                records.get(&ip_name(*a, &zone)),
                Some(&mapped(&state, other, *a)),
                "{side} zone: {eni} {a}"
            );
        }
        let values: std::collections::BTreeSet<Ipv4Addr> = addresses
            .iter()
            .map(|(_, a)| mapped(&state, other, *a))
            .collect();
        for (name, v) in &records {
            assert!(
                values.contains(v),
                "{name} -> {v} names no interface of {other}"
            );
        }
    }
}

fn names_changes(sync: &serde_json::Value, side: &str) -> Vec<serde_json::Value> {
    sync[side]["changes"].as_array().unwrap().clone()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[tokio::test(flavor = "multi_thread")]
async fn zones_follow_interfaces_through_sync_status_sees_drift_and_down_removes_them() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;

    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0), "{}", stdout(&up));
    assert_zones_match(&w).await;
    let state = w.state();
    // A named record: the west tunnel host by its Name tag, at its primary address mapped.
    let west_tunnel_ip: Ipv4Addr = state["west"]["tunnel"]["private_ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let east_zone = zone_id(&state, "east");
    let records = a_records(&w, "east", &east_zone).await;
    // Its Name tag is vpclink-NAME-west-tunnel; the east side's zone holds the west side's names.
    let tunnel_name = format!("vpclink-{}-west-tunnel.{}", w.name, zone_name(&w, "east"));
    assert_eq!(
        records.get(&tunnel_name),
        Some(&mapped(&state, "west", west_tunnel_ip)),
        "{records:#?}"
    );

    // Nothing changed since up: in sync.
    let sync = w.run(&["sync", "--name", &w.name, "--json"]);
    assert_eq!(sync.status.code(), Some(0));
    let sync = json(&sync);
    assert!(
        names_changes(&sync, "east").is_empty() && names_changes(&sync, "west").is_empty(),
        "{sync}"
    );

    // An RDS-like interface appears in the west VPC (with a secondary address).
    let ec2 = w.client("west");
    let subnet = w.seed.west.private_subnets[0].clone();
    let eni = ec2
        .create_network_interface()
        .subnet_id(&subnet)
        .description("RDSNetworkInterface")
        .secondary_private_ip_address_count(1)
        .send()
        .await
        .unwrap()
        .network_interface
        .unwrap();
    let eni_id = eni.network_interface_id().unwrap().to_string();
    let new_addrs: Vec<Ipv4Addr> = eni
        .private_ip_addresses()
        .iter()
        .map(|a| a.private_ip_address().unwrap().parse().unwrap())
        .collect();
    assert_eq!(new_addrs.len(), 2, "primary and one secondary");
    tokio::time::sleep(settle()).await;

    let status = w.run(&["status", "--name", &w.name, "--json"]);
    assert_ne!(status.status.code(), Some(0), "drift is a finding");
    let status = json(&status);
    let item = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource"] == "names-zone" && i["side"] == "east")
        .unwrap_or_else(|| panic!("no east names item: {status}"))
        .clone();
    assert_eq!(item["health"], "drift", "{item}");
    assert!(
        item["detail"].as_str().unwrap().contains("4 to add"),
        "2 ip- names, rds-<eni> and rds: {item}"
    );
    let west_item = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource"] == "names-zone" && i["side"] == "west")
        .unwrap()
        .clone();
    assert_eq!(
        west_item["health"], "ok",
        "the east VPC did not change: {west_item}"
    );

    let sync = w.run(&["sync", "--name", &w.name, "--json"]);
    assert_eq!(sync.status.code(), Some(0));
    let sync = json(&sync);
    assert_eq!(names_changes(&sync, "east").len(), 4, "{sync}");
    assert!(names_changes(&sync, "west").is_empty());
    let records = a_records(&w, "east", &east_zone).await;
    let zone = zone_name(&w, "east");
    for a in &new_addrs {
        assert_eq!(
            records.get(&ip_name(*a, &zone)),
            Some(&mapped(&state, "west", *a))
        );
    }
    let suffix = eni_id.trim_start_matches("eni-");
    assert_eq!(
        records.get(&format!("rds-{suffix}.{zone}")),
        Some(&mapped(&state, "west", new_addrs[0]))
    );
    assert_eq!(
        records.get(&format!("rds.{zone}")),
        Some(&mapped(&state, "west", new_addrs[0]))
    );
    assert_zones_match(&w).await;

    // Idempotent: a second sync changes nothing, and status is clean for names.
    let again = json(&w.run(&["sync", "--name", &w.name, "--json"]));
    assert!(
        names_changes(&again, "east").is_empty() && names_changes(&again, "west").is_empty(),
        "{again}"
    );
    assert_eq!(a_records(&w, "east", &east_zone).await, records);

    // The interface goes: its records go.
    ec2.delete_network_interface()
        .network_interface_id(&eni_id)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(settle()).await;
    let sync = json(&w.run(&["sync", "--name", &w.name, "--json"]));
    let removed = names_changes(&sync, "east");
    assert_eq!(removed.len(), 4, "{sync}");
    assert!(removed.iter().all(|c| c["action"] == "delete"));
    let after = a_records(&w, "east", &east_zone).await;
    assert!(after.keys().all(|n| !n.starts_with("rds")), "{after:#?}");
    assert_zones_match(&w).await;

    let down = w.run(&["down", "--name", &w.name]);
    assert_eq!(down.status.code(), Some(0));
    for side in ["east", "west"] {
        assert!(
            zones(&w, side).await.is_empty(),
            "{side}: a zone is left after down"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn down_without_the_state_file_finds_the_zones_by_tag() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let up = w.up(&["--dns"]);
    assert_eq!(up.status.code(), Some(0));
    for side in ["east", "west"] {
        let found = zones(&w, side).await;
        assert_eq!(found.len(), 1);
        let tags = route53(&w, side)
            .list_tags_for_resource()
            .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
            .resource_id(found[0].id().trim_start_matches("/hostedzone/"))
            .send()
            .await
            .unwrap();
        let tags: BTreeMap<&str, &str> = tags
            .resource_tag_set()
            .unwrap()
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(tags.get("vpclink:link"), Some(&w.name.as_str()));
        assert_eq!(tags.get("vpclink:side"), Some(&side));
        assert_eq!(tags.get("vpclink:role"), Some(&"names"));
    }
    std::fs::remove_file(w.state_file()).unwrap();
    let down = w.down();
    assert_eq!(down.status.code(), Some(0));
    for side in ["east", "west"] {
        assert!(
            zones(&w, side).await.is_empty(),
            "{side}: a zone is left after down without state"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_lists_the_route53_calls_and_no_dns_makes_no_zone() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    // One interface per VPC already there: the dry run plans a record for each on the other side.
    for side in ["east", "west"] {
        w.client(side)
            .create_network_interface()
            .subnet_id(&w.side(side).private_subnets[0])
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(settle()).await;
    let dry = w.up(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    let out = stdout(&dry);
    for call in [
        "route53:CreateHostedZone",
        "route53:ChangeTagsForResource",
        "route53:ChangeResourceRecordSets",
    ] {
        assert_eq!(out.matches(call).count(), 2, "{call} once per side:\n{out}");
    }
    for side in ["east", "west"] {
        assert!(
            zones(&w, side).await.is_empty(),
            "--dry-run made a zone on {side}"
        );
    }

    let up = w.up(&["--no-dns"]);
    assert_eq!(up.status.code(), Some(0));
    let state = w.state();
    for side in ["east", "west"] {
        assert!(state[side].get("names").is_none(), "{}", state[side]);
        assert!(
            zones(&w, side).await.is_empty(),
            "--no-dns made a zone on {side}"
        );
    }
    let sync = w.run(&["sync", "--name", &w.name]);
    assert_eq!(
        sync.status.code(),
        Some(2),
        "sync on a link without names is refused"
    );
    assert!(localstack::stderr(&sync).contains("--no-dns"));
    // The choice is remembered: `up` again without a flag makes no zone; `up --dns` makes both.
    assert_eq!(w.up(&[]).status.code(), Some(0));
    for side in ["east", "west"] {
        assert!(
            zones(&w, side).await.is_empty(),
            "a remembered --no-dns made a zone on {side}"
        );
    }
    assert_eq!(w.up(&["--dns"]).status.code(), Some(0));
    assert_zones_match(&w).await;
    assert_eq!(
        w.state()["east"].get("no_names"),
        None,
        "--dns clears the choice"
    );
    let down = w.run(&["down", "--name", &w.name]);
    assert_eq!(down.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_crash_finds_its_zone_and_a_zone_deleted_by_hand_is_made_again() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let up = w.up(&[]);
    assert_eq!(up.status.code(), Some(0));
    let first = w.state();
    let east_zone = zone_id(&first, "east");

    // A crash between CreateHostedZone and recording its answer: the state holds the CallerReference, no id.
    let mut state = first.clone();
    state["east"]["names"]
        .as_object_mut()
        .unwrap()
        .remove("zone_id");
    std::fs::write(
        w.state_file(),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
    let again = w.up(&[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        zones(&w, "east").await.len(),
        1,
        "the retry made a second zone"
    );
    assert_eq!(
        zone_id(&w.state(), "east"),
        east_zone,
        "the retry found the zone it made"
    );
    assert_eq!(
        w.state()["east"]["names"]["caller_reference"],
        first["east"]["names"]["caller_reference"]
    );

    // The west zone deleted by hand (records first, as Route 53 requires): status says so, sync makes it again.
    let west_zone = zone_id(&first, "west");
    let r53 = route53(&w, "west");
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(&west_zone)
        .send()
        .await
        .unwrap();
    let deletes: Vec<_> = sets
        .resource_record_sets()
        .iter()
        .filter(|s| s.r#type().as_str() == "A")
        .map(|s| {
            aws_sdk_route53::types::Change::builder()
                .action(aws_sdk_route53::types::ChangeAction::Delete)
                .resource_record_set(s.clone())
                .build()
                .unwrap()
        })
        .collect();
    assert!(!deletes.is_empty());
    r53.change_resource_record_sets()
        .hosted_zone_id(&west_zone)
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .set_changes(Some(deletes))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    r53.delete_hosted_zone()
        .id(&west_zone)
        .send()
        .await
        .unwrap();
    let status = json(&w.run(&["status", "--name", &w.name, "--json"]));
    let west = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource"] == "names-zone" && i["side"] == "west")
        .unwrap()
        .clone();
    assert_eq!(west["health"], "drift");
    assert!(
        west["detail"].as_str().unwrap().contains("missing"),
        "{west}"
    );
    let sync = w.run(&["sync", "--name", &w.name]);
    assert_eq!(sync.status.code(), Some(0));
    assert_eq!(zones(&w, "west").await.len(), 1);
    assert_ne!(zone_id(&w.state(), "west"), west_zone, "a new zone");
    assert_ne!(
        w.state()["west"]["names"]["caller_reference"],
        first["west"]["names"]["caller_reference"],
        "a new zone gets a new CallerReference"
    );
    assert_zones_match(&w).await;
    assert_eq!(w.down().status.code(), Some(0));
    for side in ["east", "west"] {
        assert!(zones(&w, side).await.is_empty());
    }
}
