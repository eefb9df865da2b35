//! One open conversation with a BMC, as the worker holds it: an RMCP+ [`Session`] or ipmi-rs's
//! `/dev/ipmi0` transport, with the privilege raised and the IPMI commands of `cmd.rs` sent on
//! it; and [`Protocol`] for [`Target`], which hands it to the generic worker
//! ([`crate::bmc`]).
//!
//! Owns: opening (and raising the privilege of) a session, running one [`Op`] as IPMI commands,
//! Close Session; the mapping of completion codes and ipmi-rs errors to a [`Failure`]. Must
//! not: retry, keep time beyond one command, hold more than one session, or know about threads
//! (the worker in [`crate::bmc`] does all that).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use ipmi_rs::connection::{CompletionErrorCode, IpmiCommand, Message};
use ipmi_rs::{Ipmi, IpmiError};

use super::session::{Session, Suite, Wanted};
use super::{
    cmd, Failure, Malformed, Op, Reply, Target, WatchdogAction, CIPHER_SUITE_AUTO, TIMER_USE_SMS_OS,
};
use crate::bmc::{Profile, Protocol};

/// An open session (runs on the worker thread only).
pub enum Conn {
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

impl Protocol for Target {
    type Session = Conn;

    const PROFILE: Profile = Profile {
        thread_name: "bbwd-ipmi",
        stack_bytes: None,
        protocol: "IPMI",
        panicked: "the IPMI library",
        session: "session",
        reconnect_op: "open session",
        // Opening is some 5 exchanges (pre-session, Open Session, RAKP 1 and 3, privilege) and
        // the keep-alive one more, each bounded by the reply timeout, not by the deadline.
        keepalive_reply_timeouts: 8,
        retry_room_cap: Duration::MAX,
        deadline_after_open: true,
    };

    fn open(&self, reply_timeout: Duration, _deadline: Instant) -> Result<Conn, Failure> {
        let conn = Conn::open(self, reply_timeout)?;
        log::debug!("{}: session opened", self.name());
        Ok(conn)
    }

    fn run(
        &self,
        conn: &mut Conn,
        op: Op,
        _reply_timeout: Duration,
        _deadline: Instant,
    ) -> Result<Reply, Failure> {
        conn.run(op)
    }

    fn close(&self, conn: &mut Conn, _reply_timeout: Duration) {
        conn.close();
    }

    fn op_name(op: Op) -> &'static str {
        op.name()
    }
}
