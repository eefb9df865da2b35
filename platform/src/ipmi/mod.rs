//! One BMC, spoken to over IPMI: RMCP+ (IPMI 2.0 "lanplus", cipher suite 3 or 17) through
//! this module's own session code ([`session`]), or the local `/dev/ipmi0` through the `ipmi-rs`
//! crate's `File` transport. Used for fencing the peer (`bbwd fence`, the pair's fencer) and for
//! the BMC watchdog.
//!
//! Files: `mod.rs` the types and the caller's [`IpmiClient`]; `cmd.rs` the IPMI commands;
//! `session.rs` the RMCP+ session (packets in the session: integrity, encryption, sequence
//! numbers); `rakp.rs` its handshake (Open Session, RAKP 1-4, the keys); `rmcp.rs` the wire
//! format, the socket and the pre-session queries; `conn.rs` one open conversation (RMCP+ or
//! `/dev/ipmi0`) as the worker holds it. The worker thread itself is [`crate::bmc`]'s, shared
//! with Redfish.
//!
//! Owns: the session to one BMC, kept on a worker thread; the commands (chassis status and
//! control, the watchdog timer, session privilege); the mapping of every failure to one clear
//! [`Error`] naming the BMC and the operation. Must not: decide anything (whether a fence
//! succeeded "enough" is the caller's), or block the caller: the daemon submits an operation,
//! polls [`IpmiClient::fd`], and collects the outcome with [`IpmiClient::try_result`]; only the
//! CLI's [`IpmiClient::call`] waits.
//!
//! # Theory of operation: what ipmi-rs 0.6 lacks, and what this module does
//! RMCP+ used to go through ipmi-rs too. Its gaps for a fencing agent, and where they went:
//!
//! | gap in ipmi-rs 0.6                                     | what this module does                                   |
//! |--------------------------------------------------------|---------------------------------------------------------|
//! | takes the integrity and confidentiality algorithms from the (unauthenticated) Open Session Response without checking them: a forged "none" would let a spoofed reply pass | own RMCP+ session ([`session`]): the answer must name exactly the algorithms asked, else the session is refused ([`Failure::Insecure`]) |
//! | cipher suite 3 only; its SHA-256 branches are `todo!()` (a panic) | suites 3 and 17 ([`CIPHER_SUITE`], [`CIPHER_SUITE_17`]), and [`CIPHER_SUITE_AUTO`]: 17 when Get Channel Cipher Suites lists it, else 3 |
//! | the session starts at user privilege                   | Set Session Privilege Level (App 0x3B) to administrator, operator if refused, right after activation |
//! | no Close Session, session id not exposed; BMCs have few slots (ipmi_sim 63), leaked ones stay until the BMC's idle timeout | Close Session with the session's id when the worker stops; still ONE long-lived session per BMC, kept alive below the idle timeout ([`KEEPALIVE`]); background reconnects back off ([`BACKOFF_MIN`]..[`BACKOFF_MAX`]), never a loop |
//! | no retransmission, no request/reply matching (a late reply is taken as the next command's answer) | replies are matched by netfn, command and rqSeq, must carry a valid integrity trailer and a rising sequence number; anything else is dropped. Still, after ANY error the session and its socket are dropped |
//! | panics on socket send errors, a short RAKP 4, unknown algorithms | the own session returns errors; every conversation (the `/dev/ipmi0` one through ipmi-rs too) still runs on the worker thread inside `catch_unwind`: a panic is a failed operation (`protocol error`) and drops the session |
//! | its timeout is per receive (activation takes 5)        | every operation has an overall deadline: the worker stops between steps past it, and the client answers `timeout` at the deadline whatever the worker does |
//! | the socket binds `[::]:0` (an IPv4 BMC is unreachable where `net.ipv6.bindv6only=1`) | the socket binds the BMC's address family |
//!
//! ipmi-rs stays for `/dev/ipmi0` (the local watchdog): its `File` transport is the kernel
//! driver's ioctl interface, which has none of the gaps above (no session, no network), and its
//! `Message`/`IpmiCommand` types carry the commands of `cmd.rs` for both transports.
//!
//! An operation is tried on the open session; if that fails for a reason that a fresh session
//! may cure (timeout, protocol error, panic) and time remains, it is tried once more on a new
//! session. Definitive answers are never retried: bad credentials, insufficient privilege, a
//! completion code from the BMC, an insecure answer. Repeating an operation must therefore be
//! harmless: power off, power on, status and the watchdog commands are; a chassis power cycle
//! may cycle twice.
//!
//! # Invariants
//! * At most one session per [`IpmiClient`], owned by its worker thread; a session that failed
//!   once is never used again.
//! * Never IPMI 1.5: the only messages sent before the BMC has said it speaks IPMI 2.0 are the
//!   pre-session queries (authentication type none), which carry nothing derived from the
//!   password.
//! * No panic crosses the worker's boundary; a dead worker is replaced at the next submit.
//! * Every submitted operation completes (with its result or `timeout`) by its deadline, as
//!   seen by [`IpmiClient::try_result`]; results of abandoned operations are discarded by id.
//! * The password is read once, never logged, never shown by `Debug`, never sent (it is only
//!   an HMAC key).

pub mod cmd;
mod conn;
mod rakp;
mod rmcp;
pub mod session;

pub use crate::bmc::{Completion, Health, OpId, Settings, SubmitError, BACKOFF_MAX, BACKOFF_MIN};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bmc::BmcClient;

#[cfg(test)]
use ipmi_rs::connection::{IpmiCommand, Message};

/// Longest wait for one reply from a BMC (per receive). A BMC answers in
/// well under 100 ms; a loaded one in a few hundred.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// How often an idle session is used, to keep it open and to know that it works. BMCs close
/// idle sessions after 30 s (ipmi_sim) to 60 s (the IPMI default).
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// Longest password RMCP+ carries (IPMI 2.0: 20 bytes).
pub const MAX_PASSWORD_BYTES: usize = 20;

/// Longest user name (IPMI: 16 bytes).
pub const MAX_USERNAME_BYTES: usize = 16;

/// Cipher suite 3: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128 (the default, as before).
pub const CIPHER_SUITE: u8 = 3;

/// Cipher suite 17: RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
pub const CIPHER_SUITE_17: u8 = 17;

/// Not a suite number (IPMI 2.0 reserves 0xC0-0xFF): "17 when the BMC lists it in Get Channel
/// Cipher Suites, else 3" (config `cipher_suite = "auto"`).
pub const CIPHER_SUITE_AUTO: u8 = 0xff;

/// The cipher suites [`Bmc::cipher_suite`] may name.
pub const CIPHER_SUITES: [u8; 3] = [CIPHER_SUITE, CIPHER_SUITE_17, CIPHER_SUITE_AUTO];

/// `3`, `17` or `auto`, as configs and errors name a [`Bmc::cipher_suite`].
pub fn cipher_suite_name(suite: u8) -> String {
    if suite == CIPHER_SUITE_AUTO {
        "auto".into()
    } else {
        suite.to_string()
    }
}

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
    /// One of [`CIPHER_SUITES`]: 3, 17 or [`CIPHER_SUITE_AUTO`] (checked when the client
    /// starts).
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
    /// The BMC refused the user name or password (or could not prove it knows the password:
    /// a wrong RAKP 2 code looks the same as a wrong password). A user whose privilege limit is
    /// below administrator may look the same: RAKP 1 asks for administrator, and BMCs
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
    /// Something this build cannot do (a cipher suite other than 3 and 17, an IPMI 1.5-only
    /// BMC, a BMC that refuses the configured suite).
    Unsupported(String),
    /// The BMC's answer cannot be trusted: Open Session accepted other algorithms than asked,
    /// or RAKP 4 does not prove the session keys. Never retried.
    Insecure(String),
}

impl Failure {
    /// A definitive answer: another attempt on a fresh session would get the same.
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self,
            Failure::BadCredentials
                | Failure::InsufficientPrivilege(_)
                | Failure::Completion(_)
                | Failure::Unsupported(_)
                | Failure::Insecure(_)
                | Failure::Unreachable(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "unreachable: {why}"),
            Failure::BadCredentials => f.write_str(
                "bad credentials: the BMC refused the user name or password (or the user lacks \
                 the role power control needs: IPMI administrator or operator, which bbwd asks \
                 for; a Redfish role with ComputerSystem.Reset)",
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
            Failure::Insecure(why) => write!(f, "refused as insecure: {why}"),
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

/// A reply that does not have the shape the command defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

// ---------------------------------------------------------------------------------------------
// The client (the caller's side)
// ---------------------------------------------------------------------------------------------

/// The caller's handle on one BMC: submit operations, poll [`fd`](BmcClient::fd), collect
/// results. The worker behind it is [`crate::bmc`]'s.
pub type IpmiClient = BmcClient<Target>;

impl BmcClient<Target> {
    /// Starts the worker for `target`. Checks what can be checked without the network.
    pub fn start(target: Target, settings: Settings) -> Result<IpmiClient, Error> {
        let name = target.name();
        let fail = |failure| Error {
            bmc: name.clone(),
            op: "start",
            failure,
        };
        if let Target::Lan(b) = &target {
            if !CIPHER_SUITES.contains(&b.cipher_suite) {
                return Err(fail(Failure::Unsupported(format!(
                    "cipher suite {}: bbwd speaks cipher suites 3 and 17 (or \"auto\")",
                    b.cipher_suite
                ))));
            }
            if b.username.len() > MAX_USERNAME_BYTES {
                return Err(fail(Failure::Unsupported(format!(
                    "user name longer than {MAX_USERNAME_BYTES} bytes"
                ))));
            }
        }
        BmcClient::spawn(target, name, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

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
