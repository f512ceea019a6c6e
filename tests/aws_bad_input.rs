//! The bad-input table: each case exits 2 with a message that names the problem, and creates nothing (counted
//! through the EC2 API, and no state file).

mod localstack;

use localstack::{count, stderr, Counts, SeedSpec, World};

async fn assert_refused(w: &World, args: &[&str], says: &str) {
    let before = (count(w, "east").await, count(w, "west").await);
    let out = w.run(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2 for {args:?}: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(says),
        "stderr of {args:?} says {says:?}: {}",
        stderr(&out)
    );
    assert_eq!(
        (count(w, "east").await, count(w, "west").await),
        before,
        "nothing created by {args:?}"
    );
}

async fn assert_refused_fresh(w: &World, extra: &[&str], says: &str) {
    assert_refused(w, &w.up_args(extra), says).await;
    assert!(!w.state_file().exists(), "no state written");
    for side in ["east", "west"] {
        assert_eq!(count(w, side).await, Counts::default());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_profile_and_missing_vpc() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let args = [
        "up",
        "--east",
        "nosuch",
        "--west",
        "west",
        "--no-configure",
        "--ssh-cidr",
        "203.0.113.0/24",
    ];
    assert_refused(&w, &args, "profile 'nosuch' is not defined").await;
    assert_refused_fresh(
        &w,
        &["--east-vpc", "vpc-0123456789abcdef0"],
        "VPC vpc-0123456789abcdef0 not found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_public_subnet() {
    let url = localstack_or_skip!();
    let w = World::new(
        &url,
        SeedSpec {
            east_public: false,
            ..SeedSpec::default()
        },
    )
    .await;
    assert_refused_fresh(&w, &[], "east side: VPC").await;
    assert_refused_fresh(&w, &[], "no public subnet").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_overlap_is_refused_unless_asked_for() {
    let url = localstack_or_skip!();
    let w = World::new(
        &url,
        SeedSpec {
            west_cidr: "10.20.0.0/16",
            east_secondary: None,
            ..SeedSpec::default()
        },
    )
    .await;
    assert_refused_fresh(&w, &[], "do not overlap").await;
    let out = w.up(&["--allow-disjoint", "--no-test-hosts"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--allow-disjoint links them anyway"
    );
    assert_eq!(w.down().status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_room_for_a_mapped_range() {
    let url = localstack_or_skip!();
    // Routes covering every pool the planner draws from.
    let spec = SeedSpec {
        east_extra_routes: vec![
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
        ],
        ..SeedSpec::default()
    };
    let w = World::new(&url, spec).await;
    assert_refused_fresh(&w, &[], "no free /16").await;
    // An override that collides is refused the same way.
    let w2 = World::new(&url, SeedSpec::default()).await;
    assert_refused_fresh(
        &w2,
        &["--east-map", "10.0.0.0/16", "--east-map", "10.9.0.0/16"],
        "collides with",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_route_for_a_mapped_range_is_never_overwritten() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    assert_eq!(w.up(&["--no-test-hosts"]).status.code(), Some(0));
    // Someone points one of our destinations elsewhere.
    let state = w.state();
    let dest = state["plan"]["west"]["mapped"][0]
        .as_str()
        .unwrap()
        .to_string();
    let table = w.seed.east.route_tables[1].clone();
    let east = w.client("east");
    east.delete_route()
        .route_table_id(&table)
        .destination_cidr_block(&dest)
        .send()
        .await
        .unwrap();
    east.create_route()
        .route_table_id(&table)
        .destination_cidr_block(&dest)
        .gateway_id(&w.seed.east.igw)
        .send()
        .await
        .unwrap();
    assert_refused(
        &w,
        &w.up_args(&["--no-test-hosts"]),
        &format!(
            "route collision: {table} already routes {dest} to {}",
            w.seed.east.igw
        ),
    )
    .await;
    // down removes ours and leaves theirs.
    assert_eq!(w.down().status.code(), Some(0));
    let routes = east
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await
        .unwrap();
    let theirs = routes.route_tables()[0]
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some(dest.as_str()));
    assert_eq!(
        theirs.and_then(|r| r.gateway_id()),
        Some(w.seed.east.igw.as_str()),
        "the foreign route is untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn elastic_ip_quota_exhausted() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let east = w.client("east");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            east.allocate_address()
                .domain(aws_sdk_ec2::types::DomainType::Vpc)
                .send()
                .await
                .unwrap()
                .allocation_id
                .unwrap(),
        );
    }
    assert_refused_fresh(&w, &[], "Elastic IP quota too small in account").await;
    for a in held {
        east.release_address()
            .allocation_id(a)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn several_candidate_vpcs_are_listed() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    let extra = w
        .client("east")
        .create_vpc()
        .cidr_block("10.30.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    assert_refused_fresh(&w, &[], "2 VPCs could be meant").await;
    assert_refused_fresh(&w, &[], &extra).await;
    assert_refused_fresh(&w, &[], "pick one with --east-vpc").await;
    // Naming one resolves it.
    let vpc = w.seed.east.vpc_id.clone();
    let plan = w.run(&[
        "plan",
        "--east",
        "east",
        "--west",
        "west",
        "--east-vpc",
        &vpc,
        "--json",
    ]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_ami_stops_preflight() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    // LocalStack has no Ubuntu SSM parameter: preflight must say so before creating anything.
    assert_refused_fresh(&w, &["--os", "ubuntu2404"], "no AMI").await;
    assert_refused_fresh(
        &w,
        &["--os", "ubuntu2404"],
        "/aws/service/canonical/ubuntu/server/24.04",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mapped_ranges_of_an_existing_link_cannot_change() {
    let url = localstack_or_skip!();
    let w = World::new(&url, SeedSpec::default()).await;
    assert_eq!(w.up(&["--no-test-hosts"]).status.code(), Some(0));
    assert_refused(
        &w,
        &w.up_args(&["--no-test-hosts", "--west-map", "172.31.0.0/16"]),
        "mapped ranges cannot change",
    )
    .await;
    assert_eq!(w.down().status.code(), Some(0));
}
