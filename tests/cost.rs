//! The cost table's prices: the AWS Price List path through the real aws-sdk-pricing client against recorded
//! GetProducts answers (tests/fixtures/pricing) served by a local HTTP server reached through the SDK's endpoint
//! override; the fallback to the built-in table when the API refuses, is unreachable or does not answer (bounded in
//! time); and `vpclink plan` end to end on LocalStack, which does not serve the Price List API.

mod localstack;

use localstack::{cli, SeedSpec, World};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use vpclink::cost::lookup::{Asker, LOOKUP_TIMEOUT};
use vpclink::cost::model::{CostInput, OptionKind, Source};
use vpclink::cost::{builtin, estimate, price_list, CostReport};
use vpclink::side::Side;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Answer from the fixtures.
    Fixtures,
    /// Refuse as AWS does without the permission.
    Denied,
    /// Accept the connection and never answer.
    Silent,
}

struct Server {
    url: String,
    /// Each request: its X-Amz-Target and its JSON body.
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pricing")
}

fn filter<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body["Filters"]
        .as_array()?
        .iter()
        .find(|f| f["Field"] == field && f["Type"] == "TERM_MATCH")
        .and_then(|f| f["Value"].as_str())
}

/// The fixture that answers a GetProducts request (see tests/fixtures/pricing/README.md), or None.
fn fixture_for(body: &Value) -> Option<PathBuf> {
    let f = |k| filter(body, k).unwrap_or("");
    let name = match (body["ServiceCode"].as_str()?, f("productFamily")) {
        ("AmazonEC2", "") => format!("ec2-instance-{}-{}", f("regionCode"), f("instanceType")),
        ("AmazonEC2", "Storage") => format!("ec2-gp3-{}", f("regionCode")),
        ("AmazonEC2", "NAT Gateway") => format!("ec2-nat-gateway-{}", f("regionCode")),
        ("AmazonVPC", _) => format!("vpc-{}", f("regionCode")),
        ("AWSDataTransfer", _) => format!("transfer-{}-{}", f("fromRegionCode"), f("toRegionCode")),
        _ => return None,
    };
    let name = match body["NextToken"].as_str() {
        Some(t) => format!("{name}.{t}.json"),
        None => format!("{name}.json"),
    };
    Some(fixtures().join(name)).filter(|p| p.exists())
}

fn respond(s: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn handle(mut s: TcpStream, b: Behaviour, requests: Arc<Mutex<Vec<(String, Value)>>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let (mut len, mut target) = (0usize, String::new());
    let mut first = String::new();
    if r.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "x-amz-target" => target = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    requests
        .lock()
        .unwrap()
        .push((target.clone(), body.clone()));
    match b {
        Behaviour::Silent => std::thread::sleep(Duration::from_secs(60)),
        Behaviour::Denied => respond(
            &mut s,
            "400 Bad Request",
            r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:iam::111122223333:user/ci is not authorized to perform: pricing:GetProducts"}"#,
        ),
        Behaviour::Fixtures
            if !first.starts_with("POST ") || target != "AWSPriceListService.GetProducts" =>
        {
            respond(
                &mut s,
                "400 Bad Request",
                r#"{"__type":"InvalidParameterException","Message":"not GetProducts"}"#,
            )
        }
        Behaviour::Fixtures => {
            let answer = match fixture_for(&body) {
                Some(p) => std::fs::read_to_string(p).unwrap(),
                None => r#"{"FormatVersion":"aws_v1","PriceList":[]}"#.to_string(),
            };
            respond(&mut s, "200 OK", &answer)
        }
    }
}

fn serve(b: Behaviour) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || handle(s, b, seen));
        }
    });
    Server { url, requests }
}

struct Servers {
    fixtures: Server,
    denied: Server,
    silent: Server,
    _dir: tempfile::TempDir,
}

/// The servers, and an AWS config with one profile per behaviour (plus one whose endpoint refuses connections),
/// made the process's config once: every test of this binary sees the same environment.
fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        let (fixtures, denied, silent) = (
            serve(Behaviour::Fixtures),
            serve(Behaviour::Denied),
            serve(Behaviour::Silent),
        );
        let refused = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::new();
        let mut creds = String::new();
        for (name, url) in [
            ("listed", &fixtures.url),
            ("denied", &denied.url),
            ("silent", &silent.url),
            ("refused", &refused),
        ] {
            config.push_str(&format!(
                "[profile {name}]\nregion = eu-west-1\nendpoint_url = {url}\n\n"
            ));
            creds.push_str(&format!(
                "[{name}]\naws_access_key_id = AKIDTEST\naws_secret_access_key = test\n\n"
            ));
        }
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("credentials"), creds).unwrap();
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                std::env::remove_var(k);
            }
        }
        std::env::set_var("AWS_CONFIG_FILE", dir.path().join("config"));
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("credentials"),
        );
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        Servers {
            fixtures,
            denied,
            silent,
            _dir: dir,
        }
    })
}

fn asker(side: Side, profile: &str) -> Asker {
    Asker {
        side,
        profile: profile.into(),
    }
}

fn input(gb: f64, ha: bool) -> CostInput {
    CostInput {
        east_region: "us-east-1".into(),
        west_region: "us-west-2".into(),
        instance_type: "t3.small".into(),
        traffic_gb: gb,
        ha,
    }
}

fn option(r: &CostReport, kind: OptionKind) -> &vpclink::cost::model::OptionCost {
    r.table.options.iter().find(|o| o.kind == kind).unwrap()
}

fn assert_all_builtin(r: &CostReport) {
    for o in &r.table.options {
        for l in &o.lines {
            assert!(
                l.source.is_none() || l.source == Some(Source::Builtin),
                "{}",
                l.what
            );
        }
    }
}

#[test]
fn the_documented_cli_example_answer_parses() {
    let answer: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("awscli-example-get-products.json")).unwrap(),
    )
    .unwrap();
    let docs: Vec<String> = answer["PriceList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let p = price_list::parse(&docs).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].usd, vec![0.138]);
    assert_eq!(p[0].attributes["usagetype"], "APS1-EBS:VolumeUsage.piops");
}

#[tokio::test(flavor = "multi_thread")]
async fn prices_come_from_the_price_list_through_the_sdk() {
    let s = servers();
    let before = s.fixtures.requests.lock().unwrap().len();
    let r = estimate(&[asker(Side::East, "listed")], &input(100.0, false)).await;
    assert_eq!(r.prices.price_list_profile.as_deref(), Some("listed"));
    assert_eq!(r.prices.price_list_error, None);
    assert!(
        r.table.notes[0].contains("AWS Price List API"),
        "{:?}",
        r.table.notes
    );
    // Every price the fixtures hold came from them; only the attachment NAT is unpriced, and the CloudWatch and
    // Route 53 lines (never asked of the Price List) come from the built-in table.
    let operations = |what: &str| {
        ["CloudWatch", "PutMetricData", "Route 53"]
            .iter()
            .any(|w| what.contains(w))
    };
    for o in &r.table.options {
        for l in &o.lines {
            match l.source {
                Some(src) if operations(&l.what) => assert_eq!(src, Source::Builtin, "{}", l.what),
                Some(src) => assert_eq!(src, Source::PriceList, "{}", l.what),
                None => assert!(l.what.contains("1:1 NAT"), "{}", l.what),
            }
        }
    }
    // The fixtures' prices: t3.small 0.0208/h, IPv4 0.005/h, gp3 0.08/GB-month, out of each region 0.02/GB; the
    // table's: 15 metrics at 0.30, 43.8 thousand requests at 0.01, an alarm at 0.10 and a zone at 0.50 per side.
    let v = option(&r, OptionKind::Vpclink);
    let want = 2.0 * (730.0 * 0.0208 + 730.0 * 0.005 + 8.0 * 0.08)
        + 100.0 * 0.02
        + 2.0 * (15.0 * 0.30 + 43.8 * 0.01 + 0.10 + 0.50);
    assert!(
        (v.total_usd - want).abs() < 1e-9,
        "{} vs {want}",
        v.total_usd
    );
    // TGW: two attachments per region at 0.05/h, 0.02/GB processed, transfer 0.02/GB; NAT 0.045/h and /GB.
    let tgw = 2.0 * 2.0 * 730.0 * 0.05 + 100.0 * 0.02 + 100.0 * 0.02;
    let t = option(&r, OptionKind::TransitGatewayAttachmentNat);
    assert!((t.total_usd - tgw).abs() < 1e-9, "{} vs {tgw}", t.total_usd);
    assert_eq!(t.not_priced.len(), 2);
    let n = option(&r, OptionKind::PrivateNatGatewayTransitGateway);
    let nat = tgw + 2.0 * 730.0 * 0.045 + 100.0 * 0.045;
    assert!((n.total_usd - nat).abs() < 1e-9, "{} vs {nat}", n.total_usd);

    // What went over the wire: JSON 1.1 GetProducts, the documented filters, the VPC answer's second page.
    let reqs: Vec<(String, Value)> = s.fixtures.requests.lock().unwrap()[before..].to_vec();
    assert!(reqs
        .iter()
        .all(|(t, _)| t == "AWSPriceListService.GetProducts"));
    let instance = reqs
        .iter()
        .find(|(_, b)| {
            filter(b, "instanceType").is_some() && filter(b, "regionCode") == Some("us-west-2")
        })
        .expect("an instance query for us-west-2");
    for (k, v) in [
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
        ("preInstalledSw", "NA"),
        ("capacitystatus", "Used"),
    ] {
        assert_eq!(filter(&instance.1, k), Some(v));
    }
    assert_eq!(instance.1["ServiceCode"], "AmazonEC2");
    assert!(reqs
        .iter()
        .any(|(_, b)| b["ServiceCode"] == "AmazonVPC" && b["NextToken"] == "page2"));
}

/// One region: one set of queries, and what the Price List does not answer (here: no recorded answer for transfer
/// between public addresses inside us-east-1) comes from the built-in table, said so; nothing else does.
#[tokio::test(flavor = "multi_thread")]
async fn one_region_asks_once_and_fills_only_what_is_missing() {
    let s = servers();
    let before = s.fixtures.requests.lock().unwrap().len();
    let mut i = input(100.0, false);
    i.west_region = "us-east-1".into();
    let r = estimate(&[asker(Side::East, "listed")], &i).await;
    let reqs = s.fixtures.requests.lock().unwrap()[before..].to_vec();
    assert!(reqs
        .iter()
        .all(|(_, b)| filter(b, "regionCode").unwrap_or("us-east-1") == "us-east-1"));
    assert_eq!(
        reqs.iter()
            .filter(|(_, b)| filter(b, "instanceType").is_some())
            .count(),
        1
    );
    let filled: Vec<&String> = r
        .table
        .notes
        .iter()
        .filter(|n| n.contains("not in the Price List answer"))
        .collect();
    assert_eq!(filled.len(), 1, "{:?}", r.table.notes);
    assert!(
        filled[0].contains("for us-east-1, taken from the built-in table")
            && filled[0].ends_with(
                ": regional transfer, CloudWatch metric, CloudWatch requests, CloudWatch alarm, Route 53 zone"
            ),
        "{}",
        filled[0]
    );
    let v = option(&r, OptionKind::Vpclink);
    for l in &v.lines {
        let want = if l.what.starts_with("traffic between public")
            || ["CloudWatch", "PutMetricData", "Route 53"]
                .iter()
                .any(|w| l.what.contains(w))
        {
            Source::Builtin
        } else {
            Source::PriceList
        };
        assert_eq!(l.source, Some(want), "{}", l.what);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_permission_falls_back_to_the_dated_table_and_says_why() {
    let s = servers();
    let r = estimate(&[asker(Side::East, "denied")], &input(100.0, true)).await;
    assert!(s
        .denied
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|(t, _)| t == "AWSPriceListService.GetProducts"));
    assert_eq!(r.prices.price_list_profile, None);
    let why = r.prices.price_list_error.clone().unwrap();
    assert!(
        why.contains(
            "pricing:GetProducts failed on the east profile denied: AccessDeniedException"
        ),
        "{why}"
    );
    assert!(r.table.notes[0].contains(builtin::AS_OF) && r.table.notes[0].contains(&why));
    assert_all_builtin(&r);
    // Still a full table: hosts, addresses and transfer priced from the table.
    let v = option(&r, OptionKind::Vpclink);
    assert!(v.not_priced.is_empty() && v.total_usd > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_west_profile_is_asked_when_the_east_one_may_not() {
    servers();
    let r = estimate(
        &[asker(Side::East, "denied"), asker(Side::West, "listed")],
        &input(10.0, false),
    )
    .await;
    assert_eq!(r.prices.price_list_profile.as_deref(), Some("listed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_or_absent_endpoint_never_holds_plan_up() {
    let s = servers();
    for profile in ["silent", "refused"] {
        let start = Instant::now();
        let r = estimate(&[asker(Side::East, profile)], &input(100.0, false)).await;
        let took = start.elapsed();
        assert!(
            took < LOOKUP_TIMEOUT + Duration::from_secs(2),
            "{profile}: {took:?}"
        );
        assert_eq!(r.prices.price_list_profile, None, "{profile}");
        assert!(r.prices.price_list_error.is_some(), "{profile}");
        assert_all_builtin(&r);
    }
    assert!(
        !s.silent.requests.lock().unwrap().is_empty(),
        "the silent endpoint was asked"
    );
}

// ---------------------------------------------------------------- `vpclink plan` end to end on LocalStack

fn plan(w: &World, extra: &[&str], pricing: Option<&str>) -> std::process::Output {
    let mut args = vec!["plan", "--east", "east", "--west", "west"];
    args.extend_from_slice(extra);
    let mut c = w.command(&args);
    if let Some(url) = pricing {
        c.env("AWS_ENDPOINT_URL_PRICING", url);
    }
    cli::run(c, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_and_carries_the_cost_table() {
    let url = localstack_or_skip!();
    let s = servers();
    let w = World::new(&url, SeedSpec::default()).await;

    // The Price List (recorded answers), through the service-specific endpoint variable.
    let out = plan(
        &w,
        &["--json", "--traffic", "250", "--ha"],
        Some(&s.fixtures.url),
    );
    assert_eq!(out.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["east"]["cidrs"].is_array(), "the plan's own fields stay");
    let cost = &j["cost"];
    assert_eq!(cost["prices"]["price_list_profile"], "east");
    assert_eq!(cost["traffic_gb"], 250.0);
    assert_eq!(cost["ha"], true);
    let options = cost["options"].as_array().unwrap();
    assert_eq!(options.len(), 3);
    let hosts: f64 = options[0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["what"].as_str().unwrap().contains("tunnel hosts"))
        .map(|l| l["quantity"].as_f64().unwrap())
        .sum();
    assert_eq!(hosts, 4.0 * 730.0, "--ha: two tunnel hosts per side");

    // Human output: the table after the real -> mapped table, every option and note.
    let out = plan(&w, &[], Some(&s.fixtures.url));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let mapped_at = text.find("reaches it at").expect("the mapped table");
    let cost_at = text
        .find("cost a month for 100 GB")
        .expect("the cost table");
    assert!(cost_at > mapped_at);
    for name in [
        "vpclink",
        "transit gateway + attachment NAT",
        "private NAT gateway + transit gateway (source NAT only)",
        "note: prices from the AWS Price List API",
        "not priced",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }

    // LocalStack does not serve the Price List: the built-in table, dated, and why.
    let out = plan(&w, &["--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["cost"]["prices"]["price_list_profile"], Value::Null);
    assert!(j["cost"]["prices"]["price_list_error"]
        .as_str()
        .unwrap()
        .contains("pricing:GetProducts failed on the east profile east"));
    assert!(j["cost"]["notes"][0]
        .as_str()
        .unwrap()
        .contains(&format!("built-in table written {}", builtin::AS_OF)));

    // --no-cost: no lookup, no table.
    let fresh = serve(Behaviour::Fixtures);
    let out = plan(&w, &["--json", "--no-cost"], Some(&fresh.url));
    assert_eq!(out.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j.get("cost").is_none());
    assert!(fresh.requests.lock().unwrap().is_empty());
}

#[test]
fn traffic_must_be_a_number_of_gb() {
    for bad in ["-1", "lots", "NaN", "inf"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vpclink"))
            .args([
                "plan",
                "--east",
                "e",
                "--west",
                "w",
                &format!("--traffic={bad}"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("use a number of GB, 0 or more"),
            "{bad}"
        );
    }
}
