//! One BMC, spoken to over Redfish (DMTF DSP0266): HTTP/1.1 over TLS (rustls), JSON bodies.
//! Used for fencing the peer (`bbwd fence`, the pair's fencer) when `[fencing] method =
//! "redfish"`; the IPMI counterpart is [`crate::ipmi`], and [`crate::fence_device`] puts the two
//! behind one interface.
//!
//! Files: `mod.rs` the configuration ([`Service`], [`Secret`]), the caller's [`RedfishClient`]
//! and the [`Protocol`] that hands a connection to the worker thread of [`crate::bmc`] (shared
//! with IPMI); `tls.rs` the certificate check and the TLS connection; `http.rs` one HTTP/1.1
//! request and its reply; `session.rs` the connection with its log-in (SessionService token or
//! basic authentication); `system.rs` the ComputerSystem: which one, its `PowerState`, its
//! `ComputerSystem.Reset`.
//!
//! Owns: the TLS connection and the Redfish session to one service, kept on a worker thread;
//! the certificate check (a CA file, a pinned fingerprint, or, only when asked, none); the
//! ComputerSystem to act on; the mapping of every failure to one clear [`Error`] naming the
//! service and the operation. Must not: decide anything (polling `PowerState` until `Off` is the
//! caller's: `bbwd fence` (`agent/src/fencing.rs`) and the pair's fence procedure do it exactly as with IPMI), or
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
//! * No panic crosses the worker's boundary (`catch_unwind`, in [`crate::bmc`]); a dead worker
//!   is replaced at the next submit.
//! * Every submitted operation completes (with its result or `timeout`) by its deadline, as seen
//!   by [`RedfishClient::try_result`]; each socket read and write is bounded by the deadline too.
//! * The password is read once, never logged, never shown by `Debug`; it is sent only over a
//!   TLS connection whose certificate passed the configured check.
//! * Certificates are verified unless `insecure` was set explicitly; then [`RedfishClient::warning`]
//!   says so for `bbwd status`.

mod http;
mod session;
mod system;
mod tls;

pub use crate::bmc::{Completion, OpId, BACKOFF_MAX, BACKOFF_MIN};
pub use crate::ipmi::{Failure, Health, Op, Power, PowerAction, Reply, Settings, SubmitError};
pub use tls::{fingerprint_text, parse_fingerprint, read_ca_file, Tls};

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::bmc::{BmcClient, Profile, Protocol};
use session::Conn;
use tls::tls_config;

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
// Configuration (`Tls` is in tls.rs)
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
        // Connecting, logging in and the keep-alive's GET all share this deadline (every socket
        // wait is bounded by it).
        keepalive_reply_timeouts: 4,
        // The reply timeout (5 s) is long next to a fence timeout: a retry is tried while more
        // than 500 ms are left, not only while a whole reply timeout is.
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
