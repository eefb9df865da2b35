//! `bbwd fence status|off|on|cycle`: an operator acting on the peer's BMC (`[fencing]`) by
//! hand, without the daemon (SPEC CLI).
//!
//! Owns the command's sequence and its output: the power state (`on`/`off`) on stdout, one
//! line with the reason on stderr when it fails. Must not: talk IPMI or Redfish itself (that is
//! `bbwd_platform::ipmi` / `bbwd_platform::redfish` behind `bbwd_platform::fence_device`, which
//! also keep every library failure from reaching here), or run inside the daemon (it waits).
//!
//! | action | sequence (IPMI / Redfish)                                              | done when            |
//! |--------|-----------------------------------------------------------------------|----------------------|
//! | status | Get Chassis Status / GET the system's `PowerState`                    | the BMC answered     |
//! | off    | status; if on: Chassis Control off / Reset `ForceOff`, then status every [`POLL`] | the BMC reports off  |
//! | on     | status; if off: Chassis Control on / Reset `On`, then status every [`POLL`]       | the BMC reports on   |
//! | cycle  | off (confirmed), then on (confirmed): never a blind chassis cycle     | the BMC reports on   |
//!
//! Each confirmed phase has `[fencing] timeout` (a cycle has it twice). Already off (on) is
//! success. A BMC that answers "on" until the node is really gone (ipmi_sim does: on until the
//! node process is reaped) makes `off` trustworthy: it returns only once the node is off.
//!
//! A failure goes back to `main` as a `cli::Error` (exit 1: the BMC, the operation and the
//! reason: unreachable, bad credentials, insufficient privilege, timeout, a completion code; 2
//! for no `[fencing]`).

use std::time::{Duration, Instant};

use bbwd_platform::fence_device::{FenceDevices, Target};
use bbwd_platform::ipmi::{
    self, Bmc, Error, Failure, Op, Password, Power, PowerAction, Reply, Settings,
};
use bbwd_platform::poll::{PollSet, Want};
use bbwd_platform::redfish;

use crate::cli;
use crate::config::{FenceDevice, Fencing, RedfishTls};
use crate::exit::Exit;

/// How often the power state is asked while waiting for it to change: a confirmed off comes
/// at most this long after the BMC knows (the goal is within 100 ms of the node being gone),
/// and a BMC is not hurried by 20 small requests a second.
pub const POLL: Duration = Duration::from_millis(50);

/// How long `bbwd fence` waits for the BMC to free its session slot on exit.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Status,
    Off,
    On,
    Cycle,
}

impl Action {
    pub fn parse(word: &str) -> Option<Action> {
        Some(match word {
            "status" => Action::Status,
            "off" => Action::Off,
            "on" => Action::On,
            "cycle" => Action::Cycle,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Status => "status",
            Action::Off => "off",
            Action::On => "on",
            Action::Cycle => "cycle",
        }
    }
}

/// Why `bbwd fence` failed.
#[derive(Debug)]
pub enum FenceError {
    /// The password file cannot be read.
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

/// One fence action in progress, driven without blocking: the caller polls the client's
/// [`FenceDevices::fd`] until [`FenceRun::wake_at`] and calls [`FenceRun::advance`] after each
/// wake-up. The CLI drives it in a loop; a daemon can drive it from its poll loop.
///
/// ```text
///  Check ──state == want──────────────────────────────────────────► phase done
///    │ else
///    ▼
///  Command ──ok──► Poll (status every POLL) ──state == want──────► phase done
///    │ error                 │ deadline
///    ▼                       ▼
///  Verify (one status) ─► failed (the command's error, or NotConfirmed)
/// ```
/// `cycle` is two phases, off then on, each with the full timeout; `status` is one Check.
#[derive(Debug)]
pub struct FenceRun {
    /// What is left to reach, in order (`status`: empty).
    targets: heapless::Vec<Power, 2>,
    step: Step,
    timeout: Duration,
    deadline: Instant,
    next_poll: Option<Instant>,
    last_error: Option<Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Check,
    Command,
    Verify,
    Poll,
}

impl FenceRun {
    /// Starts `action`: submits the first status request.
    pub fn start(
        client: &mut FenceDevices,
        action: Action,
        timeout: Duration,
        now: Instant,
    ) -> FenceRun {
        let mut targets = heapless::Vec::new();
        let _ = match action {
            Action::Status => Ok(()),
            Action::Off => targets.push(Power::Off),
            Action::On => targets.push(Power::On),
            Action::Cycle => targets
                .push(Power::Off)
                .and_then(|_| targets.push(Power::On)),
        };
        let mut run = FenceRun {
            targets,
            step: Step::Check,
            timeout,
            deadline: now + timeout,
            next_poll: None,
            last_error: None,
        };
        run.submit(client, Op::PowerStatus, now);
        run
    }

    /// When the caller must call `advance` at the latest (also on the client's fd).
    pub fn wake_at(&self, client: &FenceDevices) -> Option<Instant> {
        [self.next_poll, client.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn submit(&mut self, client: &mut FenceDevices, op: Op, now: Instant) {
        let left = self.deadline.saturating_duration_since(now);
        // One operation at a time, and this run is the client's only user while it lasts.
        if client.submit(op, now, left).is_err() {
            log::error!("{}: {}: the BMC client is busy", client.name(), op.name());
        }
    }

    fn not_confirmed(&mut self, client: &FenceDevices, want: Power) -> FenceError {
        FenceError::NotConfirmed {
            bmc: client.name().to_string(),
            want,
            timeout: self.timeout,
            last_error: self.last_error.take(),
        }
    }

    /// Moves on with whatever happened; `Some` when the action is over.
    pub fn advance(
        &mut self,
        client: &mut FenceDevices,
        now: Instant,
    ) -> Option<Result<Power, FenceError>> {
        if let Some(at) = self.next_poll {
            if now < at {
                // Drain spurious wake-ups; nothing is in flight while waiting to poll.
                let _ = client.try_result(now);
                return None;
            }
            self.next_poll = None;
            self.submit(client, Op::PowerStatus, now);
            return None;
        }
        let done = client.try_result(now)?;
        let want = self.targets.first().copied();
        let power = match done.result {
            Ok(Reply::Power(p)) => Ok(p),
            Ok(Reply::Done) => Err(None),
            Ok(other) => Err(Some(Error {
                bmc: client.name().to_string(),
                op: done.op.name(),
                failure: Failure::Protocol(format!("unexpected reply {other:?}")),
            })),
            Err(e) => Err(Some(e)),
        };
        match (self.step, power) {
            // `status`: the answer is the result.
            (Step::Check, Ok(p)) if want.is_none() => Some(Ok(p)),
            (Step::Check | Step::Verify | Step::Poll, Ok(p)) if Some(p) == want => {
                self.phase_done(client, now)
            }
            (Step::Check, Ok(_)) => {
                self.step = Step::Command;
                let action = match want {
                    Some(Power::On) => PowerAction::On,
                    _ => PowerAction::Off,
                };
                self.submit(client, Op::Power(action), now);
                None
            }
            (Step::Check, Err(e)) => Some(Err(FenceError::Bmc(
                e.unwrap_or_else(|| unexpected(client, Reply::Done)),
            ))),
            (Step::Command, Ok(_) | Err(None)) => {
                // Carried out; the BMC has not had time to change yet: poll.
                self.step = Step::Poll;
                self.next_poll = Some(now + POLL);
                None
            }
            (Step::Command, Err(Some(e))) => {
                // The command may have been carried out even so (a lost reply): the state
                // decides.
                self.last_error = Some(e);
                self.step = Step::Verify;
                self.submit(client, Op::PowerStatus, now);
                None
            }
            (Step::Verify, _) => Some(Err(match self.last_error.take() {
                Some(e) => FenceError::Bmc(e),
                None => self.not_confirmed(client, want.unwrap_or(Power::Off)),
            })),
            (Step::Poll, other) => {
                if let Err(Some(e)) = other {
                    // A failed poll is not the end: the next one uses a fresh session.
                    self.last_error = Some(e);
                }
                if now + POLL >= self.deadline {
                    return Some(Err(self.not_confirmed(client, want.unwrap_or(Power::Off))));
                }
                self.next_poll = Some(now + POLL);
                None
            }
        }
    }

    /// The current target is reached: the next phase, or the end.
    fn phase_done(
        &mut self,
        client: &mut FenceDevices,
        now: Instant,
    ) -> Option<Result<Power, FenceError>> {
        let reached = self.targets.remove(0);
        let Some(&next) = self.targets.first() else {
            return Some(Ok(reached));
        };
        // `cycle`: off is confirmed; now on, with a fresh timeout.
        self.deadline = now + self.timeout;
        self.last_error = None;
        self.step = Step::Command;
        let action = match next {
            Power::On => PowerAction::On,
            Power::Off => PowerAction::Off,
        };
        self.submit(client, Op::Power(action), now);
        None
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

fn unexpected(client: &FenceDevices, r: Reply) -> Error {
    Error {
        bmc: client.name().to_string(),
        op: Op::PowerStatus.name(),
        failure: Failure::Protocol(format!("unexpected reply {r:?}")),
    }
}

/// `bbwd fence ACTION`: prints the state once the action is done.
pub fn command(cfg: &crate::config::Config, action: Action) -> Result<Exit, cli::Error> {
    let Some(f) = &cfg.fencing else {
        return Err(cli::Error::NoFencing(action));
    };
    let p = run(f, action).map_err(|source| cli::Error::Fence { action, source })?;
    println!("{}", p.as_str());
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        for a in ["status", "off", "on", "cycle"] {
            assert_eq!(Action::parse(a).unwrap().as_str(), a);
        }
        assert_eq!(Action::parse("reboot"), None);
    }
}
