//! What a run explores ([`Config`]: the fault budget, horizon, progress bound, preferences,
//! watchdog, the shell's storage record) and the settings each node's bbwd runs with (scaled
//! down: hb 200 ms, peer_timeout 600 ms, fence_delay 700 ms, boot_wait 600 ms; see the crate
//! doc), with the boot id of each run.
//!
//! Must not: depend on the state explored (settings are a function of node, run and time).

use std::time::Duration;

use bbwd_core::heartbeat::{self as hb, NodeName};
use bbwd_core::machine;
use bbwd_core::node::PairSettings;
use bbwd_core::pair;

use super::{Model, Mutant, LINKS, MS};

/// What the checker is asked to explore.
#[derive(Debug, Clone)]
pub struct Config {
    /// Faults per trace.
    pub faults: u8,
    /// Virtual time explored, from the cold start.
    pub horizon: Duration,
    /// Progress: this long after the last fault, exactly one node must serve.
    pub progress_bound: Duration,
    pub preferred: [bool; 2],
    pub witness: bool,
    pub fence_cycle: bool,
    /// Hardware watchdog timeout (a self-fenced node resets this long after).
    pub watchdog: Option<Duration>,
    /// `state_dir`'s storage record survives a power-off (it is on disk, as planned). `false`:
    /// the record is per kernel boot (e.g. under /run), so a rebooted node does not resume.
    pub record_survives_reboot: bool,
    /// Tolerate a node whose `next_deadline()` is still `now` after a `Tick` (a busy loop in
    /// the shell): tick it once per instant instead of reporting it.
    pub allow_spin: bool,
    pub mutant: Option<Mutant>,
}

impl Config {
    pub fn new(faults: u8, mutant: Option<Mutant>) -> Config {
        Config {
            faults,
            horizon: MS(6000),
            progress_bound: MS(4000),
            preferred: [true, false],
            witness: true,
            fence_cycle: false,
            watchdog: Some(MS(1000)),
            record_survives_reboot: true,
            allow_spin: false,
            mutant,
        }
    }
}

fn boot_id(n: u8, run: u8, mutant: Option<Mutant>) -> hb::BootId {
    let mut b = [0u8; 16];
    b[0] = 0xb0;
    b[1] = n;
    let _ = mutant;
    b[2] = run;
    b
}

impl Model {
    pub(super) fn sup_settings(&self) -> machine::Settings {
        machine::Settings {
            monitor_interval: MS(200),
            startup_timeout: MS(800),
            failures_before_action: 2,
            stop_timeout: MS(200),
            kill_timeout: MS(200),
            max_restarts: 1,
            restart_window: MS(10_000),
            database: false,
            pair: true,
            watchdog_resets: self.cfg.watchdog.is_some(),
        }
    }

    pub(super) fn pair_settings(&self, n: u8, run: u8, now: Duration) -> PairSettings {
        let m = self.cfg.mutant;
        // Mutant `both-preferred`: one config copied to both nodes, and the core's tie-break off.
        let both = m == Some(Mutant::BothPreferred);
        let preferred = both || self.cfg.preferred[n as usize];
        PairSettings {
            pair: pair::Settings {
                peer_timeout: MS(600),
                preferred_active: preferred,
                name_first: n == 0,
                fence_delay: MS(700),
                boot_wait: MS(600),
                witness: self.cfg.witness || m == Some(Mutant::WitnessOneMiss),
                witness_misses: 2,
                link_hold: MS(400),
                step_timeout: MS(400),
                release_timeout: MS(600),
                bmc_watch: MS(3_600_000),
            },
            heartbeat_interval: MS(200),
            links: LINKS,
            key: self.key.clone(),
            me: NodeName::new(if n == 0 { "n1" } else { "n2" }).unwrap(),
            peer: NodeName::new(if n == 0 { "n2" } else { "n1" }).unwrap(),
            boot_id: boot_id(n, run, m),
            first_sequence: 1_000_000 + now.as_micros() as u64,
            fence_timeout: MS(400),
            fence_cycle: self.cfg.fence_cycle,
            preferred,
        }
    }
}
