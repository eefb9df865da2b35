//! `bbwd run`: the event loops around the node (`bbwd_core::node::Node`).
//!
//! Owns the platform objects (the supervised process, the probe, the database check, the
//! control socket, the notify queue, systemd notification, the event log and ring, and in pair
//! mode `crate::cluster`) and the translation between them and the node: readiness becomes
//! inputs, actions become system calls. Must not decide anything: every "what now?" is the
//! node's. One concept per file:
//!
//! | file | owns |
//! |---|---|
//! | `setup.rs` | start-up: state directory, what an earlier bbwd left, the node, the watchdogs |
//! | `event_loop.rs` | one pass: poll, readiness into inputs, the loop's pace |
//! | `effects.rs` | carrying out the node's actions, recording events, persisting state |
//! | `watchdog.rs` | arming, petting and disarming the hardware watchdog |
//! | `requests.rs` | control requests and their replies |
//! | `report.rs` | the status report |
//! | `lb.rs` | mirror mode's HAProxy agent check |
//! | `exporter.rs` | Prometheus metrics: the scrape endpoint and node_exporter's textfile |
//!
//! One pass of the loop: register fds, wait in `poll(2)` until the earliest deadline, turn what
//! happened into inputs, tick the node, and at the very end of the pass send the systemd
//! keep-alive if due (so a loop that hangs anywhere stops it).
//!
//! # Invariants
//! * The loop never blocks on a peer: the probe, database check, control clients, notify
//!   commands, HAProxy's agent checks and Prometheus scrapes are non-blocking with deadlines.
//! * The pid file exists exactly while a process group started (or adopted) by bbwd may exist.
//! * State that must survive a bbwd restart (maintenance, a persistent `failed`) is written to
//!   `state_dir` before the step that changed it returns to the loop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bbwd_core::severity::Severity;
use bbwd_platform::agentcheck::{self, AgentServer};
use bbwd_platform::clock;
use bbwd_platform::command::{CommandQueue, Job, Outcome};
use bbwd_platform::control::{self, ControlServer, Request};
use bbwd_platform::fs::{self, EventLog};
use bbwd_platform::http::{HttpProbe, Interest, ProbeOutcome, StatusTarget};
use bbwd_platform::poll::{PollSet, Token, Want};
use bbwd_platform::process::{self, RunAs, SpawnSpec, Supervised};
use bbwd_platform::realtime;
use bbwd_platform::sdnotify::{self, SdNotify};
use bbwd_platform::signals::{Received, Signals};
use bbwd_platform::tcp::ConnectCheck;
use bbwd_watchdog::device::DeviceWatchdog;
use bbwd_watchdog::policy::{self, Decision, Latency, Pacer};
use bbwd_watchdog::systemd::SystemdWatchdog;
use bbwd_watchdog::HardwareWatchdog;
use log::{error, info, warn};

use crate::config::{self, Config, Mode, WatchdogDevice};
use crate::events::{Record, Ring};
use crate::machine::{self, Action, Boot, Detail, EventKind, FailReason, Input, Settings, State};
use crate::mirror::{self, ClockChange, ClockWatch, MaintMode};
use crate::status;
use bbwd_core::node::{self, Node};

/// The event log may grow to this before it is rotated (so at most twice this on disk).
pub const EVENT_LOG_MAX_BYTES: u64 = 1 << 20;

/// How long an exiting bbwd waits for queued notifications to run.
const NOTIFY_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// While the group leader is gone but members remain, how often to look again.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// Between answering a re-exec request and the exec: the reply's write is done in the pass that
/// answers it, so one more short wait suffices.
const REEXEC_GRACE: Duration = Duration::from_millis(50);

/// The name under which Bitbucket's output pipe is kept in systemd's fd store.
const FDSTORE_OUTPUT: &str = "bitbucket-output";

/// A wake-up this much later than planned is a stalled loop (recorded as `loop_stall`): the
/// pace systemd's and the hardware watchdog's keep-alives depend on was lost.
const LOOP_STALL: Duration = Duration::from_secs(2);

/// The error underneath a start-up failure, kept as it is (a platform call that reports its
/// failure only as text gives its text).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the daemon could not run. `crate::exit` maps each to `run`'s exit code.
#[derive(Debug)]
pub enum Error {
    /// Set-up failed on this node (state directory, its lock, control socket, signals, a port
    /// in use): what was being set up, and why.
    Setup { what: &'static str, source: Cause },
    /// Pair mode's platform side could not be opened (a port in use, a netlink socket).
    Pair(crate::cluster::SetupError),
    /// A config value does not work on this node at start-up (a status URL host that does not
    /// resolve, an unknown user or group, an address or device that is not there): the key and
    /// the reason. `bbwd run` exits 2 for it, as for any other config problem.
    Config { key: &'static str, source: Cause },
    /// The control socket answers already: another bbwd runs with this config.
    AlreadyRunning(PathBuf),
    /// poll(2) itself failed.
    Loop(std::io::Error),
}

impl Error {
    /// A config problem found only at start-up (SPEC: `run` exits 2 for it, as for any other
    /// config problem; 1 for the rest).
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config { .. })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setup { what, source } => write!(f, "cannot start: {what}: {source}"),
            Error::Pair(e) => write!(f, "cannot start: {e}"),
            Error::Config { key, source } => write!(f, "cannot start: {key}: {source}"),
            Error::AlreadyRunning(p) => write!(
                f,
                "another bbwd is already running (it answers on {})",
                p.display()
            ),
            Error::Loop(e) => write!(f, "event loop failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Setup { source, .. } | Error::Config { source, .. } => Some(source.as_ref()),
            Error::Pair(e) => Some(e),
            Error::Loop(e) => Some(e),
            Error::AlreadyRunning(_) => None,
        }
    }
}

/// Files in `state_dir`.
struct Paths {
    pidfile: PathBuf,
    maintenance: PathBuf,
    failed: PathBuf,
    events: PathBuf,
}

impl Paths {
    fn new(cfg: &Config) -> Paths {
        let d = &cfg.node.state_dir;
        Paths {
            pidfile: d.join("bitbucket.pid"),
            maintenance: d.join("maintenance"),
            failed: d.join("failed"),
            events: d.join("events.log"),
        }
    }
}

/// The persisted maintenance flag (`state_dir/maintenance`).
#[derive(serde::Serialize, serde::Deserialize)]
struct MaintenanceFile {
    reason: String,
    since: String,
    /// Mirror-farm node: what the load balancer is told (absent in older files: drain).
    #[serde(default)]
    lb: MaintMode,
}

/// A control request (one JSON line).
#[derive(serde::Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    Status,
    Maintenance {
        on: bool,
        #[serde(default)]
        reason: String,
        /// Mirror-farm node: `drain` (default) or `maint` for the load balancer.
        #[serde(default)]
        lb: Option<MaintMode>,
    },
    Reset,
    /// Pair mode: planned move of the service to the peer.
    Switchover,
    /// Pair mode: the operator's word that the peer is off when its BMC cannot say so.
    ConfirmPeerDown,
    /// `bbwd reexec` (the unit's `ExecReload`): run the binary now installed, in place, keeping
    /// Bitbucket, the VIP and the role.
    Reexec,
}

/// A check in progress: the probe and the database check run together.
#[derive(Default)]
struct CheckSlot {
    active: bool,
    probe: Option<ProbeOutcome>,
    db: Option<bool>,
}

/// The armed hardware watchdog (`[watchdog] device`), its pacing and its figures.
struct Hardware {
    dog: Box<dyn HardwareWatchdog>,
    pacer: Pacer,
    /// The last pet failed (logged once per run of failures).
    failing: bool,
    /// End of the pass to the keep-alive returned: the last one and the largest.
    latency_last: Option<Duration>,
    latency_max: Option<Duration>,
}

/// Everything the loop owns except the control server (which calls back into this).
struct Core {
    cfg: Config,
    /// Every decision: the supervisor, and in pair mode the pair, heartbeat and fencing.
    node: Node,
    spec: SpawnSpec,
    target: StatusTarget,
    proc: Option<Supervised>,
    leader_exited: bool,
    probe: HttpProbe,
    db: ConnectCheck,
    check: CheckSlot,
    notify: Option<CommandQueue>,
    sd: SdNotify,
    sd_watchdog: Option<SystemdWatchdog>,
    ring: Ring,
    event_log: Option<EventLog>,
    paths: Paths,
    /// Inputs produced while applying actions (Started, SpawnFailed, Checked).
    pending: heapless::Deque<node::Input, 32>,
    exit: bool,
    /// A re-exec was asked for: the loop ends at this moment (after the reply went out).
    reexec_at: Option<Instant>,
    /// Wall clock at this run's start (status: which run answers).
    started_at_ms: u64,
    last_state: Option<State>,
    persisted_failed: Option<FailReason>,
    persisted_maintenance: bool,
    maintenance_since: String,
    /// The hardware watchdog's policy input (issue: hardware watchdog).
    node_can_correct: bool,
    /// The armed hardware watchdog, `None` with `device = "none"`.
    hw: Option<Hardware>,
    /// `[watchdog] realtime` took effect (memory locked and SCHED_FIFO).
    realtime: bool,
    /// Mirror-farm node: the HAProxy agent-check server (`[load_balancer]`), else `None`.
    lb: Option<LbAgent>,
    /// What the load balancer is told during operator maintenance (persisted with it).
    maintenance_lb: MaintMode,
    /// The kernel's clock-synchronisation reading, paced.
    clock_watch: ClockWatch,
    /// Pair mode: heartbeats, fencing, VIP, hooks around the pair machine; `None` alone.
    cluster: Option<crate::cluster::Cluster>,
    /// The pre-start / post-stop check that nothing answers on `status_url`'s address.
    free: ConnectCheck,
    free_active: bool,
    /// The last failure to persist state (logged once per distinct failure).
    persist_error: Option<String>,
    /// The loop's pace and the output lines that only quoted an OutOfMemoryError.
    pace: status::LoopStats,
    /// Events recorded and checks begun since start (for the allocation benchmark).
    events_recorded: u64,
    checks_begun: u64,
    /// `[metrics]`: the scrape endpoint, the textfile and the counters only metrics need.
    exporter: exporter::Exporter,
    /// When the check in progress began (its duration is a metric).
    check_started: Option<Instant>,
    #[cfg(feature = "alloc-count")]
    bench: crate::alloc_count::LoopStats,
}

mod effects;
mod event_loop;
mod exporter;
mod lb;
mod report;
mod requests;
mod setup;
mod watchdog;

use lb::{text256, LbAgent};
use setup::output_fd_name;
pub use setup::run;
pub(crate) use setup::spawn_spec;
