//! This machine's public address, for the default SSH rule. Asked of AWS's checkip service over plain HTTP with a
//! short timeout; when it cannot be learned the user passes --ssh-cidr.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn public_cidr() -> Option<Ipv4Net> {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect("checkip.amazonaws.com:80")
            .await
            .ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: checkip.amazonaws.com\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        parse_answer(&body)
    };
    tokio::time::timeout(Duration::from_secs(4), ask)
        .await
        .ok()
        .flatten()
}

fn parse_answer(response: &str) -> Option<Ipv4Net> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let ip: Ipv4Addr = body.trim().parse().ok()?;
    Ipv4Net::new(ip, 32).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_only_a_plain_200_answer() {
        assert_eq!(
            super::parse_answer("HTTP/1.1 200 OK\r\nA: b\r\n\r\n203.0.113.5\n"),
            "203.0.113.5/32".parse().ok()
        );
        assert_eq!(
            super::parse_answer("HTTP/1.1 500 Oops\r\n\r\n203.0.113.5\n"),
            None
        );
        assert_eq!(super::parse_answer("HTTP/1.1 200 OK\r\n\r\n<html>"), None);
    }
}
