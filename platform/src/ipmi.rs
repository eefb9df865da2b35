//! One BMC, spoken to over IPMI: RMCP+ (IPMI 2.0 "lanplus", cipher suite 3) through the
//! `ipmi-rs` crate as published, or the local `/dev/ipmi0` through its `File` transport.
//! Used for fencing the peer (`bbwd fence`, the pair's fencer) and for the BMC watchdog.
//!
//! Owns: the session to one BMC, kept on a worker thread; the custom commands ipmi-rs lacks
//! (chassis status and control, the watchdog timer, session privilege); the mapping of every
//! failure to one clear [`Error`] naming the BMC and the operation. Must not: decide anything
//! (whether a fence succeeded "enough" is the caller's), or block the caller: the daemon submits
//! an operation, polls [`IpmiClient::fd`], and collects the outcome with
//! [`IpmiClient::try_result`]; only the CLI's [`IpmiClient::call`] waits.
//!
//! # Theory of operation: working around ipmi-rs 0.6
//! The crate works (sessions in 0.2 ms, thousands of requests per session) but has gaps that
//! this module covers, so that nothing of them reaches the agent:
//!
//! | gap in ipmi-rs 0.6                                     | what this module does                                   |
//! |--------------------------------------------------------|---------------------------------------------------------|
//! | the session starts at user privilege                   | Set Session Privilege Level (App 0x3B) to administrator, operator if refused, right after activation |
//! | no Close Session, session id not exposed; BMCs have few slots (ipmi_sim 63), leaked ones stay until the BMC's idle timeout | ONE long-lived session per BMC, kept alive below the idle timeout ([`KEEPALIVE`]); background reconnects back off ([`BACKOFF_MIN`]..[`BACKOFF_MAX`]), never a loop; on close, a best-effort Close Session by handle (IPMI 2.0 §22.19; ipmi_sim 2.0.33 refuses it, its sessions expire instead) |
//! | no retransmission, no request/reply matching (a late reply is taken as the next command's answer) | after ANY error the session and its socket are dropped, the next attempt opens a fresh one; a reply after a timeout can never be read |
//! | panics on socket send errors, a short RAKP 4, unknown algorithms | every conversation runs on the worker thread inside `catch_unwind`: a panic is a failed operation (`protocol error`) and drops the session |
//! | its timeout is per receive (activation takes 5)        | every operation has an overall deadline: the worker stops between steps past it, and the client answers `timeout` at the deadline whatever the worker does |
//! | the socket binds `[::]:0`                              | an IPv4 BMC is unreachable where `net.ipv6.bindv6only=1`; the error says so |
//!
//! An operation is tried on the open session; if that fails for a reason that a fresh session
//! may cure (timeout, protocol error, panic) and time remains, it is tried once more on a new
//! session. Definitive answers are never retried: bad credentials, insufficient privilege, a
//! completion code from the BMC. Repeating an operation must therefore be harmless: power off,
//! power on, status and the watchdog commands are; a chassis power cycle may cycle twice.
//!
//! # Invariants
//! * At most one session per [`IpmiClient`], owned by its worker thread; a session that failed
//!   once is never used again.
//! * No panic crosses the worker's boundary; a dead worker is replaced at the next submit.
//! * Every submitted operation completes (with its result or `timeout`) by its deadline, as
//!   seen by [`IpmiClient::try_result`]; results of abandoned operations are discarded by id.
//! * The password is read once, never logged, never shown by `Debug`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipmi_rs::connection::{CompletionErrorCode, IpmiCommand, Message, NetFn};
use ipmi_rs::rmcp::{
    ActivationError, RakpMessage2ErrorStatusCode, RakpMessage2ParseError, Rmcp, RmcpIpmiError,
    RmcpIpmiReceiveError, V2_0ActivationError,
};
use ipmi_rs::{Ipmi, IpmiError};

/// Longest wait for one reply from a BMC (ipmi-rs's per-receive timeout). A BMC answers in
/// well under 100 ms; a loaded one in a few hundred.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// How often an idle session is used, to keep it open and to know that it works. BMCs close
/// idle sessions after 30 s (ipmi_sim) to 60 s (the IPMI default).
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// First and longest wait between background reconnects after a failure (doubling).
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Longest password RMCP+ carries (IPMI 2.0: 20 bytes).
pub const MAX_PASSWORD_BYTES: usize = 20;

/// Longest user name (IPMI: 16 bytes; ipmi-rs silently sends the null user for longer ones).
pub const MAX_USERNAME_BYTES: usize = 16;

/// The only cipher suite ipmi-rs speaks: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
pub const CIPHER_SUITE: u8 = 3;

// ---------------------------------------------------------------------------------------------
// Targets, operations, replies, errors
// ---------------------------------------------------------------------------------------------

/// A BMC password, read from its file. Never printed.
#[derive(Clone)]
pub struct Password(Vec<u8>);

impl Password {
    /// Reads `path`: the whole file, less one trailing newline (`\n` or `\r\n`).
    pub fn from_file(path: &Path) -> Result<Password, String> {
        let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "{}: {} bytes: an IPMI 2.0 password is at most {MAX_PASSWORD_BYTES} bytes",
                path.display(),
                bytes.len()
            ));
        }
        Ok(Password(bytes))
    }

    /// A password given directly (tests).
    pub fn new(bytes: &[u8]) -> Password {
        Password(bytes.to_vec())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A BMC reached over RMCP+.
#[derive(Debug, Clone)]
pub struct Bmc {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Password,
    /// Must be [`CIPHER_SUITE`] (checked when the client starts).
    pub cipher_suite: u8,
}

/// Where the BMC is.
#[derive(Debug, Clone)]
pub enum Target {
    /// Over the network, RMCP+.
    Lan(Bmc),
    /// The local BMC through the kernel's IPMI driver (`/dev/ipmi0`).
    Local(PathBuf),
}

impl Target {
    /// `BMC host:port` or `BMC /dev/ipmi0`, as errors and logs name it.
    pub fn name(&self) -> String {
        match self {
            Target::Lan(b) if b.host.contains(':') => format!("BMC [{}]:{}", b.host, b.port),
            Target::Lan(b) => format!("BMC {}:{}", b.host, b.port),
            Target::Local(p) => format!("BMC {}", p.display()),
        }
    }
}

/// Chassis Control actions (Chassis 0x02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Off = 0,
    On = 1,
    Cycle = 2,
    Reset = 3,
}

/// The chassis power as the BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
}

impl Power {
    pub fn as_str(self) -> &'static str {
        match self {
            Power::On => "on",
            Power::Off => "off",
        }
    }
}

/// What the BMC watchdog does when it expires (Set Watchdog Timer, byte 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    None = 0,
    HardReset = 1,
    PowerDown = 2,
    PowerCycle = 3,
}

/// The BMC watchdog timer as Get Watchdog Timer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogTimer {
    /// Timer use (byte 1, bits 2:0): 4 = SMS/OS.
    pub timer_use: u8,
    /// The countdown is running.
    pub running: bool,
    /// Timeout action (byte 2, bits 2:0).
    pub action: u8,
    /// Expiration flags (byte 4): bit n set = timer use n expired since last cleared.
    pub expired_flags: u8,
    /// Initial countdown in 100 ms units.
    pub initial_100ms: u16,
    /// Present countdown in 100 ms units. `None` when the BMC leaves it out: ipmi_sim 2.0.33
    /// answers with the 6 bytes it was set with (and never shows `running`).
    pub present_100ms: Option<u16>,
}

/// Timer use SMS/OS (IPMI 2.0 table 27-2), the one an OS agent uses.
pub const TIMER_USE_SMS_OS: u8 = 4;

impl WatchdogTimer {
    /// The SMS/OS timer expired since its flag was last cleared (a reset by the watchdog).
    pub fn sms_os_expired(&self) -> bool {
        self.expired_flags & (1 << TIMER_USE_SMS_OS) != 0
    }
}

/// An operation on the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Get Chassis Status: the power state.
    PowerStatus,
    /// Chassis Control.
    Power(PowerAction),
    /// Set Watchdog Timer: SMS/OS use, logging on, no pre-timeout, `action`, countdown;
    /// clears the SMS/OS expiration flag. Does not start the countdown (the first reset does).
    SetWatchdog {
        action: WatchdogAction,
        countdown_100ms: u16,
    },
    /// Reset Watchdog Timer: (re)starts the countdown.
    ResetWatchdog,
    /// Get Watchdog Timer.
    GetWatchdog,
    /// Stops the watchdog: Set Watchdog Timer with action none and the timer stopped.
    DisarmWatchdog,
}

impl Op {
    /// The operation's name in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::PowerStatus => "chassis power status",
            Op::Power(PowerAction::Off) => "chassis power off",
            Op::Power(PowerAction::On) => "chassis power on",
            Op::Power(PowerAction::Cycle) => "chassis power cycle",
            Op::Power(PowerAction::Reset) => "chassis power reset",
            Op::SetWatchdog { .. } => "set watchdog timer",
            Op::ResetWatchdog => "reset watchdog timer",
            Op::GetWatchdog => "get watchdog timer",
            Op::DisarmWatchdog => "disarm watchdog timer",
        }
    }
}

/// What an operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Power(Power),
    Watchdog(WatchdogTimer),
    Done,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No session could be opened: nothing answers, refused, no route, no device.
    Unreachable(String),
    /// The BMC refused the user name or password. A user whose privilege limit is below
    /// administrator looks the same: ipmi-rs asks for administrator in RAKP 1, and BMCs
    /// (ipmi_sim among them) then refuse the log-in as they refuse a wrong password.
    BadCredentials,
    /// The user may not do this (its privilege limit is below operator).
    InsufficientPrivilege(String),
    /// The session was open but the BMC did not answer in time.
    Timeout,
    /// The BMC answered with an error completion code.
    Completion(u8),
    /// A malformed or unexpected reply, or the IPMI library failed (panicked).
    Protocol(String),
    /// Something this build cannot do (a cipher suite other than 3, an IPMI 1.5-only BMC).
    Unsupported(String),
}

impl Failure {
    /// A definitive answer: another attempt on a fresh session would get the same.
    fn is_final(&self) -> bool {
        matches!(
            self,
            Failure::BadCredentials
                | Failure::InsufficientPrivilege(_)
                | Failure::Completion(_)
                | Failure::Unsupported(_)
                | Failure::Unreachable(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "unreachable: {why}"),
            Failure::BadCredentials => f.write_str(
                "bad credentials: the BMC refused the user name or password (or the user may \
                 not log in as administrator, which ipmi-rs always asks for)",
            ),
            Failure::InsufficientPrivilege(why) => write!(f, "insufficient privilege: {why}"),
            Failure::Timeout => f.write_str("timeout: the BMC did not answer in time"),
            Failure::Completion(cc) => write!(
                f,
                "BMC error completion code 0x{cc:02x} ({})",
                completion_text(*cc)
            ),
            Failure::Protocol(why) => write!(f, "protocol error: {why}"),
            Failure::Unsupported(why) => write!(f, "unsupported: {why}"),
        }
    }
}

/// An operation on a BMC that failed: which BMC, which operation, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// `BMC host:port`.
    pub bmc: String,
    /// e.g. `chassis power off`, or `open session`.
    pub op: &'static str,
    pub failure: Failure,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.bmc, self.op, self.failure)
    }
}

impl std::error::Error for Error {}

fn completion_text(cc: u8) -> &'static str {
    match cc {
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC3 => "timeout while processing",
        0xC7 | 0xC8 => "request data length invalid",
        0xC9 => "parameter out of range",
        0xCC => "invalid data field in request",
        0xCE => "response unavailable",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege",
        0xD5 => "cannot execute in the present state",
        0xD6 => "sub-function disabled",
        0xFF => "unspecified error",
        0x80 => "command-specific (watchdog: not initialised)",
        0x81..=0xBE => "command-specific",
        _ => "see the IPMI specification",
    }
}

// ---------------------------------------------------------------------------------------------
// The custom commands (ipmi-rs has none of these)
// ---------------------------------------------------------------------------------------------

/// A reply that does not have the shape the command defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The custom commands, implementing ipmi-rs's command traits.
pub mod cmd {
    use super::*;

    /// Set Session Privilege Level (App 0x3B).
    pub struct SetSessionPrivilege(pub u8);
    /// Administrator, operator (IPMI privilege levels).
    pub const ADMINISTRATOR: u8 = 4;
    pub const OPERATOR: u8 = 3;

    impl From<SetSessionPrivilege> for Message {
        fn from(c: SetSessionPrivilege) -> Message {
            Message::new_request(NetFn::App, 0x3B, vec![c.0])
        }
    }
    impl IpmiCommand for SetSessionPrivilege {
        type Output = u8;
        type Error = Malformed;
        fn parse_success_response(data: &[u8]) -> Result<u8, Malformed> {
            data.first()
                .map(|p| p & 0x0f)
                .ok_or(Malformed("set session privilege: empty reply"))
        }
    }

    /// Get Session Info (App 0x3D) for the current session: its handle.
    pub struct GetCurrentSessionHandle;
    impl From<GetCurrentSessionHandle> for Message {
        fn from(_: GetCurrentSessionHandle) -> Message {
            Message::new_request(NetFn::App, 0x3D, vec![0x00])
        }
    }
    impl IpmiCommand for GetCurrentSessionHandle {
        /// (handle, active sessions)
        type Output = (u8, u8);
        type Error = Malformed;
        fn parse_success_response(data: &[u8]) -> Result<(u8, u8), Malformed> {
            match data {
                [handle, _slots, active, ..] => Ok((*handle, *active & 0x3f)),
                _ => Err(Malformed("get session info: short reply")),
            }
        }
    }

    /// Close Session (App 0x3C) by handle: session id 0 and the handle (IPMI 2.0 §22.19).
    pub struct CloseSessionByHandle(pub u8);
    impl From<CloseSessionByHandle> for Message {
        fn from(c: CloseSessionByHandle) -> Message {
            Message::new_request(NetFn::App, 0x3C, vec![0, 0, 0, 0, c.0])
        }
    }
    impl IpmiCommand for CloseSessionByHandle {
        type Output = ();
        type Error = Malformed;
        fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
            Ok(())
        }
    }

    /// Get Chassis Status (Chassis 0x01).
    pub struct GetChassisStatus;
    impl From<GetChassisStatus> for Message {
        fn from(_: GetChassisStatus) -> Message {
            Message::new_request(NetFn::Chassis, 0x01, Vec::new())
        }
    }
    impl IpmiCommand for GetChassisStatus {
        type Output = Power;
        type Error = Malformed;
        fn parse_success_response(data: &[u8]) -> Result<Power, Malformed> {
            // Byte 1, bit 0: "system power is on". Three bytes are mandatory.
            if data.len() < 3 {
                return Err(Malformed("get chassis status: short reply"));
            }
            Ok(if data[0] & 1 != 0 {
                Power::On
            } else {
                Power::Off
            })
        }
    }

    /// Chassis Control (Chassis 0x02).
    pub struct ChassisControl(pub PowerAction);
    impl From<ChassisControl> for Message {
        fn from(c: ChassisControl) -> Message {
            Message::new_request(NetFn::Chassis, 0x02, vec![c.0 as u8])
        }
    }
    impl IpmiCommand for ChassisControl {
        type Output = ();
        type Error = Malformed;
        fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
            Ok(())
        }
    }

    /// Set Watchdog Timer (App 0x24).
    pub struct SetWatchdogTimer {
        /// Byte 1: timer use, bit 6 don't stop, bit 7 don't log.
        pub timer_use: u8,
        pub action: WatchdogAction,
        /// Byte 4: expiration flags to clear.
        pub clear_flags: u8,
        pub countdown_100ms: u16,
    }
    impl From<SetWatchdogTimer> for Message {
        fn from(c: SetWatchdogTimer) -> Message {
            let [lsb, msb] = c.countdown_100ms.to_le_bytes();
            // Byte 3: pre-timeout interval 0 (no pre-timeout interrupt).
            let data = vec![c.timer_use, c.action as u8, 0, c.clear_flags, lsb, msb];
            Message::new_request(NetFn::App, 0x24, data)
        }
    }
    impl IpmiCommand for SetWatchdogTimer {
        type Output = ();
        type Error = Malformed;
        fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
            Ok(())
        }
    }

    /// Reset Watchdog Timer (App 0x22).
    pub struct ResetWatchdogTimer;
    impl From<ResetWatchdogTimer> for Message {
        fn from(_: ResetWatchdogTimer) -> Message {
            Message::new_request(NetFn::App, 0x22, Vec::new())
        }
    }
    impl IpmiCommand for ResetWatchdogTimer {
        type Output = ();
        type Error = Malformed;
        fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
            Ok(())
        }
    }

    /// Get Watchdog Timer (App 0x25).
    pub struct GetWatchdogTimer;
    impl From<GetWatchdogTimer> for Message {
        fn from(_: GetWatchdogTimer) -> Message {
            Message::new_request(NetFn::App, 0x25, Vec::new())
        }
    }
    impl IpmiCommand for GetWatchdogTimer {
        type Output = WatchdogTimer;
        type Error = Malformed;
        fn parse_success_response(d: &[u8]) -> Result<WatchdogTimer, Malformed> {
            // The spec says 8 bytes; accept the 6 that ipmi_sim sends (no present countdown).
            if d.len() < 6 {
                return Err(Malformed("get watchdog timer: short reply"));
            }
            Ok(WatchdogTimer {
                timer_use: d[0] & 0x07,
                running: d[0] & 0x40 != 0,
                action: d[1] & 0x07,
                expired_flags: d[3],
                initial_100ms: u16::from_le_bytes([d[4], d[5]]),
                present_100ms: (d.len() >= 8).then(|| u16::from_le_bytes([d[6], d[7]])),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One session (runs on the worker thread only)
// ---------------------------------------------------------------------------------------------

enum Conn {
    Lan(Box<Ipmi<Rmcp>>),
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

/// An I/O error while no session is up yet: why the BMC cannot be reached.
fn unreachable_io(e: &std::io::Error, waited: Duration) -> Failure {
    if io_is_timeout(e) {
        return Failure::Unreachable(format!(
            "no answer within {} ms (wrong address or port, BMC down, or filtered)",
            waited.as_millis()
        ));
    }
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => {
            Failure::Unreachable("connection refused (nothing listens on that UDP port)".into())
        }
        Some(libc::EAFNOSUPPORT) => Failure::Unreachable(format!(
            "{e}: ipmi-rs binds an IPv6 socket ([::]:0), which cannot reach an IPv4 BMC where \
             net.ipv6.bindv6only=1"
        )),
        _ => Failure::Unreachable(e.to_string()),
    }
}

/// The outcome of a command's reply, for either transport.
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
        } => match cc_byte(completion_code) {
            0xD4 => Failure::InsufficientPrivilege(
                "the BMC answered 0xd4: the user's privilege is too low for this command".into(),
            ),
            cc => Failure::Completion(cc),
        },
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

fn rmcp_failure(e: RmcpIpmiError) -> Failure {
    match e {
        RmcpIpmiError::Receive(RmcpIpmiReceiveError::Io(io)) if io_is_timeout(&io) => {
            Failure::Timeout
        }
        RmcpIpmiError::Receive(RmcpIpmiReceiveError::Io(io)) => unreachable_io(&io, Duration::ZERO),
        other => Failure::Protocol(format!("{other:?}")),
    }
}

fn local_failure(e: std::io::Error) -> Failure {
    if io_is_timeout(&e) {
        Failure::Timeout
    } else {
        Failure::Protocol(e.to_string())
    }
}

fn activation_failure(e: ActivationError, reply_timeout: Duration) -> Failure {
    use ActivationError as A;
    use V2_0ActivationError as V2;
    match e {
        A::BindSocket(io) | A::PingSend(io) | A::PongReceive(io) => {
            unreachable_io(&io, reply_timeout)
        }
        A::IpmiNotSupported | A::PongRead | A::RmcpError(_) => {
            Failure::Unreachable("the address answers RMCP but not as an IPMI BMC".into())
        }
        A::NoSupportedIpmiLANVersions | A::V1_5(_) => Failure::Unsupported(
            "the BMC does not offer RMCP+ (IPMI 2.0); bbwd does not use IPMI 1.5".into(),
        ),
        A::GetChannelAuthenticationCapabilities(IpmiError::Connection(RmcpIpmiError::Receive(
            RmcpIpmiReceiveError::Io(io),
        ))) => unreachable_io(&io, reply_timeout),
        A::GetChannelAuthenticationCapabilities(e) => {
            Failure::Protocol(format!("get channel authentication capabilities: {e:?}"))
        }
        A::V2_0(v2) => match v2 {
            V2::ServerAuthenticationFailed | V2::RakpMessage4InvalidIntegrityCheckValue => {
                Failure::BadCredentials
            }
            V2::RakpMessage2Parse(RakpMessage2ParseError::ErrorStatusCode(code)) => match code {
                RakpMessage2ErrorStatusCode::UnauthorizedName
                | RakpMessage2ErrorStatusCode::InvalidNameLength => Failure::BadCredentials,
                RakpMessage2ErrorStatusCode::UnauthorizedRoleOrPrivilegeLevelRequested
                | RakpMessage2ErrorStatusCode::InvalidRole => Failure::InsufficientPrivilege(
                    "the BMC refused the privilege level asked for at log-in".into(),
                ),
                other => Failure::Protocol(format!("RAKP 2: {other:?}")),
            },
            V2::OpenSessionResponseReceive(RmcpIpmiReceiveError::Io(io))
            | V2::RakpMessage2Receive(RmcpIpmiReceiveError::Io(io))
            | V2::RakpMessage4Receive(RmcpIpmiReceiveError::Io(io))
                if io_is_timeout(&io) =>
            {
                Failure::Timeout
            }
            V2::OpenSessionResponseParse(p) => Failure::Unsupported(format!(
                "the BMC refused the RMCP+ session (cipher suite 3): {p:?}; a BMC out of \
                 session slots answers this way too"
            )),
            other => Failure::Protocol(format!("session activation: {other:?}")),
        },
    }
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
                let mut rmcp = Rmcp::new(addr, reply_timeout)
                    .map_err(|e| Failure::Unreachable(e.to_string()))?;
                rmcp.activate(true, Some(&bmc.username), Some(&bmc.password.0))
                    .map_err(|e| activation_failure(e, reply_timeout))?;
                let mut ipmi = Box::new(Ipmi::new(rmcp));
                // ipmi-rs leaves the session at user privilege: raise it, or the chassis and
                // watchdog commands fail with 0xd4.
                let mut granted = None;
                for level in [cmd::ADMINISTRATOR, cmd::OPERATOR] {
                    match ipmi.send_recv(cmd::SetSessionPrivilege(level)) {
                        Ok(p) => {
                            granted = Some(p);
                            break;
                        }
                        Err(e) => match command_failure(e, rmcp_failure) {
                            // 0x80/0x81: not allowed this high for this user or channel.
                            Failure::Completion(0x80 | 0x81)
                            | Failure::InsufficientPrivilege(_) => {}
                            other => return Err(other),
                        },
                    }
                }
                if granted.is_none() {
                    return Err(Failure::InsufficientPrivilege(format!(
                        "user \"{}\" may not act as operator or administrator on this BMC",
                        bmc.username
                    )));
                }
                Ok(Conn::Lan(ipmi))
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
            Conn::Lan(ipmi) => ipmi
                .send_recv(c)
                .map_err(|e| command_failure(e, rmcp_failure)),
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

    /// Best effort: Close Session by handle, so the BMC frees the slot at once.
    fn close(&mut self) {
        if let Conn::Lan(_) = self {
            if let Ok((handle, _)) = self.send(cmd::GetCurrentSessionHandle) {
                if let Err(f) = self.send(cmd::CloseSessionByHandle(handle)) {
                    log::debug!("close session (handle {handle}): {f}; it will expire instead");
                }
            }
        }
    }
}

/// Runs `f`, turning a panic into a protocol failure.
fn guarded<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
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
pub struct OpId(u64);

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

enum Request {
    Run { id: OpId, op: Op, deadline: Instant },
    Shutdown,
}

struct Shared {
    health: Mutex<Health>,
    /// Set by the worker as its very last act.
    exited: Mutex<bool>,
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

/// A non-blocking wake-up for the caller's poll loop (an eventfd).
struct EventFd(OwnedFd);

impl EventFd {
    fn new() -> std::io::Result<EventFd> {
        // SAFETY: eventfd(2) with valid flags; the returned descriptor is checked and then
        // owned by exactly one `OwnedFd`.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn signal(&self) {
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

    fn drain(&self) {
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

// ---------------------------------------------------------------------------------------------
// The client (the caller's side)
// ---------------------------------------------------------------------------------------------

/// The caller's handle on one BMC: submit operations, poll [`fd`](Self::fd), collect results.
pub struct IpmiClient {
    target: Target,
    name: String,
    settings: Settings,
    tx: mpsc::Sender<Request>,
    rx: mpsc::Receiver<Completion>,
    wake: Arc<EventFd>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    in_flight: Option<(OpId, Op, Instant)>,
    next_id: u64,
}

/// Why [`IpmiClient::submit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// An operation is in flight: one at a time.
    Busy,
}

impl IpmiClient {
    /// Starts the worker for `target`. Checks what can be checked without the network.
    pub fn start(target: Target, settings: Settings) -> Result<IpmiClient, Error> {
        let name = target.name();
        let fail = |failure| Error {
            bmc: name.clone(),
            op: "start",
            failure,
        };
        if let Target::Lan(b) = &target {
            if b.cipher_suite != CIPHER_SUITE {
                return Err(fail(Failure::Unsupported(format!(
                    "cipher suite {}: bbwd's IPMI library speaks cipher suite {CIPHER_SUITE} only",
                    b.cipher_suite
                ))));
            }
            if b.username.len() > MAX_USERNAME_BYTES {
                return Err(fail(Failure::Unsupported(format!(
                    "user name longer than {MAX_USERNAME_BYTES} bytes"
                ))));
            }
        }
        let wake = Arc::new(
            EventFd::new().map_err(|e| fail(Failure::Unreachable(format!("eventfd: {e}"))))?,
        );
        let shared = Arc::new(Shared {
            health: Mutex::new(Health::default()),
            exited: Mutex::new(false),
        });
        let (tx, rx, thread) = spawn_worker(&target, &name, settings, &shared, &wake)
            .map_err(|e| fail(Failure::Unreachable(format!("cannot start a thread: {e}"))))?;
        Ok(IpmiClient {
            target,
            name,
            settings,
            tx,
            rx,
            wake,
            shared,
            thread: Some(thread),
            in_flight: None,
            next_id: 1,
        })
    }

    /// `BMC host:port`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Readable when a result (or a health change) is ready: register it in the poll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.0.as_fd()
    }

    /// The in-flight operation's deadline (the loop must wake for it).
    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.map(|(_, _, d)| d)
    }

    /// Whether an operation is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The keep-alive's view of the session.
    pub fn health(&self) -> Health {
        self.shared
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// Starts `op`, to finish within `timeout`. One operation at a time.
    pub fn submit(&mut self, op: Op, now: Instant, timeout: Duration) -> Result<OpId, SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        let id = OpId(self.next_id);
        self.next_id += 1;
        let deadline = now + timeout;
        let req = Request::Run { id, op, deadline };
        if let Err(mpsc::SendError(req)) = self.tx.send(req) {
            // The worker is gone (it never should be): start a new one and hand it over.
            self.respawn();
            if self.tx.send(req).is_err() {
                log::error!("{}: the IPMI worker cannot be started", self.name);
            }
        }
        self.in_flight = Some((id, op, deadline));
        Ok(id)
    }

    /// The in-flight operation's outcome, if it finished or its deadline passed (then
    /// `timeout`). Never blocks.
    pub fn try_result(&mut self, now: Instant) -> Option<Completion> {
        self.wake.drain();
        let (want, op, deadline) = self.in_flight?;
        loop {
            match self.rx.try_recv() {
                Ok(c) if c.id == want => {
                    self.in_flight = None;
                    return Some(c);
                }
                // The late result of an operation already reported as timed out.
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        if now >= deadline {
            self.in_flight = None;
            return Some(Completion {
                id: want,
                op,
                result: Err(Error {
                    bmc: self.name.clone(),
                    op: op.name(),
                    failure: Failure::Timeout,
                }),
                elapsed: now.saturating_duration_since(deadline),
            });
        }
        None
    }

    /// Runs `op` and waits for it (the CLI; never the daemon's loop).
    pub fn call(&mut self, op: Op, timeout: Duration) -> Result<Reply, Error> {
        let now = Instant::now();
        if self.submit(op, now, timeout).is_err() {
            return Err(Error {
                bmc: self.name.clone(),
                op: op.name(),
                failure: Failure::Protocol("another operation is in flight".into()),
            });
        }
        loop {
            if let Some(c) = self.try_result(Instant::now()) {
                return c.result;
            }
            let left = self
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let mut pfd = libc::pollfd {
                fd: self.wake.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd on our own eventfd, for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }

    /// Stops the worker, closing the session if the BMC allows it; waits at most `wait`.
    pub fn close(mut self, wait: Duration) {
        let _ = self.tx.send(Request::Shutdown);
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.shared.exited.lock().map(|e| *e).unwrap_or(true) {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn respawn(&mut self) {
        if let Ok((tx, rx, thread)) = spawn_worker(
            &self.target,
            &self.name,
            self.settings,
            &self.shared,
            &self.wake,
        ) {
            self.tx = tx;
            self.rx = rx;
            self.thread = Some(thread);
        }
    }
}

impl Drop for IpmiClient {
    fn drop(&mut self) {
        // Do not wait: the worker closes the session and exits on its own.
        let _ = self.tx.send(Request::Shutdown);
    }
}

type Spawned = (
    mpsc::Sender<Request>,
    mpsc::Receiver<Completion>,
    JoinHandle<()>,
);

fn spawn_worker(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn lan(port: u16) -> Target {
        Target::Lan(Bmc {
            host: "127.0.0.1".into(),
            port,
            username: "admin".into(),
            password: Password::new(b"secret"),
            cipher_suite: 3,
        })
    }

    fn cli() -> Settings {
        Settings {
            reply_timeout: Duration::from_millis(200),
            keepalive: None,
            keepalive_op: Op::PowerStatus,
        }
    }

    #[test]
    fn commands_encode_as_the_spec_says() {
        let m: Message = cmd::SetWatchdogTimer {
            timer_use: TIMER_USE_SMS_OS,
            action: WatchdogAction::PowerDown,
            clear_flags: 0x10,
            countdown_100ms: 0x0203,
        }
        .into();
        assert_eq!((m.netfn_raw(), m.cmd()), (0x06, 0x24));
        assert_eq!(m.data(), &[0x04, 0x02, 0x00, 0x10, 0x03, 0x02]);
        let m: Message = cmd::ChassisControl(PowerAction::Cycle).into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data()), (0x00, 0x02, &[2u8][..]));
        let m: Message = cmd::SetSessionPrivilege(cmd::ADMINISTRATOR).into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data()), (0x06, 0x3B, &[4u8][..]));
        let m: Message = cmd::GetChassisStatus.into();
        assert_eq!((m.netfn_raw(), m.cmd()), (0x00, 0x01));
        let m: Message = cmd::ResetWatchdogTimer.into();
        assert_eq!((m.netfn_raw(), m.cmd()), (0x06, 0x22));
    }

    #[test]
    fn replies_parse_and_short_ones_are_refused() {
        assert_eq!(
            cmd::GetChassisStatus::parse_success_response(&[0x01, 0, 0]),
            Ok(Power::On)
        );
        assert_eq!(
            cmd::GetChassisStatus::parse_success_response(&[0x60, 0, 0, 0]),
            Ok(Power::Off)
        );
        assert!(cmd::GetChassisStatus::parse_success_response(&[1]).is_err());
        let w =
            cmd::GetWatchdogTimer::parse_success_response(&[0x44, 0x03, 0, 0x10, 100, 0, 42, 0])
                .unwrap();
        assert!(w.running && w.sms_os_expired());
        assert_eq!(
            (w.timer_use, w.action, w.initial_100ms, w.present_100ms),
            (4, 3, 100, Some(42))
        );
        let sim = cmd::GetWatchdogTimer::parse_success_response(&[4, 2, 0, 0, 100, 0]).unwrap();
        assert_eq!((sim.initial_100ms, sim.present_100ms), (100, None));
        assert!(cmd::GetWatchdogTimer::parse_success_response(&[0; 5]).is_err());
    }

    #[test]
    fn a_password_file_loses_one_trailing_newline_and_is_never_printed() {
        let dir = std::env::temp_dir().join(format!("bbwd-ipmi-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pw");
        std::fs::write(&p, b"s3cret\r\n").unwrap();
        let pw = Password::from_file(&p).unwrap();
        assert_eq!(pw.0, b"s3cret");
        assert_eq!(format!("{pw:?}"), "Password(..)");
        std::fs::write(&p, [b'x'; 21]).unwrap();
        assert!(Password::from_file(&p)
            .unwrap_err()
            .contains("at most 20 bytes"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn suite_zero_and_long_user_names_are_refused_before_any_traffic() {
        let mut t = lan(9);
        if let Target::Lan(b) = &mut t {
            b.cipher_suite = 0;
        }
        let e = IpmiClient::start(t, cli()).err().unwrap();
        assert!(matches!(e.failure, Failure::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("cipher suite 0"), "{e}");
    }

    #[test]
    fn a_panic_in_a_conversation_is_a_failed_operation() {
        let r: Result<(), Failure> = guarded(|| panic!("truncated RAKP 4"));
        match r {
            Err(Failure::Protocol(why)) => assert!(why.contains("truncated RAKP 4"), "{why}"),
            other => panic!("{other:?}"),
        }
        let r: Result<u8, Failure> = guarded(|| Ok(7));
        assert_eq!(r, Ok(7));
    }

    #[test]
    fn a_closed_port_is_unreachable_at_once() {
        // Bind and drop: nothing listens on the port afterwards.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = IpmiClient::start(lan(port), cli()).unwrap();
        let t0 = Instant::now();
        let e = c.call(Op::PowerStatus, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e.failure, Failure::Unreachable(_)), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "BMC 127.0.0.1:{port}: chassis power status: unreachable"
            )),
            "{e}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_silent_bmc_fails_by_the_deadline_and_the_late_result_is_discarded() {
        // A socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let mut settings = cli();
        settings.reply_timeout = Duration::from_millis(300);
        let mut c = IpmiClient::start(lan(port), settings).unwrap();
        let now = Instant::now();
        c.submit(Op::PowerStatus, now, Duration::from_millis(100))
            .unwrap();
        assert_eq!(
            c.submit(Op::PowerStatus, now, Duration::from_millis(100)),
            Err(SubmitError::Busy)
        );
        // The client answers `timeout` at its deadline, before the worker's 300 ms receive.
        let done = loop {
            if let Some(d) = c.try_result(Instant::now()) {
                break d;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(done.result.unwrap_err().failure, Failure::Timeout);
        // The next operation gets its own answer, not the first one's late result.
        let e = c.call(Op::GetWatchdog, Duration::from_secs(3)).unwrap_err();
        assert_eq!(e.op, "get watchdog timer");
        assert!(matches!(e.failure, Failure::Unreachable(_)), "{e}");
    }
}
