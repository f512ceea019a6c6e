//! The tunnel hosts' metrics agent (src/render/metrics_agent.py).
//!
//! 1. Its pure layer's unit tests (tests/metrics_agent/test_parsers.py), run with the machine's python3: a missing
//!    python3 fails the test, it never skips.
//! 2. The whole agent against LocalStack, as on a host: `--sample` stands in for the commands, credentials come from
//!    a fake IMDSv2 on loopback through boto3's default chain (AWS_EC2_METADATA_SERVICE_ENDPOINT), the datums go to
//!    LocalStack's CloudWatch and are read back through the SDK (ListMetrics, GetMetricData) by Link and Side.

mod localstack;

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn parser_unit_tests_pass() {
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-v",
            "-s",
            "tests/metrics_agent",
        ])
        .current_dir(repo())
        // No __pycache__ beside the agent in src/render.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for the metrics agent's tests: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python unit tests failed:\n{err}");
    // A discovery that found nothing also exits 0: make sure the tests ran.
    let ran = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(ran >= 10, "only {ran} python tests ran:\n{err}");
}

/// The moto venv's python (it has boto3): the machine's python3 may not. Same installer as tests/aws_iam_moto.rs.
fn python_with_boto3() -> PathBuf {
    if let Some(p) = std::env::var_os("VPCLINK_MOTO_SERVER") {
        return PathBuf::from(p).with_file_name("python");
    }
    let out = Command::new(repo().join("tests/moto/install"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/moto/install");
    assert!(out.status.success(), "tests/moto/install failed");
    let server = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let python = server.with_file_name("python");
    assert!(python.is_file(), "no python beside {}", server.display());
    python
}

const TOKEN: &str = "vpclink-test-imds-token";
const ROLE: &str = "vpclink-mt-east-host";

/// What the fake IMDS saw: (method, path, token header present and right, status answered).
type Seen = Arc<Mutex<Vec<(String, String, bool, u16)>>>;

/// A fake instance metadata service with IMDSv2 required ("HttpTokens: required"): PUT /latest/api/token with a
/// TTL header gives a session token; a GET without that token is refused with 401 Unauthorized, as the EC2 User
/// Guide ("Access instance metadata for an EC2 instance",
/// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html) says IMDSv2-only instances
/// answer. The role's credentials are the JSON that /latest/meta-data/iam/security-credentials/ROLE returns.
fn fake_imds(access_key: String) -> (String, Seen) {
    fake_imds_role_after(access_key, 0)
}

/// The same, but the first `missing` asks for the role's name are answered 404 Not Found: an instance whose profile
/// was associated a moment ago (AssociateIamInstanceProfile on an older link) has no credentials yet.
fn fake_imds_role_after(access_key: String, missing: usize) -> (String, Seen) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the fake IMDS");
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut asked = 0;
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &access_key, &log, &mut asked, missing);
        }
    });
    (url, seen)
}

fn answer(
    stream: TcpStream,
    access_key: &str,
    log: &Seen,
    asked: &mut usize,
    missing: usize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if let Some(n) = headers
        .get("content-length")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
    }
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let token_ok = headers.get("x-aws-ec2-metadata-token").map(String::as_str) == Some(TOKEN);
    let creds_path = format!("/latest/meta-data/iam/security-credentials/{ROLE}");
    let (status, body) = match (method, path) {
        ("PUT", "/latest/api/token")
            if headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") =>
        {
            (200, TOKEN.to_string())
        }
        ("PUT", "/latest/api/token") => (400, "Missing or Invalid Parameters".into()),
        ("GET", _) if !token_ok => (401, "Unauthorized".into()),
        ("GET", "/latest/meta-data/iam/security-credentials/") => {
            *asked += 1;
            if *asked <= missing {
                (404, "Not Found".into())
            } else {
                (200, ROLE.to_string())
            }
        }
        ("GET", p) if p == creds_path => {
            let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(6 * 3600);
            let expires = aws_smithy_types::DateTime::from(expires)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap();
            let body = serde_json::json!({
                "Code": "Success",
                "LastUpdated": "2026-01-01T00:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": access_key,
                "SecretAccessKey": "test",
                "Token": "vpclink-test-session-token",
                "Expiration": expires,
            });
            (200, body.to_string())
        }
        _ => (404, "Not Found".into()),
    };
    log.lock()
        .unwrap()
        .push((method.to_string(), path.to_string(), token_ok, status));
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut s = stream;
    write!(
        s,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

/// A raw GET without a token, as IMDSv1 would send it.
fn get_without_token(imds: &str, path: &str) -> String {
    let hostport = imds.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn agent_config(dir: &Path, link: &str, endpoint: &str) -> PathBuf {
    let path = dir.join(format!("{link}.json"));
    let cfg = serde_json::json!({
        "link": link, "side": "east", "region": "eu-west-1", "namespace": "vpclink", "endpoint_url": endpoint,
        "gre_dev": "vpclink-gre", "peer_inner": "169.254.248.2", "uplink": "ens5", "conn": format!("vpclink-{link}"),
        "interval_s": 60,
    });
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn ip_link(rx: (u64, u64), tx: (u64, u64)) -> String {
    serde_json::json!([{
        "ifindex": 7, "ifname": "vpclink-gre", "flags": ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"], "mtu": 1400,
        "operstate": "UNKNOWN", "link_type": "gre",
        "stats64": {"rx": {"bytes": rx.0, "packets": rx.1, "errors": 0, "dropped": 0},
                    "tx": {"bytes": tx.0, "packets": tx.1, "errors": 0, "dropped": 0}}
    }])
    .to_string()
}

fn ethtool_ena(bw_out: u64, pps: u64) -> String {
    format!(
        "NIC statistics:\n     tx_timeout: 0\n     bw_in_allowance_exceeded: 0\n     bw_out_allowance_exceeded: {bw_out}\n     pps_allowance_exceeded: {pps}\n     conntrack_allowance_exceeded: 0\n     linklocal_allowance_exceeded: 0\n"
    )
}

/// One cycle's command outputs, in the formats the host prints (libreswan 5 here; 4 in the python tests).
fn reading(link: &str, ip: String, ethtool: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "ip_link": ip,
        "showstates": format!("#1: \"vpclink-{link}\":4500 ESTABLISHED_IKE_SA (established IKE SA); REKEY in 10219s; newest; idle;\n#2: \"vpclink-{link}\":4500 ESTABLISHED_CHILD_SA (established Child SA); REKEY in 10284s; newest; eroute owner; IKE SA #1; idle;\n"),
        "trafficstatus": format!("#2: \"vpclink-{link}\", type=ESP, add_time=1790967726, inBytes=46572, outBytes=15037832, maxBytes=2^63B, id='@west'\n"),
        "ping": "--- 169.254.248.2 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 2003ms\nrtt min/avg/max/mdev = 1.200/1.500/1.800/0.245 ms\n",
        "conntrack_count": "512\n",
        "conntrack_max": "262144\n",
        "ethtool": ethtool,
    })
}

/// Run the agent as a host would, but with no credentials anywhere except the fake IMDS.
fn run_agent(
    python: &Path,
    dir: &Path,
    cfg: &Path,
    sample: &serde_json::Value,
    once: bool,
    imds: &str,
) -> Output {
    let sample_path = cfg.with_extension("sample.json");
    std::fs::write(&sample_path, sample.to_string()).unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("src/render/metrics_agent.py"))
        .arg("--config")
        .arg(cfg)
        .arg("--sample")
        .arg(&sample_path);
    if once {
        cmd.arg("--once");
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        // botocore's IMDS endpoint setting (ec2_metadata_service_endpoint / AWS_EC2_METADATA_SERVICE_ENDPOINT in
        // botocore/configprovider.py), the name every AWS SDK reads; the credentials can come from nowhere else.
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
        .output()
        .expect("run the metrics agent")
}

fn cloudwatch(url: &str, account: &str) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(
            account,
            "test",
            None,
            None,
            "vpclink-tests",
        ))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

fn dims(link: &str) -> Vec<Dimension> {
    vec![
        Dimension::builder().name("Link").value(link).build(),
        Dimension::builder().name("Side").value("east").build(),
    ]
}

/// The metric names published for LINK (ListMetrics filtered by both dimensions).
async fn listed(cw: &aws_sdk_cloudwatch::Client, link: &str) -> Vec<String> {
    let out = cw
        .list_metrics()
        .namespace("vpclink")
        .dimensions(DimensionFilter::builder().name("Link").value(link).build())
        .dimensions(
            DimensionFilter::builder()
                .name("Side")
                .value("east")
                .build(),
        )
        .send()
        .await
        .expect("ListMetrics");
    let mut names: Vec<String> = out
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// STAT of every named metric of LINK over the last 10 minutes, one 10-minute period (GetMetricData).
async fn stats(
    cw: &aws_sdk_cloudwatch::Client,
    link: &str,
    names: &[&str],
    stat: &str,
) -> BTreeMap<String, f64> {
    let now = std::time::SystemTime::now();
    let mut req = cw
        .get_metric_data()
        .start_time(aws_smithy_types::DateTime::from(
            now - std::time::Duration::from_secs(600),
        ))
        .end_time(aws_smithy_types::DateTime::from(
            now + std::time::Duration::from_secs(60),
        ));
    for (i, name) in names.iter().enumerate() {
        let metric = Metric::builder()
            .namespace("vpclink")
            .metric_name(*name)
            .set_dimensions(Some(dims(link)))
            .build();
        req = req.metric_data_queries(
            MetricDataQuery::builder()
                .id(format!("m{i}"))
                .label(*name)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(660)
                        .stat(stat)
                        .build(),
                )
                .build(),
        );
    }
    let out = req.send().await.expect("GetMetricData");
    out.metric_data_results()
        .iter()
        .filter_map(|r| Some((r.label()?.to_string(), r.values().iter().sum::<f64>())))
        .collect()
}

#[tokio::test]
async fn agent_publishes_to_cloudwatch_with_imdsv2_credentials() {
    let Some(url) = localstack::localstack() else {
        return;
    };
    let python = python_with_boto3();
    let account = localstack::fresh_account();
    let (imds, seen) = fake_imds(account.clone());
    // The fake refuses IMDSv1: a GET without the session token gets 401.
    assert!(
        get_without_token(&imds, "/latest/meta-data/iam/security-credentials/")
            .starts_with("HTTP/1.1 401")
    );
    seen.lock().unwrap().clear();

    let dir = tempfile::tempdir().unwrap();
    let cw = cloudwatch(&url, &account);

    // One cycle (--once): the gauges, and no traffic figure yet (a delta needs a previous reading).
    let once = format!("mt-once-{account}");
    let cfg = agent_config(dir.path(), &once, &url);
    let sample = serde_json::json!([reading(&once, ip_link((1000, 10), (2000, 20)), None)]);
    let out = run_agent(&python, dir.path(), &cfg, &sample, true, &imds);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one line per cycle: {stdout}");
    assert!(stdout.starts_with("vpclink-metrics: published 6 datums to vpclink: TunnelUp=1 IkeSaUp=1 EspSaUp=1 TunnelRtt=1.5 ConntrackEntries=512"), "{stdout}");
    let imds_log = seen.lock().unwrap().clone();
    assert!(
        imds_log
            .iter()
            .any(|(m, p, _, s)| m == "PUT" && p == "/latest/api/token" && *s == 200),
        "no IMDSv2 token was asked for: {imds_log:?}"
    );
    assert!(
        imds_log
            .iter()
            .any(|(m, p, ok, s)| m == "GET" && p.ends_with(ROLE) && *ok && *s == 200),
        "the role's credentials were not read with the token: {imds_log:?}"
    );
    assert!(
        imds_log.iter().all(|(_, _, _, s)| *s != 401),
        "the agent sent a GET without the token: {imds_log:?}"
    );
    assert_eq!(
        listed(&cw, &once).await,
        [
            "ConntrackEntries",
            "ConntrackUse",
            "EspSaUp",
            "IkeSaUp",
            "TunnelRtt",
            "TunnelUp"
        ]
    );
    let max = stats(
        &cw,
        &once,
        &[
            "TunnelUp",
            "IkeSaUp",
            "EspSaUp",
            "TunnelRtt",
            "ConntrackEntries",
        ],
        "Maximum",
    )
    .await;
    assert_eq!(max.get("TunnelUp"), Some(&1.0), "{max:?}");
    assert_eq!(max.get("IkeSaUp"), Some(&1.0), "{max:?}");
    assert_eq!(max.get("EspSaUp"), Some(&1.0), "{max:?}");
    assert_eq!(max.get("TunnelRtt"), Some(&1.5), "{max:?}");
    assert_eq!(max.get("ConntrackEntries"), Some(&512.0), "{max:?}");

    // Three cycles: deltas from the second on, a counter reset in the third (the GRE device was recreated), and the
    // ENA allowance counters because this uplink's driver shows them.
    let run = format!("mt-cycles-{account}");
    let cfg = agent_config(dir.path(), &run, &url);
    let sample = serde_json::json!([
        reading(
            &run,
            ip_link((1000, 10), (2000, 20)),
            Some(ethtool_ena(5, 1))
        ),
        reading(
            &run,
            ip_link((1500, 14), (2600, 26)),
            Some(ethtool_ena(12, 1))
        ),
        reading(&run, ip_link((100, 1), (300, 3)), Some(ethtool_ena(12, 4))),
    ]);
    let out = run_agent(&python, dir.path(), &cfg, &sample, false, &imds);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "agent failed: {stdout}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let names = listed(&cw, &run).await;
    for want in [
        "BytesToPeer",
        "BytesFromPeer",
        "PacketsToPeer",
        "PacketsFromPeer",
        "BwInAllowanceExceeded",
        "BwOutAllowanceExceeded",
        "PpsAllowanceExceeded",
        "ConntrackAllowanceExceeded",
        "LinklocalAllowanceExceeded",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let sum = stats(
        &cw,
        &run,
        &[
            "BytesToPeer",
            "BytesFromPeer",
            "PacketsToPeer",
            "PacketsFromPeer",
            "BwOutAllowanceExceeded",
            "PpsAllowanceExceeded",
        ],
        "Sum",
    )
    .await;
    // 600 then 300 (reset: what the new device counted), 500 then 100, 6 then 3, 4 then 1, 7 then 0, 0 then 3.
    assert_eq!(sum.get("BytesToPeer"), Some(&900.0), "{sum:?}");
    assert_eq!(sum.get("BytesFromPeer"), Some(&600.0), "{sum:?}");
    assert_eq!(sum.get("PacketsToPeer"), Some(&9.0), "{sum:?}");
    assert_eq!(sum.get("PacketsFromPeer"), Some(&5.0), "{sum:?}");
    assert_eq!(sum.get("BwOutAllowanceExceeded"), Some(&7.0), "{sum:?}");
    assert_eq!(sum.get("PpsAllowanceExceeded"), Some(&3.0), "{sum:?}");

    // No role yet on the first cycle (the profile was associated a moment ago): that cycle fails, the next one
    // publishes with the credentials that have arrived since. botocore resolves credentials when a client is made, so
    // this holds only because a failed publish drops the client (a kept one failed for ever, NoCredentialsError).
    let (late_imds, late_seen) = fake_imds_role_after(account.clone(), 1);
    let run = format!("mt-late-{account}");
    let cfg = agent_config(dir.path(), &run, &url);
    let sample = serde_json::json!([
        reading(&run, ip_link((10, 1), (10, 1)), None),
        reading(&run, ip_link((20, 2), (20, 2)), None),
    ]);
    let out = run_agent(&python, dir.path(), &cfg, &sample, false, &late_imds);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("vpclink-metrics: error: publishing"),
        "first cycle, no role yet: {stdout}"
    );
    assert!(
        lines[1].starts_with("vpclink-metrics: published"),
        "second cycle, role there: {stdout}"
    );
    assert!(
        late_seen
            .lock()
            .unwrap()
            .iter()
            .any(|(m, p, _, status)| m == "GET"
                && p == "/latest/meta-data/iam/security-credentials/"
                && *status == 404),
        "the fake IMDS answered 404 first"
    );
    let names = listed(&cw, &run).await;
    assert!(names.iter().any(|n| n == "TunnelUp"), "{names:?}");

    // Publishing that fails is an error line and exit 1 for --once, not a crash: an endpoint nothing listens on.
    let dead = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let cfg = agent_config(dir.path(), "mt-dead", &dead_url);
    let sample = serde_json::json!([reading("mt-dead", ip_link((1, 1), (1, 1)), None)]);
    let out = run_agent(&python, dir.path(), &cfg, &sample, true, &imds);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("vpclink-metrics: error: publishing 6 datums failed"),
        "{stdout}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Traceback"));
}
