//! Exit codes mean what the README says: 0 success, 1 failure at run time, 2 bad usage or input (nothing created).
//! The settings are checked by running the binary (they are read once at start-up); the choice of code for each kind
//! of error is a table over error values (pure, no AWS).

mod cli;

use std::path::Path;

/// A valid state for link "lnk" (10.0.0.0/16 on both sides, mapped at 10.1.0.0/16 and 10.2.0.0/16).
fn write_state(state_dir: &Path) {
    let side = |s: &str, mapped: &str| {
        format!(
            r#"{{"profile": "p-{s}", "region": "eu-west-1", "account": "111111111111", "vpc_id": "vpc-{s}",
                "cidrs": ["10.0.0.0/16"], "mapped": ["{mapped}"], "route_tables": ["rtb-{s}"]}}"#
        )
    };
    let text = format!(
        r#"{{"schema": 1, "name": "lnk",
            "plan": {{"name": "lnk", "overlapping": true, "east": {}, "west": {}}},
            "options": {{"os": "al2023", "instance_type": "t3.micro", "test_hosts": false}},
            "east": {{}}, "west": {{}}}}"#,
        side("east", "10.1.0.0/16"),
        side("west", "10.2.0.0/16")
    );
    std::fs::create_dir_all(state_dir.join("vpclink")).unwrap();
    std::fs::write(state_dir.join("vpclink/lnk.json"), text).unwrap();
}

fn map_with(env: &[(&str, &str)]) -> std::process::Output {
    let tmp = tempfile::tempdir().unwrap();
    write_state(tmp.path());
    let args = ["map", "--name", "lnk", "10.0.1.20"];
    let mut c = cli::command(tmp.path(), tmp.path(), &args);
    for (k, v) in env {
        c.env(k, v);
    }
    cli::run(c, &args)
}

#[test]
fn good_settings_and_none_are_accepted() {
    assert_eq!(map_with(&[]).status.code(), Some(0));
    let ok = map_with(&[
        ("VPCLINK_ELASTIC_IP_QUOTA", "10"),
        ("VPCLINK_ROUTES_PER_TABLE", "100"),
        ("VPCLINK_FAULT_AT", "3"),
    ]);
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn bad_settings_are_refused_with_exit_2_naming_the_variable_and_what_it_expects() {
    for (var, value) in [
        ("VPCLINK_ELASTIC_IP_QUOTA", "abc"),
        ("VPCLINK_ELASTIC_IP_QUOTA", "0"),
        ("VPCLINK_ROUTES_PER_TABLE", "-1"),
        ("VPCLINK_ROUTES_PER_TABLE", "50 "),
        ("VPCLINK_FAULT_AT", "x"),
        ("VPCLINK_FAULT_AT", "0"),
    ] {
        let out = map_with(&[(var, value)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(var), "{var}={value}: {err}");
        assert!(err.contains("whole number"), "{var}={value}: {err}");
        assert!(out.stdout.is_empty(), "{var}={value}: nothing is done");
    }
}

// ---- which code for which error: a table over error values (pure, no AWS) ------------------------------------

use vpclink::aws::{AwsError, ConnectError};
use vpclink::discover::DiscoverError;
use vpclink::error::{EXIT_RUNTIME as RUN, EXIT_USAGE as USAGE};
use vpclink::side::Side;
use vpclink::Error;

fn aws(action: &'static str, code: Option<&str>) -> AwsError {
    AwsError {
        side: Side::West,
        profile: "partner".into(),
        action,
        resource: "vpc-1".into(),
        code: code.map(str::to_string),
        message: "message".into(),
    }
}

fn sts(code: Option<&str>) -> Error {
    Error::from(ConnectError::Identity(aws("sts:GetCallerIdentity", code)))
}

fn discovery(code: Option<&str>) -> Error {
    Error::Discover(DiscoverError::Aws(aws("ec2:DescribeVpcs", code)))
}

#[test]
fn connect_discovery_and_route_errors_exit_by_kind() {
    let collision = vpclink::provision::route::Collision {
        route_table_id: "rtb-1".into(),
        destination: "10.2.0.0/16".parse().unwrap(),
        target: "pcx-1".into(),
    };
    let table: Vec<(&str, Error, i32)> = vec![
        // STS: credentials that do not work are the user's to fix; no answer, throttling, 5xx are run time.
        (
            "sts InvalidClientTokenId",
            sts(Some("InvalidClientTokenId")),
            USAGE,
        ),
        ("sts AuthFailure", sts(Some("AuthFailure")), USAGE),
        ("sts ExpiredToken", sts(Some("ExpiredToken")), USAGE),
        (
            "sts SignatureDoesNotMatch",
            sts(Some("SignatureDoesNotMatch")),
            USAGE,
        ),
        ("sts Throttling", sts(Some("Throttling")), RUN),
        (
            "sts InternalFailure (5xx)",
            sts(Some("InternalFailure")),
            RUN,
        ),
        (
            "sts ServiceUnavailable (5xx)",
            sts(Some("ServiceUnavailable")),
            RUN,
        ),
        ("sts no answer (dispatch/timeout)", sts(None), RUN),
        (
            "unknown profile",
            Error::from(ConnectError::UnknownProfile {
                side: Side::East,
                profile: "nope".into(),
                files: "~/.aws/config".into(),
            }),
            USAGE,
        ),
        (
            "no region",
            Error::from(ConnectError::NoRegion {
                side: Side::East,
                profile: "p".into(),
            }),
            USAGE,
        ),
        // Discovery: what the user must fix (input, permission) is 2; reads that failed for now are 1.
        (
            "discovery UnauthorizedOperation",
            discovery(Some("UnauthorizedOperation")),
            USAGE,
        ),
        (
            "discovery AccessDenied",
            discovery(Some("AccessDenied")),
            USAGE,
        ),
        (
            "discovery InvalidVpcID.NotFound",
            discovery(Some("InvalidVpcID.NotFound")),
            USAGE,
        ),
        (
            "discovery InvalidParameterValue",
            discovery(Some("InvalidParameterValue")),
            USAGE,
        ),
        (
            "discovery AuthFailure",
            discovery(Some("AuthFailure")),
            USAGE,
        ),
        (
            "discovery RequestLimitExceeded",
            discovery(Some("RequestLimitExceeded")),
            RUN,
        ),
        (
            "discovery InternalError (5xx)",
            discovery(Some("InternalError")),
            RUN,
        ),
        (
            "discovery Unavailable (5xx)",
            discovery(Some("Unavailable")),
            RUN,
        ),
        ("discovery no answer", discovery(None), RUN),
        (
            "discovery: no such VPC",
            Error::Discover(DiscoverError::VpcNotFound {
                side: Side::East,
                profile: "p".into(),
                region: "r".into(),
                id: "vpc-9".into(),
            }),
            USAGE,
        ),
        (
            "discovery: no VPC",
            Error::Discover(DiscoverError::NoVpc {
                side: Side::East,
                profile: "p".into(),
                region: "r".into(),
            }),
            USAGE,
        ),
        // After creating: any AWS failure is run time (re-running resumes), whatever its code.
        (
            "create, throttled",
            Error::Aws(aws("ec2:CreateRoute", Some("RequestLimitExceeded"))),
            RUN,
        ),
        (
            "create, denied",
            Error::Aws(aws("ec2:CreateRoute", Some("UnauthorizedOperation"))),
            RUN,
        ),
        (
            "create, bad parameter",
            Error::Aws(aws("ec2:CreateRoute", Some("InvalidParameterValue"))),
            RUN,
        ),
        // A route collision found while creating routes (after the hosts were made) is run time.
        (
            "route collision after creating",
            vpclink::provision::route::collision_error(Side::East, &[collision]),
            RUN,
        ),
        ("bad input", Error::Input("x".into()), USAGE),
        ("run time", Error::Runtime("x".into()), RUN),
        (
            "verify failed",
            Error::ChecksFailed {
                failed: 1,
                total: 9,
            },
            RUN,
        ),
    ];
    let wrong: Vec<String> = table
        .iter()
        .filter(|(_, e, code)| e.exit_code() != *code)
        .map(|(what, e, code)| format!("{what}: exit {} (want {code}): {e}", e.exit_code()))
        .collect();
    assert!(wrong.is_empty(), "wrong exit codes:\n{}", wrong.join("\n"));
}

#[test]
fn both_sides_and_preflight_exit_by_kind() {
    use vpclink::error::Problem;
    let throttled = || discovery(Some("RequestLimitExceeded"));
    let denied = || discovery(Some("UnauthorizedOperation"));
    let no_vpc = || {
        Error::Discover(DiscoverError::NoVpc {
            side: Side::East,
            profile: "p".into(),
            region: "r".into(),
        })
    };
    let both = |e: Error, w: Error| Error::both::<(), ()>(Err(e), Err(w)).unwrap_err();
    let t = |c: &str| Problem::Aws(aws("ec2:DescribeAddresses", Some(c)));
    let table: Vec<(&str, Error, i32)> = vec![
        ("both sides throttled", both(throttled(), throttled()), RUN),
        (
            "both sides: no answer and throttled",
            both(discovery(None), throttled()),
            RUN,
        ),
        (
            "both sides: throttled and no VPC",
            both(throttled(), no_vpc()),
            USAGE,
        ),
        (
            "both sides: denied and throttled",
            both(denied(), throttled()),
            USAGE,
        ),
        ("both sides: no VPC", both(no_vpc(), no_vpc()), USAGE),
        (
            "both sides STS throttled",
            both(sts(Some("Throttling")), sts(None)),
            RUN,
        ),
        (
            "both sides STS bad token",
            both(sts(Some("InvalidClientTokenId")), sts(None)),
            USAGE,
        ),
        (
            "preflight: reads throttled, 5xx, no answer",
            Error::Preflight(vec![
                t("RequestLimitExceeded"),
                t("InternalError"),
                Problem::Aws(aws("ec2:DescribeAddresses", None)),
            ]),
            RUN,
        ),
        (
            "preflight: permission denied",
            Error::Preflight(vec![t("UnauthorizedOperation")]),
            USAGE,
        ),
        (
            "preflight: denied and throttled",
            Error::Preflight(vec![t("UnauthorizedOperation"), t("Throttling")]),
            USAGE,
        ),
        (
            "preflight: a quota",
            Error::Preflight(vec![Problem::from(
                "Elastic IP quota too small".to_string(),
            )]),
            USAGE,
        ),
        (
            "preflight: a quota and a throttled read",
            Error::Preflight(vec![
                Problem::from("route table full".to_string()),
                t("Throttling"),
            ]),
            USAGE,
        ),
    ];
    let wrong: Vec<String> = table
        .iter()
        .filter(|(_, e, code)| e.exit_code() != *code)
        .map(|(what, e, code)| format!("{what}: exit {} (want {code}): {e}", e.exit_code()))
        .collect();
    assert!(wrong.is_empty(), "wrong exit codes:\n{}", wrong.join("\n"));
    // Both sides' messages are kept, east first.
    let msg = both(no_vpc(), throttled()).to_string();
    assert!(
        msg.contains("no VPC at all") && msg.contains("RequestLimitExceeded"),
        "{msg}"
    );
    assert!(Error::preflight(Vec::new()).is_none());
}
