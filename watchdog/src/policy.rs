//! The petting policy: a pure function from what the main loop knows to whether the hardware
//! watchdog may be petted at the end of this pass, and the pacing that feeds it (`Pacer`).
//!
//! Owns the decision and the timing rules; no I/O, no clock: time is passed in.
//!
//! # When is a pass "in time"? (`T` = the watchdog's *effective* timeout)
//! * `work` = from the moment the loop woke up (`poll(2)` returned) to the end of the pass, where
//!   the pet would be sent. A pass is **in time** when `work < T/2`. A longer pass means the loop
//!   itself stalled (a blocking call, swapping, a stopped process); its pet is withheld. One
//!   stall only delays the pet to the next pass; a loop whose every pass stalls is never petted
//!   again and the node resets after `T`: bbwd's passes are bounded by `T/2` on pain of a reset.
//! * `gap` = from the previous pet (or arming) to the end of this pass. The loop wakes up for a
//!   pet `T/3` after the previous one, so `gap` is normally `T/3` plus scheduling noise. A pass
//!   is **due** when `gap >= T/3` (the rate limit: at most one pet every `T/3`, so even a busy
//!   loop issues few keep-alives). A due pass with `gap > T/2` is **late** (sbd's latency
//!   warning): the loop came within `T/2` of a reset, e.g. a pause between passes. It is a
//!   warning, not a withheld pet: the loop is alive now.
//!
//! # The decision table
//! | node can correct itself | self-fence asked | due (`gap >= T/3`) | in time (`work < T/2`) | decision                    |
//! |-------------------------|------------------|--------------------|------------------------|-----------------------------|
//! | no (survived SIGKILL)   | any              | any                | any                    | withhold: `CannotCorrect`   |
//! | yes                     | yes              | any                | any                    | withhold: `SelfFence`       |
//! | yes                     | no               | no                 | any                    | `NotDue` (nothing to do)    |
//! | yes                     | no               | yes                | no                     | withhold: `LatePass`        |
//! | yes                     | no               | yes                | yes                    | pet                         |
//!
//! Latency warning (independent column): `late` when the node can correct itself, no
//! self-fence is asked, and `gap > T/2`; a run of late passes is reported once when it begins
//! and once when it ends.
//!
//! Bitbucket being down, restarting, holding for the database, or in maintenance is *not* an
//! input: the node is sound in all of those, and resetting it would not help.
//!
//! The systemd watchdog (`WATCHDOG=1`) follows only the "in time" column (its own pacing is in
//! `systemd.rs`): it guards bbwd itself, and bbwd stays alive and truthful when the node cannot
//! correct Bitbucket.
//!
//! # On a clean stop
//! The daemon disarms the hardware watchdog only after the machine's `Exit` (which comes after
//! Bitbucket is `Gone`; in pair mode also after the VIP is released), and never once the node
//! cannot correct itself: then it leaves the watchdog counting down.
//!
//! # Invariants
//! * `Pacer::end_of_pass` is the only way a pet is decided; it moves `last_pet` only on `Pet`.
//! * `Pacer::next_due` is `None` while a pet is withheld for `CannotCorrect` or `SelfFence`, so a
//!   withheld watchdog never makes the loop spin.

use std::time::{Duration, Instant};

/// What the loop knows at the end of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// At least `T/3` since the previous pet (the rate limit).
    pub due: bool,
    /// The pass's work took less than `T/2` (a late pass means the loop is stalling).
    pub pass_in_time: bool,
    /// False once Bitbucket survived SIGKILL past `kill_timeout`.
    pub node_can_correct: bool,
    /// The pair logic asks this node to fence itself.
    pub self_fence: bool,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pet,
    /// Petted less than `T/3` ago: nothing to do in this pass.
    NotDue,
    Withhold(Why),
}

/// Why a pet is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    LatePass,
    CannotCorrect,
    SelfFence,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::LatePass => "the loop pass took longer than half the watchdog timeout",
            Why::CannotCorrect => "the node cannot correct itself (Bitbucket survived SIGKILL)",
            Why::SelfFence => "self-fencing",
        }
    }
}

/// The hardware watchdog's policy (the table above).
pub fn hardware(i: Inputs) -> Decision {
    if !i.node_can_correct {
        Decision::Withhold(Why::CannotCorrect)
    } else if i.self_fence {
        Decision::Withhold(Why::SelfFence)
    } else if !i.due {
        Decision::NotDue
    } else if !i.pass_in_time {
        Decision::Withhold(Why::LatePass)
    } else {
        Decision::Pet
    }
}

/// The systemd watchdog's policy: only a stalled loop withholds it (its pacing is its own).
pub fn systemd(i: Inputs) -> Decision {
    if i.pass_in_time {
        Decision::Pet
    } else {
        Decision::Withhold(Why::LatePass)
    }
}

/// The latency column of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Not late (or lateness does not apply: not due, or petting is withheld on purpose).
    InTime,
    /// `gap` exceeded `T/2`; `first` when this begins a run of late passes (report it once).
    Late { gap: Duration, first: bool },
    /// The first due pass in time after `passes` late ones.
    Recovered { passes: u32 },
}

/// What the end of a pass yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub latency: Latency,
}

/// The pacing of one armed hardware watchdog of effective timeout `T`.
#[derive(Debug, Clone)]
pub struct Pacer {
    timeout: Duration,
    last_pet: Instant,
    late_run: u32,
    /// Withheld for `CannotCorrect`/`SelfFence` at the last pass: no wake-ups on our account.
    halted: bool,
    pets: u64,
}

impl Pacer {
    /// A pacer for a watchdog of effective `timeout`, armed (or last petted) at `armed_at`.
    pub fn new(timeout: Duration, armed_at: Instant) -> Pacer {
        Pacer {
            timeout,
            last_pet: armed_at,
            late_run: 0,
            halted: false,
            pets: 0,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `T/3`: the least time between two pets.
    pub fn interval(&self) -> Duration {
        self.timeout / 3
    }

    /// `T/2`: the budget of a pass's work, and the gap beyond which a pass is late.
    pub fn budget(&self) -> Duration {
        self.timeout / 2
    }

    /// When the loop must wake up for the next pet; `None` while petting is withheld on purpose.
    pub fn next_due(&self) -> Option<Instant> {
        (!self.halted).then(|| self.last_pet + self.interval())
    }

    /// Pets decided since start.
    pub fn pets(&self) -> u64 {
        self.pets
    }

    /// The decision at the end of a pass that woke up at `woke` and ends at `now`. On `Pet` the
    /// caller must pet right away; the pacing counts the attempt whether or not it succeeds (a
    /// watchdog that cannot be petted is not retried in a tight loop).
    pub fn end_of_pass(
        &mut self,
        woke: Instant,
        now: Instant,
        node_can_correct: bool,
        self_fence: bool,
    ) -> Verdict {
        let gap = now.saturating_duration_since(self.last_pet);
        let work = now.saturating_duration_since(woke);
        let inputs = Inputs {
            due: gap >= self.interval(),
            pass_in_time: work < self.budget(),
            node_can_correct,
            self_fence,
        };
        let decision = hardware(inputs);
        self.halted = matches!(
            decision,
            Decision::Withhold(Why::CannotCorrect | Why::SelfFence)
        );
        let latency = if self.halted || !inputs.due {
            Latency::InTime
        } else if gap > self.budget() {
            self.late_run += 1;
            Latency::Late {
                gap,
                first: self.late_run == 1,
            }
        } else if self.late_run > 0 {
            let passes = std::mem::take(&mut self.late_run);
            Latency::Recovered { passes }
        } else {
            Latency::InTime
        };
        if decision == Decision::Pet {
            self.last_pet = now;
            self.pets += 1;
        }
        Verdict { decision, latency }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One row: can correct, self-fence, due, in time (`None` is "any"), decision.
    type Row = (bool, Option<bool>, Option<bool>, Option<bool>, Decision);

    /// The table in the module doc, written out row by row.
    const TABLE: [Row; 5] = [
        (
            false,
            None,
            None,
            None,
            Decision::Withhold(Why::CannotCorrect),
        ),
        (
            true,
            Some(true),
            None,
            None,
            Decision::Withhold(Why::SelfFence),
        ),
        (true, Some(false), Some(false), None, Decision::NotDue),
        (
            true,
            Some(false),
            Some(true),
            Some(false),
            Decision::Withhold(Why::LatePass),
        ),
        (true, Some(false), Some(true), Some(true), Decision::Pet),
    ];

    fn row_matches(row: &Row, i: Inputs) -> bool {
        let any = |cell: Option<bool>, v: bool| cell.is_none_or(|c| c == v);
        row.0 == i.node_can_correct
            && any(row.1, i.self_fence)
            && any(row.2, i.due)
            && any(row.3, i.pass_in_time)
    }

    /// Every combination of inputs matches exactly one row of the table, and `hardware` gives
    /// that row's decision; `systemd` follows only the "in time" column.
    #[test]
    fn the_table_exhaustively() {
        for bits in 0u8..16 {
            let i = Inputs {
                due: bits & 1 != 0,
                pass_in_time: bits & 2 != 0,
                node_can_correct: bits & 4 != 0,
                self_fence: bits & 8 != 0,
            };
            let rows: Vec<_> = TABLE.iter().filter(|r| row_matches(r, i)).collect();
            assert_eq!(rows.len(), 1, "{i:?} matches {} rows", rows.len());
            assert_eq!(hardware(i), rows[0].4, "{i:?}");
            let sd = if i.pass_in_time {
                Decision::Pet
            } else {
                Decision::Withhold(Why::LatePass)
            };
            assert_eq!(systemd(i), sd, "{i:?}");
        }
    }

    #[test]
    fn an_unkillable_bitbucket_stops_the_hardware_watchdog_but_not_systemds() {
        let i = Inputs {
            due: true,
            pass_in_time: true,
            node_can_correct: false,
            self_fence: false,
        };
        assert_eq!(hardware(i), Decision::Withhold(Why::CannotCorrect));
        assert_eq!(systemd(i), Decision::Pet);
    }

    #[test]
    fn pacer_pets_at_most_every_third_of_the_timeout() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(3000), t0);
        assert_eq!(p.next_due(), Some(t0 + ms(1000)));
        // A busy loop: passes every 10 ms, each taking 1 ms.
        let mut pets = Vec::new();
        for k in 1..=350u64 {
            let now = t0 + ms(k * 10);
            let v = p.end_of_pass(now - ms(1), now, true, false);
            assert_eq!(v.latency, Latency::InTime);
            match v.decision {
                Decision::Pet => pets.push(k * 10),
                Decision::NotDue => {}
                d => panic!("unexpected {d:?} at {k}"),
            }
        }
        assert_eq!(pets, vec![1000, 2000, 3000]);
        assert_eq!(p.pets(), 3);
        assert_eq!(p.next_due(), Some(t0 + ms(4000)));
    }

    #[test]
    fn a_pass_whose_work_exceeds_half_the_timeout_is_not_petted() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(3000), t0);
        // Woke on time at 1000, but the pass took 1500 ms (= T/2): withheld, and late.
        let v = p.end_of_pass(t0 + ms(1000), t0 + ms(2500), true, false);
        assert_eq!(v.decision, Decision::Withhold(Why::LatePass));
        assert!(matches!(v.latency, Latency::Late { first: true, .. }));
        // The next, quick pass pets (one stall only delays the pet)...
        let v = p.end_of_pass(t0 + ms(2500), t0 + ms(2501), true, false);
        assert_eq!(v.decision, Decision::Pet);
        assert!(matches!(v.latency, Latency::Late { first: false, .. }));
        // ...and the one after is in time again: the run of late passes ends.
        let v = p.end_of_pass(t0 + ms(3501), t0 + ms(3502), true, false);
        assert_eq!(v.decision, Decision::Pet);
        assert_eq!(v.latency, Latency::Recovered { passes: 2 });
    }

    #[test]
    fn a_loop_that_always_stalls_is_never_petted() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(3000), t0);
        let mut woke = t0;
        for _ in 0..10 {
            let now = woke + ms(1600);
            let v = p.end_of_pass(woke, now, true, false);
            assert_eq!(v.decision, Decision::Withhold(Why::LatePass));
            woke = now;
        }
        assert_eq!(p.pets(), 0);
    }

    #[test]
    fn a_pause_between_passes_is_a_latency_warning_not_a_withheld_pet() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(60_000), t0);
        // The loop slept 31 s (e.g. SIGSTOP/SIGCONT) and then did a quick pass.
        let now = t0 + ms(31_000);
        let v = p.end_of_pass(now - ms(2), now, true, false);
        assert_eq!(v.decision, Decision::Pet);
        assert_eq!(
            v.latency,
            Latency::Late {
                gap: ms(31_000),
                first: true
            }
        );
        // Exactly T/2 is not late; T/3 is due.
        let mut p = Pacer::new(ms(60_000), t0);
        let v = p.end_of_pass(t0 + ms(30_000), t0 + ms(30_000), true, false);
        assert_eq!(v.decision, Decision::Pet);
        assert_eq!(v.latency, Latency::InTime);
    }

    #[test]
    fn unkillable_bitbucket_halts_petting_without_spinning_the_loop() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(3000), t0);
        let v = p.end_of_pass(t0 + ms(1000), t0 + ms(1000), true, false);
        assert_eq!(v.decision, Decision::Pet);
        for k in 2..10u64 {
            let now = t0 + ms(k * 1000);
            let v = p.end_of_pass(now, now, false, false);
            assert_eq!(v.decision, Decision::Withhold(Why::CannotCorrect));
            assert_eq!(
                v.latency,
                Latency::InTime,
                "no latency warnings while withholding"
            );
            assert_eq!(p.next_due(), None, "no wake-ups for a withheld watchdog");
        }
        assert_eq!(p.pets(), 1);
    }

    #[test]
    fn self_fence_halts_petting_and_its_withdrawal_resumes_it() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(3000), t0);
        let v = p.end_of_pass(t0 + ms(1000), t0 + ms(1000), true, true);
        assert_eq!(v.decision, Decision::Withhold(Why::SelfFence));
        assert_eq!(p.next_due(), None);
        let v = p.end_of_pass(t0 + ms(1200), t0 + ms(1200), true, false);
        assert_eq!(v.decision, Decision::Pet);
        assert_eq!(p.next_due(), Some(t0 + ms(2200)));
    }

    /// Bitbucket down, restarting, holding or in maintenance are not inputs at all: the only
    /// inputs besides timing are "can correct" and "self-fence" (a compile-time fact, checked
    /// here by constructing `Inputs` with every field).
    #[test]
    fn nothing_about_bitbucket_health_can_stop_the_pet() {
        let i = Inputs {
            due: true,
            pass_in_time: true,
            node_can_correct: true,
            self_fence: false,
        };
        assert_eq!(hardware(i), Decision::Pet);
    }
}
