//! The hardware watchdog in the loop: arming it (events), petting it at the end of each pass as
//! the policy says, and disarming it on a clean stop only.
//!
//! Must not decide when not to pet: `bbwd_watchdog::policy` and the node do.

#[allow(unused_imports)]
use super::*;

impl Core {
    /// Takes over a freshly armed hardware watchdog: pacing from now, events.
    pub(super) fn armed(&mut self, dog: Box<dyn HardwareWatchdog>) {
        let timeout = dog.effective_timeout();
        let what = dog.describe().to_string();
        let last_reset = dog.last_reset_by_watchdog();
        self.hw = Some(Hardware {
            dog,
            pacer: Pacer::new(timeout, clock::now()),
            failing: false,
            latency_last: None,
            latency_max: None,
        });
        self.record(
            EventKind::WatchdogArmed,
            &machine::detail(&format!(
                "{what}, timeout {} s, petted every {} ms",
                timeout.as_secs_f32(),
                (timeout / 3).as_millis()
            )),
        );
        if last_reset == Some(true) {
            self.record(
                EventKind::WatchdogResetLastBoot,
                &machine::detail(&format!(
                    "{what}: the last reset of this node was caused by the watchdog"
                )),
            );
        }
    }

    /// The end of a pass for the hardware watchdog: asks the policy, pets if it says so, and
    /// reports late passes. `woke` is when the pass began (poll returned), `end` its end.
    /// Returns whether the pass was in time (always true without a hardware watchdog).
    pub(super) fn pet_hardware(&mut self, woke: Instant, end: Instant) -> bool {
        let self_fence = self.node.self_fenced();
        let Some(hw) = &mut self.hw else { return true };
        let in_time = end.saturating_duration_since(woke) < hw.pacer.budget();
        let verdict = hw
            .pacer
            .end_of_pass(woke, end, self.node_can_correct, self_fence);
        if verdict.decision == Decision::Pet {
            let result = hw.dog.pet();
            let latency = clock::now().saturating_duration_since(end);
            hw.latency_last = Some(latency);
            hw.latency_max = Some(hw.latency_max.map_or(latency, |m| m.max(latency)));
            match result {
                Ok(()) if hw.failing => {
                    hw.failing = false;
                    info!("hardware watchdog: keep-alives get through again");
                }
                Ok(()) => {}
                Err(e) if !hw.failing => {
                    hw.failing = true;
                    error!("hardware watchdog: keep-alive failed: {e}; the node resets if this goes on");
                }
                Err(_) => {}
            }
        }
        let timeout = hw.pacer.timeout();
        match verdict.latency {
            Latency::Late { gap, first: true } => {
                let detail = format!(
                    "{} ms since the last keep-alive, more than half the {} s timeout{}",
                    gap.as_millis(),
                    timeout.as_secs_f32(),
                    if in_time {
                        ""
                    } else {
                        "; this pass itself stalled, its keep-alive is withheld"
                    }
                );
                self.record(EventKind::WatchdogLatePass, &machine::detail(&detail));
            }
            Latency::Recovered { passes } => {
                info!(
                    "hardware watchdog: loop passes are in time again after {passes} late one(s)"
                );
            }
            Latency::Late { .. } | Latency::InTime => {}
        }
        in_time
    }

    /// On a clean exit: disarms the hardware watchdog, unless the node cannot correct itself
    /// (then it is left counting down, so the node resets as the policy decided).
    pub(super) fn disarm_hardware(&mut self) {
        let Some(hw) = self.hw.take() else { return };
        if !self.node_can_correct {
            error!(
                "hardware watchdog left armed: the node cannot correct itself and will be reset"
            );
            // Dropping it closes the device without the magic character: it keeps counting.
            drop(hw);
            return;
        }
        let what = hw.dog.describe().to_string();
        match hw.dog.disarm() {
            Ok(()) => self.record(EventKind::WatchdogDisarmed, &machine::detail(&what)),
            Err(e) => error!("hardware watchdog NOT disarmed: {e}"),
        }
    }
}
