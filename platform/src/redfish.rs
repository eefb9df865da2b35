//! One BMC, spoken to over Redfish (DMTF DSP0266): HTTP/1.1 over TLS (rustls), JSON bodies.
//! Used for fencing the peer (`bbwd fence`, the pair's fencer) when `[fencing] method =
//! "redfish"`; the IPMI counterpart is [`crate::ipmi`], and [`crate::fence_device`] puts the two
//! behind one interface.
//!
//! Owns: the TLS connection and the Redfish session to one service, kept on a worker thread;
//! the certificate check (a CA file, a pinned fingerprint, or, only when asked, none); the
//! ComputerSystem to act on; the mapping of every failure to one clear [`Error`] naming the
//! service and the operation. Must not: decide anything (polling `PowerState` until `Off` is the
//! caller's: `agent/src/fence.rs` and the pair's fence procedure do it exactly as with IPMI), or
//! block the caller: the daemon submits an operation, polls [`RedfishClient::fd`] and collects the
//! outcome with [`RedfishClient::try_result`]; only the CLI's [`RedfishClient::call`] waits.
//!
//! # Theory of operation
//! ```text
//!  connect: TCP ─► TLS (verified) ─► GET /redfish/v1/ (open) ─┬─ Links.Sessions ─► POST {UserName, Password}
//!                                                            │                      ─► X-Auth-Token (kept)
//!                                                            └─ none (404) ───────► HTTP basic auth
//!           ─► the system: `system`, or the only member of Systems (two or more: refused)
//!           ─► GET the system: PowerState present, the Reset action's target read
//!  PowerStatus  = GET system            -> PowerState "Off" = off; On, PoweringOn, PoweringOff, Paused = on
//!  Power(Off)   = POST Reset {ForceOff} (200/202/204), On = "On", Cycle = "PowerCycle", Reset = "ForceRestart"
//! ```
//! A 401 on a session token re-creates the session once and repeats the request. A TLS
//! connection the service closed is reopened (the session stays). Redirects are never followed:
//! a 3xx is a failure naming where it pointed (a redirect off the host would carry the
//! credentials elsewhere). Any HTTP 4xx/5xx is a failure with the service's own message.
//!
//! As with IPMI: an operation that fails for a reason a fresh connection may cure (timeout,
//! protocol error) is tried once more on a new connection and session if time remains; bad
//! credentials, refused certificates and an unknown system are definitive.
//!
//! # Invariants
//! * At most one connection and one session per [`RedfishClient`], owned by its worker thread;
//!   a connection that failed once is never used again.
//! * No panic crosses the worker's boundary (`catch_unwind`); a dead worker is replaced at the
//!   next submit.
//! * Every submitted operation completes (with its result or `timeout`) by its deadline, as seen
//!   by [`RedfishClient::try_result`]; each socket read and write is bounded by the deadline too.
//! * The password is read once, never logged, never shown by `Debug`; it is sent only over a
//!   TLS connection whose certificate passed the configured check.
//! * Certificates are verified unless `insecure` was set explicitly; then [`RedfishClient::warning`]
//!   says so for `bbwd status`.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

pub use crate::bmc::{Completion, OpId, BACKOFF_MAX, BACKOFF_MIN};
pub use crate::ipmi::{Failure, Health, Op, Power, PowerAction, Reply, Settings, SubmitError};

use crate::bmc::{BmcClient, Profile, Protocol};

/// The default HTTPS port of a Redfish service.
pub const DEFAULT_PORT: u16 = 443;

/// Longest reply body accepted, bytes. A ComputerSystem resource is a few KiB (tens on large
/// servers); anything near this is not one.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Longest wait for one reply from a service (a BMC's web server answers in tens to hundreds
/// of milliseconds; iDRAC and iLO take up to a few seconds for a session POST).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an idle connection is used, to keep it (and the session) open and to know that it
/// works. Redfish sessions time out after 30 min by default (`SessionTimeout`), web servers
/// close idle keep-alive connections after 5 to 60 s: a closed connection is simply reopened.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// A password read from its file. Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Reads `path` (mode 0600 or stricter checked), less one trailing newline.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        crate::fs::read_secret_file(path)
            .map(Secret)
            .map_err(|e| e.to_string())
    }

    /// A password given directly (tests).
    pub fn new(bytes: &[u8]) -> Secret {
        Secret(bytes.to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How the service's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Signed by a CA in this PEM file, and valid for the host name or IP address.
    CaFile(PathBuf),
    /// Exactly this certificate (SHA-256 of its DER), whoever signed it, whatever its names.
    Fingerprint([u8; 32]),
    /// Not checked at all (`insecure = true`): anyone on the path can read the password.
    Insecure,
}

/// A Redfish service and the system on it to fence.
#[derive(Debug, Clone)]
pub struct Service {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    /// The ComputerSystem's path, e.g. `/redfish/v1/Systems/1`; `None`: the only one listed.
    pub system: Option<String>,
    pub tls: Tls,
}

impl Service {
    /// `Redfish https://host:port`, as errors and logs name it.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("Redfish https://[{}]:{}", self.host, self.port)
        } else {
            format!("Redfish https://{}:{}", self.host, self.port)
        }
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Reads the CA certificates of a PEM file; at least one, all parseable.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(c.map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "{}: no \"BEGIN CERTIFICATE\" block: not a PEM certificate file",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    let (_, bad) = roots.add_parsable_certificates(certs.iter().cloned());
    if bad > 0 || roots.is_empty() {
        return Err(format!(
            "{}: {bad} of {} certificates cannot be used as a CA (not valid X.509)",
            path.display(),
            certs.len()
        ));
    }
    Ok(certs)
}

/// Parses `sha256:AB:CD:...` (or the 64 hex digits without colons) into the digest.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let Some(hex) = text.strip_prefix("sha256:") else {
        return Err(format!(
            "\"{text}\": expected \"sha256:\" followed by the certificate's SHA-256 in hex \
             (openssl x509 -noout -fingerprint -sha256)"
        ));
    };
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "\"{text}\": a SHA-256 fingerprint is 64 hex digits (32 bytes, colons allowed)"
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).unwrap_or("00");
        out[i] = u8::from_str_radix(s, 16).map_err(|e| format!("\"{text}\": {e}"))?;
    }
    Ok(out)
}

/// `sha256:AB:CD:...` of a certificate, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint_text(digest: &[u8; 32]) -> String {
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hex.join(":"))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An operation on a Redfish service that failed: the same shape as [`crate::ipmi::Error`], so
/// that the callers handle one kind.
pub type Error = crate::ipmi::Error;

fn op_name(op: Op) -> &'static str {
    match op {
        Op::PowerStatus => "GET PowerState",
        Op::Power(PowerAction::Off) => "ComputerSystem.Reset ForceOff",
        Op::Power(PowerAction::On) => "ComputerSystem.Reset On",
        Op::Power(PowerAction::Cycle) => "ComputerSystem.Reset PowerCycle",
        Op::Power(PowerAction::Reset) => "ComputerSystem.Reset ForceRestart",
        Op::SetWatchdog { .. } | Op::ResetWatchdog | Op::GetWatchdog | Op::DisarmWatchdog => {
            "watchdog"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A certificate that is not the pinned one (the text names both fingerprints).
#[derive(Debug)]
struct PinMismatch(String);

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly one certificate (by SHA-256), or any (`insecure`); the handshake signature
/// is verified either way, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct PinVerifier {
    /// `None`: insecure, any certificate.
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(
                    format!(
                        "its fingerprint is {}, not the pinned tls_fingerprint {}",
                        fingerprint_text(&seen),
                        fingerprint_text(&pin)
                    ),
                )))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS client configuration for `tls` (reads the CA file).
fn tls_config(tls: &Tls) -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Unsupported(format!("TLS: {e}")))?;
    let config = match tls {
        Tls::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(read_ca_file(path).map_err(Failure::Unsupported)?);
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Tls::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: Some(*pin),
                provider,
            }))
            .with_no_client_auth(),
        Tls::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: None,
                provider,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over one TLS connection (runs on the worker thread only)
// ---------------------------------------------------------------------------------------------

type Stream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// One HTTP reply.
struct Response {
    status: u16,
    reason: String,
    location: Option<String>,
    auth_token: Option<String>,
    body: Vec<u8>,
    /// The service will close the connection after this reply.
    close: bool,
}

impl Response {
    fn json(&self, what: &str) -> Result<serde_json::Value, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::Protocol(format!("{what}: the reply is not JSON: {e}")))
    }

    /// The service's own explanation of an error (`error.@Message.ExtendedInfo[0].Message`, or
    /// `error.message`), if it gave one.
    fn message(&self) -> String {
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
fn left(deadline: Instant, cap: Duration) -> Result<Duration, Failure> {
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

/// Opens the TCP connection and completes the TLS handshake (the certificate check).
fn connect(
    service: &Service,
    config: &Arc<ClientConfig>,
    reply_timeout: Duration,
    deadline: Instant,
) -> Result<Stream, Failure> {
    let addr: SocketAddr = (service.host.as_str(), service.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Unreachable(format!("cannot resolve {}: {e}", service.host)))?
        .next()
        .ok_or_else(|| Failure::Unreachable(format!("{} has no address", service.host)))?;
    let wait = left(deadline, reply_timeout)?;
    let tcp = TcpStream::connect_timeout(&addr, wait).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Failure::Unreachable(format!(
                "no answer within {} ms (wrong address or port, BMC down, or filtered)",
                wait.as_millis()
            ))
        }
        std::io::ErrorKind::ConnectionRefused => {
            Failure::Unreachable("connection refused (nothing listens on that TCP port)".into())
        }
        _ => Failure::Unreachable(e.to_string()),
    })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(service.host.clone())
        .map_err(|e| Failure::Unsupported(format!("\"{}\": {e}", service.host)))?;
    let tls = ClientConnection::new(config.clone(), name)
        .map_err(|e| Failure::Unsupported(format!("TLS: {e}")))?;
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    while stream.conn.is_handshaking() {
        let wait = left(deadline, reply_timeout)?;
        let _ = stream.sock.set_read_timeout(Some(wait));
        let _ = stream.sock.set_write_timeout(Some(wait));
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                let hint = match tls {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                        " (the certificate is not signed by a CA in ca_file)"
                    }
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. },
                    ) => " (the certificate does not name this host or IP address)",
                    _ => "",
                };
                return Err(Failure::Unreachable(format!(
                    "TLS handshake refused: {tls}{hint}"
                )));
            }
            return Err(match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    Failure::Unreachable(format!(
                        "TLS handshake: no answer within {} ms",
                        wait.as_millis()
                    ))
                }
                _ => Failure::Unreachable(format!("TLS handshake: {e}")),
            });
        }
    }
    Ok(stream)
}

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
    system: String,
    /// `ComputerSystem.Reset`'s target.
    reset_target: String,
}

impl Conn {
    /// One request and its reply. A kept connection the service closed meanwhile (nothing read
    /// back at all) is reopened once and the request sent again: every request bbwd sends may
    /// be repeated (a GET, a session log-in, a reset to the same state).
    fn request(
        &mut self,
        ctx: &Ctx<'_>,
        method: &str,
        path: &str,
        auth: bool,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Response, Failure> {
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

    /// An authenticated request; a 401 on a session token re-creates the session once.
    fn authed(
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

    /// Connects, logs in, finds the system and its reset action.
    fn open(ctx: &Ctx<'_>, deadline: Instant) -> Result<Conn, Failure> {
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
            None => {
                let systems = root["Systems"]["@odata.id"]
                    .as_str()
                    .unwrap_or("/redfish/v1/Systems")
                    .to_string();
                let r = conn.authed(ctx, "GET", &systems, None, deadline)?;
                check_auth(&r)?;
                if r.status != 200 {
                    return Err(http_failure(&format!("GET {systems}"), &r));
                }
                let v = r.json(&format!("GET {systems}"))?;
                let members: Vec<String> = v["Members"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(|m| m["@odata.id"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                match members.as_slice() {
                    [one] => local_path(ctx.service, one)?,
                    [] => {
                        return Err(Failure::Unsupported(format!(
                            "{systems} lists no ComputerSystem: nothing to fence"
                        )))
                    }
                    many => {
                        return Err(Failure::Unsupported(format!(
                        "{systems} lists {} systems ({}): set fencing.system to the one to fence",
                        many.len(),
                        many.join(", ")
                    )))
                    }
                }
            }
        };
        let r = conn.authed(ctx, "GET", &system, None, deadline)?;
        check_auth(&r)?;
        if r.status == 404 {
            return Err(Failure::Unsupported(format!(
                "GET {system}: HTTP 404: no such system on this service (fencing.system)"
            )));
        }
        if r.status != 200 {
            return Err(http_failure(&format!("GET {system}"), &r));
        }
        let v = r.json(&format!("GET {system}"))?;
        power_state(&v, &system)?;
        let target = v["Actions"]["#ComputerSystem.Reset"]["target"]
            .as_str()
            .map(|t| local_path(ctx.service, t))
            .transpose()?
            .unwrap_or_else(|| {
                format!(
                    "{}/Actions/ComputerSystem.Reset",
                    system.trim_end_matches('/')
                )
            });
        conn.system = system;
        conn.reset_target = target;
        Ok(conn)
    }

    fn run(&mut self, ctx: &Ctx<'_>, op: Op, deadline: Instant) -> Result<Reply, Failure> {
        match op {
            Op::PowerStatus => {
                let system = self.system.clone();
                let r = self.authed(ctx, "GET", &system, None, deadline)?;
                check_auth(&r)?;
                if r.status != 200 {
                    return Err(http_failure(&format!("GET {system}"), &r));
                }
                let v = r.json(&format!("GET {system}"))?;
                Ok(Reply::Power(power_state(&v, &system)?))
            }
            Op::Power(action) => {
                let reset_type = match action {
                    PowerAction::Off => "ForceOff",
                    PowerAction::On => "On",
                    PowerAction::Cycle => "PowerCycle",
                    PowerAction::Reset => "ForceRestart",
                };
                let body = format!("{{\"ResetType\":\"{reset_type}\"}}");
                let target = self.reset_target.clone();
                let r = self.authed(ctx, "POST", &target, Some(body.as_bytes()), deadline)?;
                check_auth(&r)?;
                match r.status {
                    200 | 202 | 204 => Ok(Reply::Done),
                    _ => Err(http_failure(&format!("POST {target}"), &r)),
                }
            }
            Op::SetWatchdog { .. } | Op::ResetWatchdog | Op::GetWatchdog | Op::DisarmWatchdog => {
                Err(Failure::Unsupported(
                    "the BMC watchdog is IPMI only; Redfish is for fencing".into(),
                ))
            }
        }
    }

    /// Best effort: deletes the session, so the service frees it at once.
    fn close(&mut self, ctx: &Ctx<'_>) {
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
fn check_auth(r: &Response) -> Result<(), Failure> {
    match r.status {
        401 => Err(Failure::BadCredentials),
        403 => Err(Failure::InsufficientPrivilege(format!(
            "HTTP 403 Forbidden{}: the user may not do this (it needs the ConfigureComponents privilege, e.g. the Operator role)",
            r.message()
        ))),
        _ => Ok(()),
    }
}

/// A reply that is not what was asked for: a redirect (never followed), or an error status.
fn http_failure(what: &str, r: &Response) -> Failure {
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

/// `PowerState` of a ComputerSystem. Only `Off` is off; the transitional states and `Paused`
/// count as on (the node may still run); anything else, or none, is a failure.
fn power_state(v: &serde_json::Value, system: &str) -> Result<Power, Failure> {
    match v.get("PowerState") {
        Some(serde_json::Value::String(s)) => match s.as_str() {
            "Off" => Ok(Power::Off),
            "On" | "PoweringOn" | "PoweringOff" | "Paused" => Ok(Power::On),
            other => Err(Failure::Protocol(format!(
                "GET {system}: unexpected PowerState \"{other}\" (expected On, Off, PoweringOn, PoweringOff or Paused)"
            ))),
        },
        Some(serde_json::Value::Null) | None => Err(Failure::Protocol(format!(
            "GET {system}: no PowerState in the reply (is it a ComputerSystem? fencing.system)"
        ))),
        Some(other) => Err(Failure::Protocol(format!(
            "GET {system}: PowerState is {other}, not a string"
        ))),
    }
}

/// A URI the service named (`Location`, an action target) as a path on this same service;
/// an absolute URL elsewhere is refused.
fn local_path(service: &Service, uri: &str) -> Result<String, Failure> {
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
enum Exchange {
    /// Not a byte came back on a kept connection: the service had closed it.
    Stale,
    Failed(Failure),
}

/// Writes one request and reads its reply, each socket wait bounded by `deadline`.
fn exchange(
    stream: &mut Stream,
    request: &[u8],
    head_only: bool,
    reply_timeout: Duration,
    deadline: Instant,
) -> Result<Response, Exchange> {
    let set_timeouts = |s: &mut Stream| -> Result<(), Exchange> {
        let wait = left(deadline, reply_timeout).map_err(Exchange::Failed)?;
        let _ = s.sock.set_read_timeout(Some(wait));
        let _ = s.sock.set_write_timeout(Some(wait));
        Ok(())
    };
    set_timeouts(stream)?;
    if let Err(e) = stream.write_all(request).and_then(|_| stream.flush()) {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Exchange::Stale,
            _ => Exchange::Failed(io_failure(e, "sending the request")),
        });
    }
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    // Headers.
    let (head_len, status, reason, location, auth_token, length, chunked, close) = loop {
        set_timeouts(stream)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(Exchange::Stale),
            Ok(0) => {
                return Err(Exchange::Failed(Failure::Protocol(
                    "the service closed the connection in the middle of the reply headers".into(),
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
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let mut length = None;
                let mut chunked = false;
                let mut close = resp.version == Some(0);
                let mut location = None;
                let mut auth_token = None;
                for h in resp.headers.iter() {
                    let value = String::from_utf8_lossy(h.value).trim().to_string();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = Some(value.parse::<usize>().map_err(|_| {
                            Exchange::Failed(Failure::Protocol(format!(
                                "bad Content-Length \"{value}\""
                            )))
                        })?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = value.to_ascii_lowercase().contains("chunked");
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    } else if h.name.eq_ignore_ascii_case("location") {
                        location = Some(value);
                    } else if h.name.eq_ignore_ascii_case("x-auth-token") {
                        auth_token = Some(value);
                    }
                }
                let reason = resp.reason.unwrap_or("").to_string();
                break (
                    len, status, reason, location, auth_token, length, chunked, close,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => continue,
            Ok(httparse::Status::Partial) => {
                return Err(Exchange::Failed(Failure::Protocol(
                    "reply headers larger than 64 KiB".into(),
                )))
            }
            Err(e) => {
                return Err(Exchange::Failed(Failure::Protocol(format!(
                    "malformed HTTP reply: {e}"
                ))))
            }
        }
    };
    let mut body = buf.split_off(head_len);
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let mut read_more = |stream: &mut Stream, body: &mut Vec<u8>| -> Result<bool, Exchange> {
        set_timeouts(stream)?;
        match stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                body.extend_from_slice(&chunk[..n]);
                if body.len() > MAX_REPLY_BYTES + 64 * 1024 {
                    return Err(Exchange::Failed(Failure::Protocol(format!(
                        "reply larger than {MAX_REPLY_BYTES} bytes"
                    ))));
                }
                Ok(true)
            }
            // A peer that closes without close_notify after a complete reply.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Exchange::Failed(io_failure(e, "reading the reply body"))),
        }
    };
    let cut = |what: &str| Exchange::Failed(Failure::Protocol(format!("reply cut short: {what}")));
    let mut close = close;
    let body = if no_body {
        Vec::new()
    } else if chunked {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match httparse::parse_chunk_size(&body[pos..]) {
                Ok(httparse::Status::Complete((skip, size))) => {
                    let size = usize::try_from(size).unwrap_or(usize::MAX);
                    if size > MAX_REPLY_BYTES {
                        return Err(Exchange::Failed(Failure::Protocol(format!(
                            "reply larger than {MAX_REPLY_BYTES} bytes"
                        ))));
                    }
                    let start = pos + skip;
                    if size == 0 {
                        // Trailers are not used by Redfish; the final CRLF may still be
                        // on its way: read it so that the connection stays in step.
                        while !body[start..].windows(2).any(|w| w == b"\r\n") {
                            if !read_more(stream, &mut body)? {
                                break;
                            }
                        }
                        break out;
                    }
                    while body.len() < start + size + 2 {
                        if !read_more(stream, &mut body)? {
                            return Err(cut("chunked body"));
                        }
                    }
                    out.extend_from_slice(&body[start..start + size]);
                    pos = start + size + 2;
                }
                Ok(httparse::Status::Partial) => {
                    if !read_more(stream, &mut body)? {
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
    } else if let Some(length) = length {
        if length > MAX_REPLY_BYTES {
            return Err(Exchange::Failed(Failure::Protocol(format!(
                "reply of {length} bytes, more than {MAX_REPLY_BYTES}"
            ))));
        }
        while body.len() < length {
            if !read_more(stream, &mut body)? {
                return Err(cut("fewer bytes than its Content-Length"));
            }
        }
        body.truncate(length);
        body
    } else {
        // Neither: the body ends with the connection.
        while read_more(stream, &mut body)? {}
        close = true;
        body
    };
    Ok(Response {
        status,
        reason,
        location,
        auth_token,
        body,
        close,
    })
}

/// What a conversation needs besides the connection.
struct Ctx<'a> {
    service: &'a Service,
    config: &'a Arc<ClientConfig>,
    reply_timeout: Duration,
    name: &'a str,
}

/// A Redfish service as a worker holds it: the service, its TLS configuration (built once, at
/// start) and its name.
#[derive(Debug, Clone)]
pub struct Endpoint {
    service: Service,
    config: Arc<ClientConfig>,
    name: String,
}

impl Endpoint {
    fn ctx(&self, reply_timeout: Duration) -> Ctx<'_> {
        Ctx {
            service: &self.service,
            config: &self.config,
            reply_timeout,
            name: &self.name,
        }
    }
}

impl Protocol for Endpoint {
    type Session = Conn;

    const PROFILE: Profile = Profile {
        thread_name: "bbwd-redfish",
        // Enough for rustls and serde_json; the default 2 MiB would be mostly untouched but
        // a smaller stack bounds what the thread can map.
        stack_bytes: Some(256 * 1024),
        protocol: "Redfish",
        panicked: "the Redfish client",
        session: "connection",
        reconnect_op: "connect",
        keepalive_reply_timeouts: 4,
        // A retry needs a connection and one request: half a second is room enough even when
        // the reply timeout is longer.
        retry_room_cap: Duration::from_millis(500),
        // Every socket wait while connecting is bounded by the deadline itself.
        deadline_after_open: false,
    };

    fn open(&self, reply_timeout: Duration, deadline: Instant) -> Result<Conn, Failure> {
        let conn = Conn::open(&self.ctx(reply_timeout), deadline)?;
        log::debug!("{}: connected, system {}", self.name, conn.system);
        Ok(conn)
    }

    fn run(
        &self,
        conn: &mut Conn,
        op: Op,
        reply_timeout: Duration,
        deadline: Instant,
    ) -> Result<Reply, Failure> {
        conn.run(&self.ctx(reply_timeout), op, deadline)
    }

    fn close(&self, conn: &mut Conn, reply_timeout: Duration) {
        conn.close(&self.ctx(reply_timeout));
    }

    fn op_name(op: Op) -> &'static str {
        op_name(op)
    }
}

// ---------------------------------------------------------------------------------------------
// The client (the caller's side)
// ---------------------------------------------------------------------------------------------

/// The caller's handle on one Redfish service: submit operations, poll
/// [`fd`](BmcClient::fd), collect results. The same worker as [`crate::ipmi::IpmiClient`]'s.
pub type RedfishClient = BmcClient<Endpoint>;

impl BmcClient<Endpoint> {
    /// Starts the worker for `service`. Checks what can be checked without the network (the CA
    /// file is read and parsed here).
    pub fn start(service: Service, settings: Settings) -> Result<RedfishClient, Error> {
        let name = service.name();
        let config = tls_config(&service.tls).map_err(|failure| Error {
            bmc: name.clone(),
            op: "start",
            failure,
        })?;
        let endpoint = Endpoint {
            service,
            config,
            name: name.clone(),
        };
        BmcClient::spawn(endpoint, name, settings)
    }

    /// What `bbwd status` must warn about: an unverified certificate.
    pub fn warning(&self) -> Option<&'static str> {
        (self.target().service.tls == Tls::Insecure).then_some(
            "TLS certificate NOT verified (insecure = true): anyone on the path can read the BMC password and fake a confirmed off",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_and_without_colons_and_print_back() {
        let hex = "AB".repeat(32);
        let a = parse_fingerprint(&format!("sha256:{hex}")).unwrap();
        assert_eq!(a, [0xAB; 32]);
        let colons = fingerprint_text(&a);
        assert_eq!(parse_fingerprint(&colons).unwrap(), a);
        assert!(parse_fingerprint(&hex).unwrap_err().contains("sha256:"));
        assert!(parse_fingerprint("sha256:ABCD")
            .unwrap_err()
            .contains("64 hex"));
        assert!(parse_fingerprint(&format!("sha256:{}", "ZZ".repeat(32))).is_err());
    }

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

    #[test]
    fn power_states_map_only_off_to_off() {
        let s = |v: serde_json::Value| power_state(&v, "/redfish/v1/Systems/1");
        assert_eq!(s(serde_json::json!({"PowerState": "Off"})), Ok(Power::Off));
        for on in ["On", "PoweringOn", "PoweringOff", "Paused"] {
            assert_eq!(s(serde_json::json!({ "PowerState": on })), Ok(Power::On));
        }
        let missing = s(serde_json::json!({"Id": "1"})).unwrap_err().to_string();
        assert!(missing.contains("no PowerState"), "{missing}");
        let odd = s(serde_json::json!({"PowerState": "Sleeping"}))
            .unwrap_err()
            .to_string();
        assert!(odd.contains("unexpected PowerState \"Sleeping\""), "{odd}");
        assert!(s(serde_json::json!({"PowerState": 1})).is_err());
    }

    #[test]
    fn uris_off_the_host_are_refused() {
        let svc = Service {
            host: "10.0.1.2".into(),
            port: 443,
            username: "u".into(),
            password: Secret::new(b"p"),
            system: None,
            tls: Tls::Insecure,
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

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("bbwd-redfish-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(read_ca_file(&path)
            .unwrap_err()
            .contains("BEGIN CERTIFICATE"));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(read_ca_file(&path).is_err());
        assert!(read_ca_file(&dir.join("missing.pem")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
