//! This machine's public address, for the default SSH rule. Asked of AWS's checkip service over HTTPS (the SDK's own
//! client: hyper with rustls, the system's root certificates), so that nobody on the path can answer in its place
//! and open SSH to themselves; a short timeout, and when it cannot be learned the user passes --ssh-cidr. Where the
//! address came from is said on stderr.

use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::time::Duration;

/// AWS's own "what is my address" service, over TLS.
pub const CHECKIP_URL: &str = "https://checkip.amazonaws.com/";

/// Its answer is one address and a newline; anything much longer is not an answer.
const MAX_BODY: usize = 64;

/// This machine's address as checkip sees it, as a /32; says where it came from on stderr.
pub async fn public_cidr() -> Option<Ipv4Net> {
    let cidr = tokio::time::timeout(Duration::from_secs(5), ask(CHECKIP_URL))
        .await
        .ok()
        .flatten()?;
    eprintln!("{}", learned_message(cidr, CHECKIP_URL));
    Some(cidr)
}

/// "SSH allowed from 198.51.100.7/32, learned from https://checkip.amazonaws.com".
pub fn learned_message(cidr: Ipv4Net, url: &str) -> String {
    format!(
        "SSH allowed from {cidr}, learned from {}",
        url.trim_end_matches('/')
    )
}

/// The GET for `url`; refuses anything but https.
fn request(url: &str) -> Option<Request> {
    if !url.starts_with("https://") {
        return None;
    }
    let mut req = Request::new(SdkBody::empty());
    req.set_uri(url).ok()?;
    req.headers_mut().insert("user-agent", "vpclink");
    Some(req)
}

async fn ask(url: &str) -> Option<Ipv4Net> {
    let req = request(url)?;
    let connector = Connector::builder()
        .connector_settings(
            HttpConnectorSettings::builder()
                .connect_timeout(Duration::from_secs(3))
                .read_timeout(Duration::from_secs(3))
                .build(),
        )
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build();
    let resp = match connector.call(req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("{url}: {e}");
            return None;
        }
    };
    let status = resp.status().as_u16();
    let body = ByteStream::new(resp.into_body()).collect().await.ok()?;
    parse_answer(status, &body.into_bytes())
}

/// A 200 whose body is one public IPv4 unicast address (surrounding whitespace allowed), as a /32.
fn parse_answer(status: u16, body: &[u8]) -> Option<Ipv4Net> {
    if status != 200 || body.len() > MAX_BODY {
        return None;
    }
    let ip: Ipv4Addr = std::str::from_utf8(body).ok()?.trim().parse().ok()?;
    if !public_unicast(ip) {
        return None;
    }
    Ipv4Net::new(ip, 32).ok()
}

/// An address the internet could see this machine from: not private, shared (100.64.0.0/10), loopback,
/// link-local, "this network" (0.0.0.0/8), multicast or reserved (240.0.0.0/4, broadcast included).
fn public_unicast(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_over_https_only() {
        assert!(CHECKIP_URL.starts_with("https://"));
        let req = request(CHECKIP_URL).expect("a request");
        assert!(req.uri().starts_with("https://checkip.amazonaws.com"));
        assert_eq!(req.method(), "GET");
        assert!(request("http://checkip.amazonaws.com/").is_none());
    }

    /// A plain-HTTP answer (what anyone on the path could forge) is not taken: TLS is required. Local only.
    #[tokio::test]
    async fn a_plain_http_answer_is_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forger = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n203.0.113.5\n")
                    .await;
            }
        });
        let learned = tokio::time::timeout(
            Duration::from_secs(10),
            ask(&format!("https://127.0.0.1:{port}/")),
        )
        .await
        .expect("answers within the timeout");
        assert_eq!(learned, None);
        assert_eq!(ask(&format!("http://127.0.0.1:{port}/")).await, None);
        forger.abort();
    }

    #[test]
    fn says_where_the_address_came_from() {
        assert_eq!(
            learned_message("198.51.100.7/32".parse().unwrap(), CHECKIP_URL),
            "SSH allowed from 198.51.100.7/32, learned from https://checkip.amazonaws.com"
        );
    }

    #[test]
    fn reads_only_one_public_address_from_a_200() {
        let cidr = |s: &str| s.parse::<Ipv4Net>().ok();
        assert_eq!(parse_answer(200, b"203.0.113.5\n"), cidr("203.0.113.5/32"));
        assert_eq!(
            parse_answer(200, b"  52.94.76.10  "),
            cidr("52.94.76.10/32")
        );
        assert_eq!(parse_answer(500, b"203.0.113.5\n"), None);
        assert_eq!(parse_answer(301, b"203.0.113.5\n"), None);
        for bad in [
            &b"<html>"[..],
            b"",
            b"203.0.113.5 203.0.113.6",
            b"203.0.113.5/24",
            b"2001:db8::1",
            b"\xff\xfe",
            b"10.1.2.3",
            b"192.168.0.1",
            b"172.16.0.1",
            b"127.0.0.1",
            b"169.254.169.254",
            b"100.64.0.1",
            b"0.0.0.0",
            b"224.0.0.1",
            b"255.255.255.255",
        ] {
            assert_eq!(
                parse_answer(200, bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("203.0.113.5{}", " ".repeat(MAX_BODY));
        assert_eq!(parse_answer(200, long.as_bytes()), None);
    }
}
