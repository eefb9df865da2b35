//! The worker thread that owns one BMC's session: runs submitted operations against their
//! deadlines, keeps the session alive, reconnects with backoff, and turns every failure (a
//! panic included) into a [`Failure`].
//!
//! Owns: the [`Conn`] (an RMCP+ [`Session`] or ipmi-rs's `/dev/ipmi0` transport), the retry
//! policy (once, on a fresh session, for failures a fresh session may cure), the shared
//! [`Health`]. Must not: block the caller (it runs on its own thread), or reuse a session
//! after any error.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipmi_rs::connection::{CompletionErrorCode, IpmiCommand, Message};
use ipmi_rs::{Ipmi, IpmiError};

use super::session::{Session, Suite, Wanted};
use super::{
    cmd, Error, Failure, Malformed, Op, Reply, Target, WatchdogAction, BACKOFF_MAX, BACKOFF_MIN,
    CIPHER_SUITE_AUTO, KEEPALIVE, REPLY_TIMEOUT, TIMER_USE_SMS_OS,
};

// ---------------------------------------------------------------------------------------------
// One session (runs on the worker thread only)
// ---------------------------------------------------------------------------------------------

pub(super) enum Conn {
    Lan(Box<Session>),
    Local(Box<Ipmi<ipmi_rs::File>>),
}

/// The raw byte of a completion code (ipmi-rs keeps only the enum).
fn cc_byte(c: CompletionErrorCode) -> u8 {
    use ipmi_rs::connection::CompletionErrorCode as C;
    match c {
        C::NodeBusy => 0xC0,
        C::InvalidCommand => 0xC1,
        C::InvalidCommandForLun => 0xC2,
        C::ProcessingTimeout => 0xC3,
        C::OutOfSpace => 0xC4,
        C::ReservationCancelledOrInvalidId => 0xC5,
        C::RequestDataTruncated => 0xC6,
        C::RequestDataLenInvalid => 0xC7,
        C::RequestDataLengthLimitExceeded => 0xC8,
        C::ParameterOutOfRange => 0xC9,
        C::CannotReturnNumOfRequestedBytes => 0xCA,
        C::RequestedDatapointNotPresent => 0xCB,
        C::InvalidDataFieldInRequest => 0xCC,
        C::CommandIllegalForSensorOrRecord => 0xCD,
        // 0xCE, or 0xD0-0xD2 (ipmi-rs does not export the reason type): all "try later".
        C::ResponseUnavailable { .. } => 0xCE,
        C::CannotExecuteDuplicateRequest => 0xCF,
        C::DestinationUnavailable => 0xD3,
        C::InsufficientPrivilege => 0xD4,
        C::CannotExecuteCommandInCurrentState => 0xD5,
        C::SubFunctionDisabled => 0xD6,
        C::Unspecified => 0xFF,
        C::Oem(v) | C::CommandSpecific(v) | C::Reserved(v) => v,
    }
}

fn io_is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A completion code as a failure (0xd4 named for what it means here).
fn completion_failure(cc: u8) -> Failure {
    match cc {
        0xD4 => Failure::InsufficientPrivilege(
            "the BMC answered 0xd4: the user's privilege is too low for this command".into(),
        ),
        cc => Failure::Completion(cc),
    }
}

/// The outcome of a command's reply on `/dev/ipmi0` (ipmi-rs).
fn command_failure<E: fmt::Debug>(
    e: IpmiError<E, Malformed>,
    conn_failure: impl FnOnce(E) -> Failure,
) -> Failure {
    match e {
        IpmiError::Connection(c) => conn_failure(c),
        IpmiError::Failed {
            completion_code, ..
        }
        | IpmiError::Command {
            completion_code: Some(completion_code),
            ..
        } => completion_failure(cc_byte(completion_code)),
        IpmiError::Command {
            error: Malformed(why),
            ..
        } => Failure::Protocol(why.into()),
        IpmiError::UnexpectedResponse {
            netfn_recvd,
            cmd_recvd,
            ..
        } => Failure::Protocol(format!(
            "reply to another command ({netfn_recvd:?} 0x{cmd_recvd:02x}): the session is out of step"
        )),
        IpmiError::NetFnIsResponse(n) => Failure::Protocol(format!("bad netfn {n:?}")),
    }
}

fn local_failure(e: std::io::Error) -> Failure {
    if io_is_timeout(&e) {
        Failure::Timeout
    } else {
        Failure::Protocol(e.to_string())
    }
}

/// What `Bmc::cipher_suite` asks of the session (checked at `IpmiClient::start`).
fn wanted(suite: u8) -> Result<Wanted, Failure> {
    if suite == CIPHER_SUITE_AUTO {
        return Ok(Wanted::Auto);
    }
    Suite::from_id(suite)
        .map(Wanted::Suite)
        .ok_or_else(|| Failure::Unsupported(format!("cipher suite {suite}")))
}

impl Conn {
    /// Opens a session (and raises its privilege).
    fn open(target: &Target, reply_timeout: Duration) -> Result<Conn, Failure> {
        match target {
            Target::Lan(bmc) => {
                let addr: SocketAddr = (bmc.host.as_str(), bmc.port)
                    .to_socket_addrs()
                    .map_err(|e| Failure::Unreachable(format!("cannot resolve {}: {e}", bmc.host)))?
                    .next()
                    .ok_or_else(|| Failure::Unreachable(format!("{} has no address", bmc.host)))?;
                let session = Session::open(
                    addr,
                    bmc.username.as_bytes(),
                    &bmc.password.0,
                    wanted(bmc.cipher_suite)?,
                    reply_timeout,
                )?;
                log::debug!(
                    "{}: RMCP+ session, cipher suite {}",
                    target.name(),
                    session.suite().id()
                );
                let mut conn = Conn::Lan(Box::new(session));
                // A session starts at user privilege: raise it, or the chassis and watchdog
                // commands fail with 0xd4.
                let mut granted = None;
                for level in [cmd::ADMINISTRATOR, cmd::OPERATOR] {
                    match conn.send(cmd::SetSessionPrivilege(level)) {
                        Ok(p) => {
                            granted = Some(p);
                            break;
                        }
                        // 0x80/0x81: not allowed this high for this user or channel.
                        Err(Failure::Completion(0x80 | 0x81))
                        | Err(Failure::InsufficientPrivilege(_)) => {}
                        Err(other) => return Err(other),
                    }
                }
                if granted.is_none() {
                    return Err(Failure::InsufficientPrivilege(format!(
                        "user \"{}\" may not act as operator or administrator on this BMC",
                        bmc.username
                    )));
                }
                Ok(conn)
            }
            Target::Local(path) => {
                let file = ipmi_rs::File::new(path, reply_timeout).map_err(|e| {
                    Failure::Unreachable(match e.raw_os_error() {
                        Some(libc::ENOENT) => format!(
                            "{}: no such device (load the ipmi_si and ipmi_devintf modules)",
                            path.display()
                        ),
                        _ => format!("{}: {e}", path.display()),
                    })
                })?;
                Ok(Conn::Local(Box::new(Ipmi::new(file))))
            }
        }
    }

    fn send<C: IpmiCommand<Error = Malformed>>(&mut self, c: C) -> Result<C::Output, Failure> {
        match self {
            Conn::Lan(session) => {
                let m: Message = c.into();
                let (cc, data) = session.command(m.netfn_raw(), m.cmd(), m.data())?;
                if cc != 0 {
                    return Err(completion_failure(cc));
                }
                C::parse_success_response(&data)
                    .map_err(|Malformed(why)| Failure::Protocol(why.into()))
            }
            Conn::Local(ipmi) => ipmi
                .send_recv(c)
                .map_err(|e| command_failure(e, local_failure)),
        }
    }

    fn run(&mut self, op: Op) -> Result<Reply, Failure> {
        Ok(match op {
            Op::PowerStatus => Reply::Power(self.send(cmd::GetChassisStatus)?),
            Op::Power(a) => {
                self.send(cmd::ChassisControl(a))?;
                Reply::Done
            }
            Op::SetWatchdog {
                action,
                countdown_100ms,
            } => {
                self.send(cmd::SetWatchdogTimer {
                    // SMS/OS use; bit 6 = 0: a Set stops a running timer; bit 7 = 0: log
                    // the expiry in the SEL.
                    timer_use: TIMER_USE_SMS_OS,
                    action,
                    clear_flags: 1 << TIMER_USE_SMS_OS,
                    countdown_100ms,
                })?;
                Reply::Done
            }
            Op::ResetWatchdog => {
                self.send(cmd::ResetWatchdogTimer)?;
                Reply::Done
            }
            Op::GetWatchdog => Reply::Watchdog(self.send(cmd::GetWatchdogTimer)?),
            Op::DisarmWatchdog => {
                self.send(cmd::SetWatchdogTimer {
                    timer_use: TIMER_USE_SMS_OS,
                    action: WatchdogAction::None,
                    clear_flags: 0,
                    countdown_100ms: 0xffff,
                })?;
                Reply::Done
            }
        })
    }

    /// Best effort: Close Session, so the BMC frees the slot at once.
    fn close(&mut self) {
        if let Conn::Lan(session) = self {
            if let Err(f) = session.close() {
                log::debug!("close session: {f}; it will expire instead");
            }
        }
    }
}

/// Runs `f`, turning a panic into a protocol failure.
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::Protocol(format!(
                "the IPMI library failed (panicked: {msg}); the session was dropped"
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker thread
// ---------------------------------------------------------------------------------------------

/// A submitted operation's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId(pub(super) u64);

/// A finished operation.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: OpId,
    pub op: Op,
    pub result: Result<Reply, Error>,
    /// How long the BMC conversation took (the worker's view).
    pub elapsed: Duration,
}

/// What the background keep-alive knows about the session.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// A session is open and its last use succeeded.
    pub up: bool,
    /// The last failure (cleared by the next success).
    pub last_error: Option<Error>,
    /// Sessions opened since start (a steady daemon opens one).
    pub sessions_opened: u64,
    /// Operations completed successfully / failed (including keep-alives).
    pub ok: u64,
    pub failed: u64,
}

pub(super) enum Request {
    Run { id: OpId, op: Op, deadline: Instant },
    Shutdown,
}

pub(super) struct Shared {
    pub(super) health: Mutex<Health>,
    /// Set by the worker as its very last act.
    pub(super) exited: Mutex<bool>,
}

/// Client-side tuning.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub reply_timeout: Duration,
    /// `Some`: keep a session open and check it this often while idle, reconnecting with
    /// backoff (the daemon). `None`: a session only for submitted operations (the CLI).
    pub keepalive: Option<Duration>,
    /// The operation that checks the session (power status for a fencer, get watchdog for the
    /// watchdog).
    pub keepalive_op: Op,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            reply_timeout: REPLY_TIMEOUT,
            keepalive: Some(KEEPALIVE),
            keepalive_op: Op::PowerStatus,
        }
    }
}

struct Worker {
    target: Target,
    name: String,
    settings: Settings,
    conn: Option<Conn>,
    /// When the session was last used (successfully).
    last_used: Instant,
    /// Background reconnects: not before this, and the wait after the next failure.
    next_connect: Instant,
    backoff: Duration,
    shared: Arc<Shared>,
    wake: Arc<EventFd>,
}

impl Worker {
    fn main(mut self, rx: mpsc::Receiver<Request>, tx: mpsc::Sender<Completion>) {
        loop {
            let wait = self.idle_wait(Instant::now());
            let req = match wait {
                Some(w) => rx.recv_timeout(w),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match req {
                Ok(Request::Run { id, op, deadline }) => {
                    let started = Instant::now();
                    let result = self.run(op, deadline).map_err(|failure| Error {
                        bmc: self.name.clone(),
                        op: op.name(),
                        failure,
                    });
                    self.note(&result);
                    let done = Completion {
                        id,
                        op,
                        result,
                        elapsed: started.elapsed(),
                    };
                    if tx.send(done).is_err() {
                        break;
                    }
                    self.wake.signal();
                }
                Ok(Request::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.keepalive(),
            }
        }
        if let Some(mut c) = self.conn.take() {
            let _ = guarded(|| {
                c.close();
                Ok(())
            });
        }
        if let Ok(mut e) = self.shared.exited.lock() {
            *e = true;
        }
        self.wake.signal();
    }

    /// How long to wait for a request before background work is due.
    fn idle_wait(&self, now: Instant) -> Option<Duration> {
        let every = self.settings.keepalive?;
        let due = if self.conn.is_some() {
            self.last_used + every
        } else {
            self.next_connect
        };
        Some(due.saturating_duration_since(now))
    }

    fn keepalive(&mut self) {
        let reconnect = self.conn.is_none();
        let deadline = Instant::now() + self.settings.reply_timeout * 8;
        let op = self.settings.keepalive_op;
        let result = self.attempt(op, deadline).map_err(|failure| Error {
            bmc: self.name.clone(),
            op: if reconnect {
                "open session"
            } else {
                "keep-alive"
            },
            failure,
        });
        match &result {
            Ok(_) => self.backoff = BACKOFF_MIN,
            Err(_) => {
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
        let changed = self.note(&result);
        if changed {
            self.wake.signal();
        }
    }

    /// Records an outcome in the shared health; returns whether `up` changed.
    fn note(&self, result: &Result<Reply, Error>) -> bool {
        let Ok(mut h) = self.shared.health.lock() else {
            return false;
        };
        let was = h.up;
        match result {
            Ok(_) => {
                h.up = true;
                h.ok += 1;
                h.last_error = None;
            }
            Err(e) => {
                h.up = self.conn.is_some();
                h.failed += 1;
                h.last_error = Some(e.clone());
            }
        }
        was != h.up
    }

    /// One submitted operation: on the open session, then once more on a fresh one if that
    /// may help and time remains.
    fn run(&mut self, op: Op, deadline: Instant) -> Result<Reply, Failure> {
        let had_session = self.conn.is_some();
        match self.attempt(op, deadline) {
            Err(f) if had_session && !f.is_final() => {
                if Instant::now() + self.settings.reply_timeout < deadline {
                    log::info!(
                        "{}: {}: {f}; retrying once on a fresh session",
                        self.name,
                        op.name()
                    );
                    match self.attempt(op, deadline) {
                        // The BMC went silent: the first failure says it best.
                        Err(Failure::Unreachable(_)) => Err(f),
                        other => other,
                    }
                } else {
                    Err(f)
                }
            }
            other => other,
        }
    }

    /// Connects if needed, then runs `op`. Any failure drops the session.
    fn attempt(&mut self, op: Op, deadline: Instant) -> Result<Reply, Failure> {
        if Instant::now() >= deadline {
            return Err(Failure::Timeout);
        }
        if self.conn.is_none() {
            let target = &self.target;
            let t = self.settings.reply_timeout;
            let conn = guarded(|| Conn::open(target, t))?;
            if let Ok(mut h) = self.shared.health.lock() {
                h.sessions_opened += 1;
            }
            log::debug!("{}: session opened", self.name);
            self.conn = Some(conn);
            if Instant::now() >= deadline {
                // The session stays: it is fine, only this operation ran out of time.
                return Err(Failure::Timeout);
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Protocol("no session".into()));
        };
        match guarded(|| conn.run(op)) {
            Ok(r) => {
                self.last_used = Instant::now();
                Ok(r)
            }
            Err(f) => {
                // Never trust this session again: a late reply would be read as the answer
                // to the next command. Dropping it closes its socket.
                self.conn = None;
                Err(f)
            }
        }
    }
}

type Spawned = (
    mpsc::Sender<Request>,
    mpsc::Receiver<Completion>,
    JoinHandle<()>,
);

pub(super) fn spawn_worker(
    target: &Target,
    name: &str,
    settings: Settings,
    shared: &Arc<Shared>,
    wake: &Arc<EventFd>,
) -> std::io::Result<Spawned> {
    let (req_tx, req_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let now = Instant::now();
    let worker = Worker {
        target: target.clone(),
        name: name.to_string(),
        settings,
        conn: None,
        last_used: now,
        next_connect: now,
        backoff: BACKOFF_MIN,
        shared: shared.clone(),
        wake: wake.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("bbwd-ipmi".into())
        .spawn(move || {
            // Panics inside conversations are caught per operation; this is the last net.
            let _ = catch_unwind(AssertUnwindSafe(|| worker.main(req_rx, done_tx)));
        })?;
    Ok((req_tx, done_rx, thread))
}

/// A non-blocking wake-up for the caller's poll loop (an eventfd).
pub(super) struct EventFd(pub(super) OwnedFd);

impl EventFd {
    pub(super) fn new() -> std::io::Result<EventFd> {
        // SAFETY: eventfd(2) with valid flags; the returned descriptor is checked and then
        // owned by exactly one `OwnedFd`.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(super) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; a full counter
        // (EAGAIN) still leaves it readable, which is all a wake-up needs.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    pub(super) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd we own.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}
