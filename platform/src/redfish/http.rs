//! HTTP/1.1 as Redfish needs it, over one TLS stream: one request written, its reply read
//! (`Content-Length`, chunked, or to the end of the connection), every socket wait bounded by
//! the operation's deadline and the reply timeout, the body bounded by [`MAX_REPLY_BYTES`].
//! Also what a reply means when it is not the one asked for ([`http_failure`]), and which URIs
//! the service may point bbwd at ([`local_path`]).
//!
//! Owns: the request/reply exchange and its size and time limits; telling a kept connection the
//! service had closed ([`Exchange::Stale`]) from a failed one. Must not: open connections,
//! authenticate, retry, or follow redirects (`session.rs` decides what to do about a reply).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::tls::Stream;
use super::{Failure, Service, DEFAULT_PORT, MAX_REPLY_BYTES};

/// Longest reply head read, bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One socket read, bytes.
const READ_CHUNK_BYTES: usize = 8192;

/// One HTTP reply.
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) location: Option<String>,
    pub(super) auth_token: Option<String>,
    pub(super) body: Vec<u8>,
    /// The service will close the connection after this reply.
    pub(super) close: bool,
}

impl Response {
    pub(super) fn json(&self, what: &str) -> Result<serde_json::Value, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::Protocol(format!("{what}: the reply is not JSON: {e}")))
    }

    /// The service's own explanation of an error (`error.@Message.ExtendedInfo[0].Message`, or
    /// `error.message`), if it gave one.
    pub(super) fn message(&self) -> String {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return String::new();
        };
        let e = &v["error"];
        let m = e["@Message.ExtendedInfo"][0]["Message"]
            .as_str()
            .or_else(|| e["message"].as_str());
        m.map(|m| format!(": {m}")).unwrap_or_default()
    }
}

/// The left of `deadline`, at most `cap`; a timeout failure when nothing is left.
pub(super) fn left(deadline: Instant, cap: Duration) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::Timeout);
    }
    Ok(left.min(cap))
}

fn io_failure(e: std::io::Error, during: &str) -> Failure {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Protocol(format!("{during}: {e}")),
    }
}

/// A reply that is not what was asked for: a redirect (never followed), or an error status.
pub(super) fn http_failure(what: &str, r: &Response) -> Failure {
    if (300..400).contains(&r.status) {
        return Failure::Protocol(format!(
            "{what}: HTTP {} redirect to {}: bbwd follows no redirects (one off the host would carry the credentials elsewhere)",
            r.status,
            r.location.as_deref().unwrap_or("(no Location)")
        ));
    }
    Failure::Protocol(format!(
        "{what}: HTTP {} {}{}",
        r.status,
        r.reason,
        r.message()
    ))
}

/// A URI the service named (`Location`, an action target) as a path on this same service;
/// an absolute URL elsewhere is refused.
pub(super) fn local_path(service: &Service, uri: &str) -> Result<String, Failure> {
    // It goes into a request line: nothing that could end or split it.
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::Protocol(format!(
            "the service named {uri:?}: not a usable URI (whitespace or control characters)"
        )));
    }
    if uri.starts_with('/') {
        return Ok(uri.to_string());
    }
    let rest = uri
        .strip_prefix("https://")
        .ok_or_else(|| Failure::Protocol(format!("\"{uri}\": not an https URI on the service")))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let same = authority == service.authority()
        || (service.port == DEFAULT_PORT && authority == service.host);
    if !same {
        return Err(Failure::Protocol(format!(
            "the service points at \"{uri}\", off the host {}: refused",
            service.authority()
        )));
    }
    Ok(if path.is_empty() { "/" } else { path }.to_string())
}

/// Why an exchange failed.
pub(super) enum Exchange {
    /// Not a byte came back on a kept connection: the service had closed it.
    Stale,
    Failed(Failure),
}

/// Writes one request and reads its reply, each socket wait bounded by `deadline`.
pub(super) fn exchange(
    stream: &mut Stream,
    request: &[u8],
    head_only: bool,
    reply_timeout: Duration,
    deadline: Instant,
) -> Result<Response, Exchange> {
    let mut r = Reader {
        stream,
        reply_timeout,
        deadline,
        chunk: [0; READ_CHUNK_BYTES],
    };
    r.set_timeouts()?;
    if let Err(e) = r.stream.write_all(request).and_then(|_| r.stream.flush()) {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Exchange::Stale,
            _ => Exchange::Failed(io_failure(e, "sending the request")),
        });
    }
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let head = r.head(&mut buf)?;
    let mut body = buf.split_off(head.len);
    let status = head.status;
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let mut close = head.close;
    let body = if no_body {
        Vec::new()
    } else if head.chunked {
        r.chunked(body)?
    } else if let Some(length) = head.length {
        r.sized(body, length)?
    } else {
        // Neither: the body ends with the connection.
        while r.more(&mut body)? {}
        close = true;
        body
    };
    Ok(Response {
        status,
        reason: head.reason,
        location: head.location,
        auth_token: head.auth_token,
        body,
        close,
    })
}

/// A reply's head, as parsed.
struct Head {
    /// Its length in bytes: the body starts there.
    len: usize,
    status: u16,
    reason: String,
    location: Option<String>,
    auth_token: Option<String>,
    /// `Content-Length`.
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

/// Parses a complete head; `None`: more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Exchange> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(Exchange::Failed(Failure::Protocol(format!(
                "malformed HTTP reply: {e}"
            ))))
        }
    };
    let mut head = Head {
        len,
        status: resp.code.unwrap_or(0),
        reason: resp.reason.unwrap_or("").to_string(),
        location: None,
        auth_token: None,
        length: None,
        chunked: false,
        close: resp.version == Some(0),
    };
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.length = Some(value.parse::<usize>().map_err(|_| {
                Exchange::Failed(Failure::Protocol(format!("bad Content-Length \"{value}\"")))
            })?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("location") {
            head.location = Some(value);
        } else if h.name.eq_ignore_ascii_case("x-auth-token") {
            head.auth_token = Some(value);
        }
    }
    Ok(Some(head))
}

/// One reply being read off the stream, every wait bounded by the deadline.
struct Reader<'a> {
    stream: &'a mut Stream,
    reply_timeout: Duration,
    deadline: Instant,
    chunk: [u8; READ_CHUNK_BYTES],
}

impl Reader<'_> {
    fn set_timeouts(&mut self) -> Result<(), Exchange> {
        let wait = left(self.deadline, self.reply_timeout).map_err(Exchange::Failed)?;
        let _ = self.stream.sock.set_read_timeout(Some(wait));
        let _ = self.stream.sock.set_write_timeout(Some(wait));
        Ok(())
    }

    /// Reads into `buf` until it holds a complete head.
    fn head(&mut self, buf: &mut Vec<u8>) -> Result<Head, Exchange> {
        loop {
            self.set_timeouts()?;
            let n = match self.stream.read(&mut self.chunk) {
                Ok(0) if buf.is_empty() => return Err(Exchange::Stale),
                Ok(0) => {
                    return Err(Exchange::Failed(Failure::Protocol(
                        "the service closed the connection in the middle of the reply headers"
                            .into(),
                    )))
                }
                Ok(n) => n,
                Err(e)
                    if buf.is_empty()
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::UnexpectedEof
                                | std::io::ErrorKind::BrokenPipe
                        ) =>
                {
                    return Err(Exchange::Stale)
                }
                Err(e) => return Err(Exchange::Failed(io_failure(e, "reading the reply"))),
            };
            buf.extend_from_slice(&self.chunk[..n]);
            match parse_head(buf)? {
                Some(head) => return Ok(head),
                None if buf.len() < MAX_HEAD_BYTES => continue,
                None => {
                    return Err(Exchange::Failed(Failure::Protocol(
                        "reply headers larger than 64 KiB".into(),
                    )))
                }
            }
        }
    }

    /// Reads more of the body; `false` at the end of the connection.
    fn more(&mut self, body: &mut Vec<u8>) -> Result<bool, Exchange> {
        self.set_timeouts()?;
        match self.stream.read(&mut self.chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                body.extend_from_slice(&self.chunk[..n]);
                if body.len() > MAX_REPLY_BYTES + 64 * 1024 {
                    return Err(too_large());
                }
                Ok(true)
            }
            // A peer that closes without close_notify after a complete reply.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Exchange::Failed(io_failure(e, "reading the reply body"))),
        }
    }

    /// A `Content-Length` body of `length` bytes; `body` holds what came with the head.
    fn sized(&mut self, mut body: Vec<u8>, length: usize) -> Result<Vec<u8>, Exchange> {
        if length > MAX_REPLY_BYTES {
            return Err(Exchange::Failed(Failure::Protocol(format!(
                "reply of {length} bytes, more than {MAX_REPLY_BYTES}"
            ))));
        }
        while body.len() < length {
            if !self.more(&mut body)? {
                return Err(cut("fewer bytes than its Content-Length"));
            }
        }
        body.truncate(length);
        Ok(body)
    }

    /// A chunked body, decoded; `body` holds what came with the head.
    fn chunked(&mut self, mut body: Vec<u8>) -> Result<Vec<u8>, Exchange> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match httparse::parse_chunk_size(&body[pos..]) {
                Ok(httparse::Status::Complete((skip, size))) => {
                    let size = usize::try_from(size).unwrap_or(usize::MAX);
                    if size > MAX_REPLY_BYTES {
                        return Err(too_large());
                    }
                    let start = pos + skip;
                    if size == 0 {
                        // Trailers are not used by Redfish; the final CRLF may still be
                        // on its way: read it so that the connection stays in step.
                        while !body[start..].windows(2).any(|w| w == b"\r\n") {
                            if !self.more(&mut body)? {
                                break;
                            }
                        }
                        return Ok(out);
                    }
                    while body.len() < start + size + 2 {
                        if !self.more(&mut body)? {
                            return Err(cut("chunked body"));
                        }
                    }
                    out.extend_from_slice(&body[start..start + size]);
                    pos = start + size + 2;
                }
                Ok(httparse::Status::Partial) => {
                    if !self.more(&mut body)? {
                        return Err(cut("chunk size"));
                    }
                }
                Err(_) => {
                    return Err(Exchange::Failed(Failure::Protocol(
                        "malformed chunked reply".into(),
                    )))
                }
            }
        }
    }
}

fn too_large() -> Exchange {
    Exchange::Failed(Failure::Protocol(format!(
        "reply larger than {MAX_REPLY_BYTES} bytes"
    )))
}

fn cut(what: &str) -> Exchange {
    Exchange::Failed(Failure::Protocol(format!("reply cut short: {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_off_the_host_are_refused() {
        let svc = Service {
            host: "10.0.1.2".into(),
            port: 443,
            username: "u".into(),
            password: super::super::Secret::new(b"p"),
            system: None,
            tls: super::super::Tls::Insecure,
        };
        assert_eq!(local_path(&svc, "/redfish/v1/x").unwrap(), "/redfish/v1/x");
        assert_eq!(
            local_path(&svc, "https://10.0.1.2/redfish/v1/x").unwrap(),
            "/redfish/v1/x"
        );
        assert_eq!(
            local_path(&svc, "https://10.0.1.2:443/redfish/v1/x").unwrap(),
            "/redfish/v1/x"
        );
        let off = local_path(&svc, "https://evil.example/redfish/v1/x").unwrap_err();
        assert!(off.to_string().contains("off the host"), "{off}");
        assert!(local_path(&svc, "http://10.0.1.2/x").is_err());
        let split = local_path(&svc, "/redfish/v1/x HTTP/1.1\r\nHost: y").unwrap_err();
        assert!(split.to_string().contains("not a usable URI"), "{split}");
    }
}
