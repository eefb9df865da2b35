//! The Redfish session on one connection: every request goes through [`Conn::request`], which
//! reopens a kept connection the service had closed, and [`Conn::authed`], which adds the
//! credentials and logs in again once on a 401. Log-in is a POST to the SessionService
//! (`X-Auth-Token`, the session deleted on close), or HTTP basic authentication when the service
//! has no SessionService.
//!
//! Owns: the connection (reopened only for a stale one) and the credentials in use; opening a
//! [`Conn`] (the service root, the log-in, then the system from `system.rs`). Must not: retry a
//! request that got an answer, other than the one log-in after a 401; follow redirects; send
//! the password anywhere but the session collection of the service it connected to (or in the
//! basic authorization header to that service).

use std::time::{Duration, Instant};

use super::http::{exchange, http_failure, local_path, Exchange, Response};
use super::tls::{connect, Stream};
use super::{Ctx, Failure};

/// Base64 (RFC 4648, with padding) for the basic authorization header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How requests are authenticated.
enum Auth {
    /// No credentials (the service root).
    None,
    /// `Authorization: Basic ...` (the service has no SessionService).
    Basic(String),
    /// `X-Auth-Token`; the session's URI, to delete it on close.
    Session { token: String, uri: Option<String> },
}

/// A connection to the service and what was learnt on connecting.
pub struct Conn {
    stream: Option<Stream>,
    auth: Auth,
    /// Where sessions are created (`Links.Sessions`), if the service has a SessionService.
    sessions: Option<String>,
    /// The ComputerSystem acted on.
    pub(super) system: String,
    /// `ComputerSystem.Reset`'s target.
    pub(super) reset_target: String,
}

impl Conn {
    /// Connects, logs in, finds the system and its reset action.
    pub(super) fn open(ctx: &Ctx<'_>, deadline: Instant) -> Result<Conn, Failure> {
        let mut conn = Conn {
            stream: None,
            auth: Auth::None,
            sessions: None,
            system: String::new(),
            reset_target: String::new(),
        };
        let r = conn.request(ctx, "GET", "/redfish/v1/", false, None, deadline)?;
        if r.status != 200 {
            return Err(http_failure("GET /redfish/v1/ (the service root)", &r));
        }
        let root = r.json("GET /redfish/v1/")?;
        conn.sessions = root["Links"]["Sessions"]["@odata.id"]
            .as_str()
            .map(String::from);
        conn.login(ctx, deadline, false)?;
        let system = match &ctx.service.system {
            Some(s) => s.clone(),
            None => conn.only_system(ctx, &root, deadline)?,
        };
        conn.reset_target = conn.reset_target_of(ctx, &system, deadline)?;
        conn.system = system;
        Ok(conn)
    }

    /// One request and its reply. A kept connection the service closed meanwhile (nothing read
    /// back at all) is reopened once and the request sent again: every request bbwd sends may
    /// be repeated (a GET, a session log-in, a reset to the same state).
    pub(super) fn request(
        &mut self,
        ctx: &Ctx<'_>,
        method: &str,
        path: &str,
        auth: bool,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Response, Failure> {
        let bytes = self.request_bytes(ctx, method, path, auth, body);
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            if self.stream.is_none() {
                self.stream = Some(connect(
                    ctx.service,
                    ctx.config,
                    ctx.reply_timeout,
                    deadline,
                )?);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(Failure::Protocol("no connection".into()));
            };
            match exchange(
                stream,
                &bytes,
                method == "HEAD",
                ctx.reply_timeout,
                deadline,
            ) {
                Ok(r) => {
                    if r.close {
                        self.stream = None;
                    }
                    return Ok(r);
                }
                Err(Exchange::Stale) if reused && attempt == 0 => {
                    log::debug!(
                        "{}: kept connection closed by the service; reopening",
                        ctx.name
                    );
                    self.stream = None;
                }
                Err(Exchange::Stale) => {
                    self.stream = None;
                    return Err(Failure::Protocol(
                        "the service closed the connection without a reply".into(),
                    ));
                }
                Err(Exchange::Failed(f)) => {
                    self.stream = None;
                    return Err(f);
                }
            }
        }
        Err(Failure::Protocol(
            "the service closed the connection without a reply".into(),
        ))
    }

    /// The request's bytes: head (with the credentials when `auth`) and body.
    fn request_bytes(
        &self,
        ctx: &Ctx<'_>,
        method: &str,
        path: &str,
        auth: bool,
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bbwd/{}\r\nAccept: application/json\r\nOData-Version: 4.0\r\n",
            ctx.service.authority(),
            env!("CARGO_PKG_VERSION")
        );
        match (&self.auth, auth) {
            (Auth::Basic(b), true) => head.push_str(&format!("Authorization: Basic {b}\r\n")),
            (Auth::Session { token, .. }, true) => {
                head.push_str(&format!("X-Auth-Token: {token}\r\n"))
            }
            _ => {}
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        bytes
    }

    /// An authenticated request; a 401 on a session token re-creates the session once.
    pub(super) fn authed(
        &mut self,
        ctx: &Ctx<'_>,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Response, Failure> {
        let r = self.request(ctx, method, path, true, body, deadline)?;
        if r.status == 401 && matches!(self.auth, Auth::Session { .. }) {
            log::info!("{}: session expired (401); logging in again", ctx.name);
            // On a fresh connection: a service that refused a request may not have read its
            // body, which would then be taken for the start of the next request.
            self.stream = None;
            self.login(ctx, deadline, true)?;
            return self.request(ctx, method, path, true, body, deadline);
        }
        Ok(r)
    }

    /// POST to the session collection: the token, or basic auth when the service has none.
    /// `again`: a session worked before, so the service has sessions; no falling back then.
    fn login(&mut self, ctx: &Ctx<'_>, deadline: Instant, again: bool) -> Result<(), Failure> {
        let basic = || {
            let mut cred = ctx.service.username.as_bytes().to_vec();
            cred.push(b':');
            cred.extend_from_slice(&ctx.service.password.0);
            Auth::Basic(base64(&cred))
        };
        let Some(sessions) = self.sessions.clone() else {
            self.auth = basic();
            return Ok(());
        };
        let body = serde_json::json!({
            "UserName": ctx.service.username,
            "Password": String::from_utf8_lossy(&ctx.service.password.0),
        })
        .to_string();
        self.auth = Auth::None;
        let r = self.request(
            ctx,
            "POST",
            &sessions,
            false,
            Some(body.as_bytes()),
            deadline,
        )?;
        match r.status {
            200 | 201 => {
                let Some(token) = r.auth_token.clone() else {
                    return Err(Failure::Protocol(format!(
                        "POST {sessions}: HTTP {}: no X-Auth-Token in the reply",
                        r.status
                    )));
                };
                let uri = r
                    .location
                    .as_deref()
                    .and_then(|l| local_path(ctx.service, l).ok())
                    .or_else(|| {
                        r.json("session")
                            .ok()
                            .and_then(|v| v["@odata.id"].as_str().map(String::from))
                    });
                self.auth = Auth::Session { token, uri };
                Ok(())
            }
            401 | 403 => Err(Failure::BadCredentials),
            // No session service after all: basic authentication.
            404 | 405 | 501 if !again => {
                self.sessions = None;
                self.auth = basic();
                Ok(())
            }
            _ => Err(http_failure(&format!("POST {sessions}"), &r)),
        }
    }

    /// Best effort: deletes the session, so the service frees it at once.
    pub(super) fn close(&mut self, ctx: &Ctx<'_>) {
        if let Auth::Session { uri: Some(uri), .. } = &self.auth {
            let uri = uri.clone();
            let deadline = Instant::now() + ctx.reply_timeout.min(Duration::from_secs(1));
            if let Err(f) = self.request(ctx, "DELETE", &uri, true, None, deadline) {
                log::debug!(
                    "{}: delete session {uri}: {f}; it will expire instead",
                    ctx.name
                );
            }
        }
    }
}

/// 401 / 403 on an authenticated request: the credentials.
pub(super) fn check_auth(r: &Response) -> Result<(), Failure> {
    match r.status {
        401 => Err(Failure::BadCredentials),
        403 => Err(Failure::InsufficientPrivilege(format!(
            "HTTP 403 Forbidden{}: the user may not do this (it needs the ConfigureComponents privilege, e.g. the Operator role)",
            r.message()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
