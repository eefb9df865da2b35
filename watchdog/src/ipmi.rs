//! The BMC's watchdog timer (`[watchdog] device = "ipmi"`), over RMCP+ to this node's own BMC
//! (`[watchdog.ipmi]`) or through the local `/dev/ipmi0`, behind [`HardwareWatchdog`].
//!
//! Owns the watchdog's IPMI sequence; the session, its worker thread and every ipmi-rs
//! work-around are `bbwd_platform::ipmi`'s. Must not: pet from anywhere but the caller's `pet`
//! (the daemon's main loop): the worker thread only carries out what the loop asked, so a hung
//! loop stops the keep-alives and the BMC resets the node.
//!
//! | step   | IPMI (NetFn App)                                                                  |
//! |--------|-----------------------------------------------------------------------------------|
//! | open   | Get Watchdog Timer (0x25): was the SMS/OS "expired" flag set? = last reset by it   |
//! |        | Set Watchdog Timer (0x24): SMS/OS use, logging on, action, no pre-timeout, clear the SMS/OS flag, countdown in 100 ms |
//! |        | Get Watchdog Timer: the countdown the BMC really took = `effective_timeout`        |
//! |        | Reset Watchdog Timer (0x22): starts the countdown (a Set alone does not)           |
//! | pet    | Reset Watchdog Timer, submitted without waiting; its outcome is collected at the next pet |
//! | disarm | Set Watchdog Timer with action none (a Set stops the timer), then Get: not running |
//!
//! `open` and `disarm` wait for the BMC (before and after the loop); `pet` never does: it
//! hands the Reset to the worker and reports the previous pet's failure, if any. Each pet must
//! finish within a quarter of the timeout (the next is due after a third), else it counts as
//! failed; a BMC that stops answering is thus noticed within one pet interval, and the
//! watchdog resets the node if it never answers again, which is right: a node whose BMC
//! watchdog cannot be petted is not safe to keep serving.
//!
//! # Invariants
//! * Dropping an `IpmiWatchdog` leaves the BMC watchdog running (only `disarm` stops it).
//! * At most one Reset is in flight; a Reset's late answer is never taken for a newer one's.

use std::path::Path;
use std::time::{Duration, Instant};

use bbwd_platform::ipmi::{
    self, Bmc, Failure, IpmiClient, Op, Password, Reply, Settings, Target, WatchdogAction,
};

use crate::{Error, HardwareWatchdog};

/// How long `open` and `disarm` may wait for the BMC altogether.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `disarm` waits for the session to close.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// Longest countdown a BMC takes: 16 bits of 100 ms.
pub const MAX_COUNTDOWN: Duration = Duration::from_millis(0xffff * 100);

/// The RMCP+ target for `[watchdog.ipmi]`: this node's own BMC, cipher suite 3.
pub fn lan_target(
    host: &str,
    port: u16,
    username: &str,
    password_file: &Path,
) -> Result<Target, Error> {
    lan_target_with_suite(host, port, username, password_file, ipmi::CIPHER_SUITE)
}

/// The RMCP+ target for `[watchdog.ipmi]` with its `cipher_suite` (3, 17 or
/// [`ipmi::CIPHER_SUITE_AUTO`]).
pub fn lan_target_with_suite(
    host: &str,
    port: u16,
    username: &str,
    password_file: &Path,
    cipher_suite: u8,
) -> Result<Target, Error> {
    let password = Password::from_file(password_file).map_err(|detail| Error::Refused {
        op: "read watchdog.ipmi.password_file",
        device: format!("ipmi (BMC {host}:{port})"),
        detail,
    })?;
    Ok(Target::Lan(Bmc {
        host: host.to_string(),
        port,
        username: username.to_string(),
        password,
        cipher_suite,
    }))
}

/// The BMC watchdog, armed.
pub struct IpmiWatchdog {
    client: IpmiClient,
    describe: String,
    timeout: Duration,
    last_reset: Option<bool>,
    /// When the in-flight Reset was submitted.
    pet_sent: Option<Instant>,
    /// When the BMC last confirmed a Reset (the countdown restarted then).
    confirmed: Option<Instant>,
}

impl IpmiWatchdog {
    /// Arms the BMC watchdog with `timeout` and `action`, and starts its countdown.
    pub fn open(
        target: Target,
        action: WatchdogAction,
        timeout: Duration,
    ) -> Result<IpmiWatchdog, Error> {
        let describe = format!("ipmi ({})", target.name());
        let settings = Settings {
            reply_timeout: ipmi::REPLY_TIMEOUT.min(timeout / 4),
            keepalive: match target {
                Target::Lan(_) => Some(ipmi::KEEPALIVE),
                Target::Local(_) => None,
            },
            keepalive_op: Op::GetWatchdog,
        };
        let refused = |op: &'static str, e: ipmi::Error| Error::Refused {
            op,
            device: describe.clone(),
            detail: e.failure.to_string(),
        };
        let mut client = IpmiClient::start(target, settings).map_err(|e| refused("start", e))?;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let left = || deadline.saturating_duration_since(Instant::now());

        let before = get(&mut client, left()).map_err(|e| refused("get watchdog timer", e))?;
        let countdown_100ms = (timeout.as_millis() / 100).clamp(1, 0xffff) as u16;
        client
            .call(
                Op::SetWatchdog {
                    action,
                    countdown_100ms,
                },
                left(),
            )
            .map_err(|e| refused("set watchdog timer", e))?;
        let set = get(&mut client, left()).map_err(|e| refused("get watchdog timer", e))?;
        if set.timer_use != ipmi::TIMER_USE_SMS_OS || set.action != action as u8 {
            return Err(Error::Refused {
                op: "set watchdog timer",
                device: describe,
                detail: format!(
                    "the BMC kept timer use {} and action {} instead of SMS/OS and {}",
                    set.timer_use, set.action, action as u8
                ),
            });
        }
        let effective = Duration::from_millis(u64::from(set.initial_100ms.max(1)) * 100);
        client
            .call(Op::ResetWatchdog, left())
            .map_err(|e| refused("reset watchdog timer (start)", e))?;
        Ok(IpmiWatchdog {
            client,
            describe,
            timeout: effective,
            last_reset: Some(before.sms_os_expired()),
            pet_sent: None,
            confirmed: Some(Instant::now()),
        })
    }

    /// Collects the in-flight Reset's outcome, if there is one by now.
    fn collect(&mut self, now: Instant) -> Option<Result<(), Error>> {
        let done = self.client.try_result(now)?;
        let sent = self.pet_sent.take();
        Some(match done.result {
            Ok(_) => {
                self.confirmed = sent.map(|s| s + done.elapsed);
                Ok(())
            }
            Err(e) => Err(Error::Refused {
                op: "reset watchdog timer",
                device: self.describe.clone(),
                detail: e.failure.to_string(),
            }),
        })
    }
}

fn get(client: &mut IpmiClient, timeout: Duration) -> Result<ipmi::WatchdogTimer, ipmi::Error> {
    match client.call(Op::GetWatchdog, timeout)? {
        Reply::Watchdog(w) => Ok(w),
        other => Err(ipmi::Error {
            bmc: client.name().to_string(),
            op: "get watchdog timer",
            failure: Failure::Protocol(format!("unexpected reply {other:?}")),
        }),
    }
}

impl HardwareWatchdog for IpmiWatchdog {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn effective_timeout(&self) -> Duration {
        self.timeout
    }

    /// Hands a Reset to the worker and returns at once; an `Err` reports the previous pet.
    fn pet(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let previous = self.collect(now);
        if self.client.busy() {
            // Cannot happen with the pacing (a pet's deadline is before the next pet), but
            // never queue keep-alives behind a stuck one.
            return Err(Error::Refused {
                op: "reset watchdog timer",
                device: self.describe.clone(),
                detail: "the previous keep-alive is still in flight".into(),
            });
        }
        if self
            .client
            .submit(Op::ResetWatchdog, now, self.timeout / 4)
            .is_ok()
        {
            self.pet_sent = Some(now);
        }
        previous.unwrap_or(Ok(()))
    }

    fn time_left(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if let Some(Err(e)) = self.collect(now) {
            log::debug!("{e}");
        }
        let since = now.saturating_duration_since(self.confirmed?);
        Some(self.timeout.saturating_sub(since))
    }

    fn last_reset_by_watchdog(&self) -> Option<bool> {
        self.last_reset
    }

    fn disarm(mut self: Box<Self>) -> Result<(), Error> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        // Let an in-flight Reset finish first (it would restart the countdown after the Set).
        while self.client.busy() && Instant::now() < deadline {
            let _ = self.collect(Instant::now());
            std::thread::sleep(Duration::from_millis(5));
        }
        let IpmiWatchdog {
            mut client,
            describe,
            ..
        } = *self;
        let left = || deadline.saturating_duration_since(Instant::now());
        let refused = |op: &'static str, e: ipmi::Error| Error::Refused {
            op,
            device: describe.clone(),
            detail: e.failure.to_string(),
        };
        client
            .call(Op::DisarmWatchdog, left())
            .map_err(|e| refused("set watchdog timer (disarm)", e))?;
        let after = get(&mut client, left()).map_err(|e| refused("get watchdog timer", e))?;
        client.close(CLOSE_WAIT);
        if after.running {
            return Err(Error::Refused {
                op: "disarm",
                device: describe,
                detail: "the BMC still reports the watchdog running".into(),
            });
        }
        Ok(())
    }
}
