//! `bitbucket.status_url`: its syntax and the request it makes, in one place.
//!
//! Owns: the one parser of the URL (the config checks it with this; the probe builds its
//! request from it), and the bytes of the GET request. Must not: resolve a host name (the
//! platform does, at start-up: `bbwd_platform::http::StatusTarget`), or accept anything the
//! request could not carry as written.
//!
//! Form: `http://HOST[:PORT]/PATH[?QUERY]`. HOST is an IPv4 address, an IPv6 address in
//! brackets, or a host name (letters, digits, `-` and `.`; RFC 1123: no `_`). PORT defaults to
//! 80. The path is required and sent as written (percent-encode it in the config). Refused, each
//! with its reason: `https` (bbwd probes Bitbucket's own plain-HTTP connector, not the TLS
//! front end), user info, a `#fragment`, spaces, control and non-ASCII characters, and a URL
//! whose request would not fit the probe's buffer ([`REPLY_CAPACITY`]).

use std::net::{IpAddr, Ipv6Addr};

use crate::probe::REPLY_CAPACITY;

/// The form, for error messages.
pub const FORM: &str = "expected http://HOST[:PORT]/PATH, e.g. http://127.0.0.1:7990/status";

/// The host part of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A name, resolved by the platform at start-up.
    Name(String),
}

/// A parsed status URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUrl {
    pub host: Host,
    pub port: u16,
    /// The path and query, starting with `/`, as written.
    pub path: String,
}

impl StatusUrl {
    /// Parses `url`; the error says what is wrong (without repeating the URL).
    pub fn parse(url: &str) -> Result<StatusUrl, String> {
        let rest = strip_scheme(url)?;
        let (authority, path) = split_authority(rest)?;
        let (host, port) = match authority.strip_prefix('[') {
            Some(inner) => bracketed_host(inner)?,
            None => plain_host(authority)?,
        };
        let parsed = StatusUrl {
            host,
            port: parse_port(port)?,
            path: path.to_string(),
        };
        let len = parsed.request().len();
        if len > REPLY_CAPACITY {
            return Err(format!(
                "too long: its request would be {len} bytes, the probe sends at most \
                 {REPLY_CAPACITY}"
            ));
        }
        Ok(parsed)
    }

    /// The `Host:` header's value: `name:port`, `1.2.3.4:port` or `[v6]:port`.
    pub fn host_header(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.port),
            Host::Ip(ip) => format!("{ip}:{}", self.port),
            Host::Name(name) => format!("{name}:{}", self.port),
        }
    }

    /// The complete GET request the probe sends (HTTP/1.0, connection closed by the server).
    pub fn request(&self) -> String {
        format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: bbwd\r\n\
             Accept: application/json\r\nConnection: close\r\n\r\n",
            self.path,
            self.host_header()
        )
    }
}

/// What follows `http://` (any case); `https://` and other schemes are refused.
fn strip_scheme(url: &str) -> Result<&str, String> {
    let Some(rest) = strip_prefix_ignore_case(url, "http://") else {
        if strip_prefix_ignore_case(url, "https://").is_some() {
            return Err(
                "https is not supported: bbwd probes Bitbucket's own plain-HTTP connector \
                 on this node, e.g. http://127.0.0.1:7990/status (not the TLS proxy in front \
                 of it)"
                    .to_string(),
            );
        }
        return Err(FORM.to_string());
    };
    Ok(rest)
}

/// The authority and the path (from its `/`) of what follows the scheme, each checked for
/// what the request could not carry: spaces, control characters, a fragment, non-ASCII, user@.
fn split_authority(rest: &str) -> Result<(&str, &str), String> {
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters".to_string());
    }
    let Some(slash) = rest.find('/') else {
        return Err(format!("missing path: {FORM}"));
    };
    let (authority, path) = rest.split_at(slash);
    if authority.contains(['?', '#']) {
        return Err(format!("missing path: {FORM}"));
    }
    if path.contains('#') {
        return Err("a fragment (#...) means nothing to the server: remove it".to_string());
    }
    if !path.is_ascii() {
        return Err(
            "the path has a non-ASCII character: percent-encode it (e.g. %C3%A9)".to_string(),
        );
    }
    if authority.contains('@') {
        return Err("user@ in the URL is not supported: /status needs no login".to_string());
    }
    Ok((authority, path))
}

/// `[v6]` or `[v6]:port`, given what follows the `[`: the address and the port's digits.
fn bracketed_host(inner: &str) -> Result<(Host, Option<&str>), String> {
    let Some((ip, after)) = inner.split_once(']') else {
        return Err(format!("unclosed '[' in the host: {FORM}"));
    };
    let Ok(v6) = ip.parse::<Ipv6Addr>() else {
        return Err(format!("\"{ip}\" is not an IPv6 address"));
    };
    let port = match after {
        "" => None,
        _ => match after.strip_prefix(':') {
            Some(port) => Some(port),
            None => return Err(FORM.to_string()),
        },
    };
    Ok((Host::Ip(IpAddr::V6(v6)), port))
}

/// `host` or `host:port` without brackets (an IPv4 address or a host name): the host and the
/// port's digits.
fn plain_host(authority: &str) -> Result<(Host, Option<&str>), String> {
    let (host, port) = match authority.split_once(':') {
        Some((_, port)) if port.contains(':') => {
            return Err(
                "an IPv6 host must be in brackets, e.g. http://[::1]:7990/status".to_string(),
            )
        }
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(format!("missing host: {FORM}"));
    }
    let host = if let Ok(ip) = host.parse::<IpAddr>() {
        Host::Ip(ip)
    } else if host.starts_with('-')
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
    {
        return Err(format!("\"{host}\" is not a host name or IP address"));
    } else {
        Host::Name(host.to_string())
    };
    Ok((host, port))
}

/// The port: 80 when none is written, else digits only, 1-65535.
fn parse_port(port: Option<&str>) -> Result<u16, String> {
    match port {
        None => Ok(80),
        Some(digits) => match digits.parse::<u16>() {
            Ok(p) if p > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
            _ => Err(format!("\"{digits}\" is not a port (1-65535)")),
        },
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls() {
        let u = StatusUrl::parse("http://127.0.0.1:7990/status").unwrap();
        assert_eq!(u.host, Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!((u.port, u.path.as_str()), (7990, "/status"));
        assert_eq!(
            u.request(),
            "GET /status HTTP/1.0\r\nHost: 127.0.0.1:7990\r\nUser-Agent: bbwd\r\n\
             Accept: application/json\r\nConnection: close\r\n\r\n"
        );
        let u = StatusUrl::parse("HTTP://[::1]/bitbucket/status?x=1").unwrap();
        assert_eq!(u.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!((u.port, u.path.as_str()), (80, "/bitbucket/status?x=1"));
        assert_eq!(u.host_header(), "[::1]:80");
        let u = StatusUrl::parse("http://bb1.example.com:7990/").unwrap();
        assert_eq!(u.host, Host::Name("bb1.example.com".into()));
        assert_eq!(u.host_header(), "bb1.example.com:7990");
    }

    /// One parser, one set of rules: the cases the config and the probe each refused before
    /// they shared this one (`bb_host` was refused by one and accepted by the other).
    #[test]
    fn refused_urls_name_the_reason() {
        let cases = [
            ("", "expected http://HOST[:PORT]/PATH"),
            ("https://127.0.0.1:8443/status", "https is not supported"),
            ("HTTPS://bb/status", "https is not supported"),
            ("ftp://127.0.0.1/status", "expected http://HOST[:PORT]/PATH"),
            ("127.0.0.1:7990/status", "expected http://HOST[:PORT]/PATH"),
            ("http://", "missing path"),
            ("http://127.0.0.1:7990", "missing path"),
            ("http://127.0.0.1:1?a=b", "missing path"),
            ("http:///status", "missing host"),
            ("http://:7990/status", "missing host"),
            ("http://127.0.0.1:/", "not a port"),
            ("http://127.0.0.1:0/status", "not a port"),
            ("http://127.0.0.1:99999/status", "not a port"),
            ("http://127.0.0.1:+80/status", "not a port"),
            ("http://127.0.0.1:80x/", "not a port"),
            ("http://::1:7990/status", "must be in brackets"),
            ("http://[::1/status", "unclosed '['"),
            ("http://[::1]x/status", "expected http://"),
            ("http://[zz::1]:7990/status", "not an IPv6 address"),
            ("http://[127.0.0.1]/status", "not an IPv6 address"),
            ("http://user@bb:7990/status", "user@"),
            ("http://user:pw@127.0.0.1/", "user@"),
            ("http://bb:7990/status#x", "fragment"),
            ("http://bb b:7990/status", "spaces"),
            ("http://127.0.0.1/a b", "spaces"),
            ("http://127.0.0.1/a\r\nX-Injected: 1", "control characters"),
            ("http://bad\rhost/", "control characters"),
            ("http://127.0.0.1/caf\u{e9}", "non-ASCII"),
            ("http://bb_1:7990/status", "not a host name"),
            ("http://-bb:7990/status", "not a host name"),
        ];
        for (url, needle) in cases {
            let e = StatusUrl::parse(url).expect_err(url);
            assert!(e.contains(needle), "{url:?}: {e:?} lacks {needle:?}");
        }
        let long = format!("http://127.0.0.1/{}", "a".repeat(REPLY_CAPACITY));
        assert!(StatusUrl::parse(&long).unwrap_err().contains("too long"));
    }
}
