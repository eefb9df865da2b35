//! The peer's fence devices as `[fencing]` configures them, for both of their users: pair
//! mode's cluster (the daemon's fence, `crate::cluster`) and the operator's `bbwd fence`
//! (`crate::cli`).
//!
//! Owns the translation of the config into the platform's fence targets and client settings,
//! and the carrying out of the operator's procedure ([`bbwd_core::fence::operator`]) on those
//! devices: its operations become BMC requests, the BMC's replies its answers. Must not: decide
//! what comes next (the core's procedure does), talk IPMI or Redfish itself
//! (`bbwd_platform::fence_device` does, and keeps every library failure from reaching here),
//! print, or choose an exit code.
//!
//! # Invariants
//! * One operation at a time on the client, and a [`FenceRun`] is the client's only user while
//!   it lasts.
//! * Every operation is asked for with what is left of its phase's deadline.

use std::time::{Duration, Instant};

use bbwd_core::fence::operator::{self, Action, Failure, Next};
use bbwd_core::fence::Op as CoreOp;
use bbwd_platform::fence_device::{FenceDevices, Target};
use bbwd_platform::ipmi::{
    self, Bmc, Error, Failure as IpmiFailure, Op, Password, Power, PowerAction, Reply, Settings,
};
use bbwd_platform::poll::{PollSet, Want};
use bbwd_platform::redfish;

use crate::config::{FenceDevice, Fencing, RedfishTls};

/// How long `bbwd fence` waits for the BMC to free its session slot on exit.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// Why fencing failed.
#[derive(Debug)]
pub enum FenceError {
    /// The password file cannot be read (the platform reports it as text).
    Password(String),
    /// The BMC client cannot start (e.g. an unsupported cipher suite).
    Start(Error),
    /// An operation failed.
    Bmc(Error),
    /// The BMC kept reporting the old state until the timeout.
    NotConfirmed {
        bmc: String,
        want: Power,
        timeout: Duration,
        last_error: Option<Error>,
    },
}

impl std::fmt::Display for FenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FenceError::Password(e) => write!(f, "fencing.password_file: {e}"),
            FenceError::Start(e) | FenceError::Bmc(e) => write!(f, "{e}"),
            FenceError::NotConfirmed {
                bmc,
                want,
                timeout,
                last_error,
            } => {
                write!(
                    f,
                    "{bmc}: power {}: not confirmed within fencing.timeout ({} ms): the BMC still reports {}",
                    want.as_str(),
                    timeout.as_millis(),
                    match want {
                        Power::Off => "on",
                        Power::On => "off",
                    }
                )?;
                if let Some(e) = last_error {
                    write!(f, " (last error: {e})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for FenceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FenceError::Password(_) => None,
            FenceError::Start(e) | FenceError::Bmc(e) => Some(e),
            FenceError::NotConfirmed { last_error, .. } => last_error
                .as_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        }
    }
}

/// The fence devices of `[fencing]`, in the order they are tried.
pub fn targets(f: &Fencing) -> Result<Vec<Target>, FenceError> {
    f.devices.iter().map(target).collect()
}

/// One fence device: RMCP+ or Redfish.
pub fn target(f: &FenceDevice) -> Result<Target, FenceError> {
    if let Some(r) = &f.redfish {
        let password =
            redfish::Secret::from_file(&f.lan.password_file).map_err(FenceError::Password)?;
        return Ok(Target::Redfish(redfish::Service {
            host: f.lan.host.clone(),
            port: f.lan.port,
            username: f.lan.username.clone(),
            password,
            system: r.system.clone(),
            tls: match &r.tls {
                RedfishTls::CaFile(p) => redfish::Tls::CaFile(p.clone()),
                RedfishTls::Fingerprint(d) => redfish::Tls::Fingerprint(*d),
                RedfishTls::Insecure => redfish::Tls::Insecure,
            },
        }));
    }
    let password = Password::from_file(&f.lan.password_file).map_err(FenceError::Password)?;
    Ok(Target::Ipmi(ipmi::Target::Lan(Bmc {
        host: f.lan.host.clone(),
        port: f.lan.port,
        username: f.lan.username.clone(),
        password,
        cipher_suite: f.cipher_suite,
    })))
}

/// Client settings for fencing: a reply may take at most a third of the timeout, so that a
/// lost reply leaves time for a fresh session. `keepalive` is the daemon's choice (`None` for
/// the CLI).
pub fn settings(f: &Fencing, keepalive: Option<Duration>) -> Settings {
    let reply = if f.redfish.is_some() {
        redfish::REPLY_TIMEOUT
    } else {
        ipmi::REPLY_TIMEOUT
    };
    Settings {
        reply_timeout: reply.min(f.timeout / 3),
        keepalive,
        keepalive_op: Op::PowerStatus,
    }
}

/// One operator action in progress ([`operator::Run`]), driven without blocking: the caller
/// polls the client's [`FenceDevices::fd`] until [`FenceRun::wake_at`] and calls
/// [`FenceRun::advance`] after each wake-up. [`run`] drives it in a loop; a daemon could drive
/// it from its poll loop.
#[derive(Debug)]
pub struct FenceRun {
    run: operator::Run<Error>,
}

impl FenceRun {
    /// Starts `action`: submits the first status request.
    pub fn start(
        client: &mut FenceDevices,
        action: Action,
        timeout: Duration,
        now: Instant,
    ) -> FenceRun {
        let (run, first) = operator::Run::start(action, timeout, now);
        let fence = FenceRun { run };
        fence.submit(client, first, now);
        fence
    }

    /// When the caller must call `advance` at the latest (also on the client's fd).
    pub fn wake_at(&self, client: &FenceDevices) -> Option<Instant> {
        [self.run.poll_at(), client.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves on with whatever happened; `Some` when the action is over.
    pub fn advance(
        &mut self,
        client: &mut FenceDevices,
        now: Instant,
    ) -> Option<Result<Power, FenceError>> {
        let next = if let Some(at) = self.run.poll_at() {
            if now < at {
                // Drain spurious wake-ups; nothing is in flight while waiting to poll.
                let _ = client.try_result(now);
                return None;
            }
            self.run.on_tick(now)
        } else {
            let done = client.try_result(now)?;
            let answer = match done.result {
                Ok(Reply::Power(p)) => Ok(operator_power(p)),
                Ok(Reply::Done) => Err(None),
                Ok(other) => Err(Some(unexpected(client, done.op, &other))),
                Err(e) => Err(Some(e)),
            };
            self.run.on_answer(now, answer)
        };
        match next {
            Next::Submit(op) => {
                self.submit(client, op, now);
                None
            }
            Next::Wait => None,
            Next::Done(result) => Some(result.map(platform_power).map_err(|f| failure(client, f))),
        }
    }

    fn submit(&self, client: &mut FenceDevices, op: CoreOp, now: Instant) {
        let op = platform_op(op);
        let left = self.run.deadline().saturating_duration_since(now);
        // One operation at a time, and this run is the client's only user while it lasts.
        if client.submit(op, now, left).is_err() {
            log::error!("{}: {}: the BMC client is busy", client.name(), op.name());
        }
    }
}

/// Runs `action` against the `[fencing]` BMC and waits for it; returns the final state.
pub fn run(f: &Fencing, action: Action) -> Result<Power, FenceError> {
    let mut client =
        FenceDevices::start(targets(f)?, settings(f, None)).map_err(FenceError::Start)?;
    let mut fence = FenceRun::start(&mut client, action, f.timeout, Instant::now());
    let mut set = PollSet::new();
    let result = loop {
        if let Some(r) = fence.advance(&mut client, Instant::now()) {
            break r;
        }
        set.clear();
        let _ = set.add(client.fd(), Want::Read);
        let wait = fence
            .wake_at(&client)
            .map(|at| at.saturating_duration_since(Instant::now()));
        let _ = set.wait(wait);
    };
    client.close(CLOSE_WAIT);
    result
}

/// The core's operation as the platform's.
fn platform_op(op: CoreOp) -> Op {
    match op {
        CoreOp::Status => Op::PowerStatus,
        CoreOp::PowerOff => Op::Power(PowerAction::Off),
        CoreOp::PowerOn => Op::Power(PowerAction::On),
    }
}

fn operator_power(p: Power) -> operator::Power {
    match p {
        Power::Off => operator::Power::Off,
        Power::On => operator::Power::On,
    }
}

fn platform_power(p: operator::Power) -> Power {
    match p {
        operator::Power::Off => Power::Off,
        operator::Power::On => Power::On,
    }
}

/// The core's failure, with the BMC's name where the operator needs it.
fn failure(client: &FenceDevices, f: Failure<Error>) -> FenceError {
    match f {
        Failure::Bmc(e) => FenceError::Bmc(e),
        Failure::NoPowerState => FenceError::Bmc(unexpected(client, Op::PowerStatus, &Reply::Done)),
        Failure::NotConfirmed {
            want,
            timeout,
            last_error,
        } => FenceError::NotConfirmed {
            bmc: client.name().to_string(),
            want: platform_power(want),
            timeout,
            last_error,
        },
    }
}

/// A reply that does not fit the operation.
fn unexpected(client: &FenceDevices, op: Op, r: &Reply) -> Error {
    Error {
        bmc: client.name().to_string(),
        op: op.name(),
        failure: IpmiFailure::Protocol(format!("unexpected reply {r:?}")),
    }
}
