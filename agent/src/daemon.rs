//! `bbwd run`: the event loop around the state machine.
//!
//! Owns the platform objects (the supervised process, the probe, the database check, the
//! control socket, the notify queue, systemd notification, the event log and ring) and the
//! translation between them and the machine: readiness becomes `Input`s, `Action`s become system
//! calls. Must not decide anything: every "what now?" is the machine's (`machine.rs`).
//!
//! One pass of the loop: register fds, wait in `poll(2)` until the earliest deadline, turn what
//! happened into inputs, tick the machine, and at the very end of the pass send the systemd
//! keep-alive if due (so a loop that hangs anywhere stops it).
//!
//! # Invariants
//! * The loop never blocks on a peer: the probe, database check, control clients and notify
//!   commands are non-blocking with deadlines.
//! * The pid file exists exactly while a process group started (or adopted) by bbwd may exist.
//! * State that must survive a bbwd restart (maintenance, a persistent `failed`) is written to
//!   `state_dir` before the step that changed it returns to the loop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bbwd_platform::agentcheck::{self, AgentServer};
use bbwd_platform::clock;
use bbwd_platform::command::{CommandQueue, Job, Outcome};
use bbwd_platform::control::{self, ControlServer, Request};
use bbwd_platform::fs::{self, EventLog};
use bbwd_platform::http::{HttpProbe, Interest, ProbeOutcome, StatusTarget};
use bbwd_platform::poll::{PollSet, Want};
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

/// Why the daemon could not run. Each maps to an exit code in `main`.
#[derive(Debug)]
pub enum Error {
    /// Set-up failed (state directory, control socket, signals, user lookup, URL).
    Setup(String),
    /// The control socket answers already: another bbwd runs with this config.
    AlreadyRunning(PathBuf),
    /// poll(2) itself failed.
    Loop(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setup(s) => write!(f, "cannot start: {s}"),
            Error::AlreadyRunning(p) => write!(
                f,
                "another bbwd is already running (it answers on {})",
                p.display()
            ),
            Error::Loop(e) => write!(f, "event loop failed: {e}"),
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
    #[cfg(feature = "alloc-count")]
    bench: crate::alloc_count::LoopStats,
}

/// Runs the daemon until SIGTERM/SIGINT has stopped Bitbucket.
pub fn run(cfg: Config) -> Result<(), Error> {
    let setup = |what: &str, e: &dyn std::fmt::Display| Error::Setup(format!("{what}: {e}"));
    fs::ensure_dir(&cfg.node.state_dir, 0o750).map_err(|e| setup("state_dir", &e))?;
    // A node that cannot record what it runs must not start it: the next bbwd would not know
    // it and start a second one.
    fs::check_writable(&cfg.node.state_dir).map_err(|e| {
        setup(
            "node.state_dir is not writable (read-only or full filesystem?); bbwd would start \
             Bitbucket without a pid file",
            &e,
        )
    })?;
    // One bbwd per state_dir (a second one, even on another control socket, would adopt and
    // restart the same Bitbucket). Held until `run` returns; the kernel drops it on any exit.
    let _lock = fs::StateLock::acquire(&cfg.node.state_dir, fs::STATE_LOCK_NAME, None).map_err(
        |e| match e {
            fs::LockError::Held { .. } => Error::Setup(format!(
                "another bbwd is already running with this node.state_dir: {e}"
            )),
            fs::LockError::Io(e) => setup("node.state_dir", &e),
        },
    )?;
    let paths = Paths::new(&cfg);
    let target = StatusTarget::parse(&cfg.bitbucket.status_url)
        .map_err(|e| setup("bitbucket.status_url", &e.0))?;
    let user = match &cfg.bitbucket.user {
        Some(name) => Some(RunAs::lookup(name).map_err(|e| setup("bitbucket.user", &e))?),
        None => None,
    };
    let spec = spawn_spec(&cfg.bitbucket, user, cfg.bitbucket.capture_output);
    let status_gid = match &cfg.node.status_group {
        Some(g) => Some(control::group_id(g).map_err(|e| setup("node.status_group", &e))?),
        None => None,
    };
    let mut control = match ControlServer::bind_with(&cfg.node.control_socket, status_gid) {
        Ok(c) => c,
        Err(control::Error::InUse(p)) => return Err(Error::AlreadyRunning(p)),
        Err(e) => return Err(setup("node.control_socket", &e)),
    };
    let mut signals = Signals::install().map_err(|e| setup("signals", &e))?;
    let lb = match &cfg.load_balancer {
        Some(l) => match AgentServer::bind(l.haproxy_agent, agentcheck::CONN_TIMEOUT) {
            Ok(server) => Some(LbAgent::new(server)),
            Err(e) => {
                control.remove();
                return Err(setup("load_balancer.haproxy_agent", &e));
            }
        },
        None => None,
    };
    let event_log = match EventLog::open(&paths.events, EVENT_LOG_MAX_BYTES) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!("event log disabled: {e}");
            None
        }
    };
    let now = clock::now();

    // What an earlier bbwd left behind.
    let maintenance = read_maintenance(&paths);
    let failed = {
        let read = fs::read_optional(&paths.failed);
        let text = match &read {
            Ok(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        };
        let file = match (&read, text) {
            (Ok(None), _) => machine::Persisted::Missing,
            (Ok(Some(_)), Some(t)) => machine::Persisted::Text(t),
            (Ok(Some(_)), None) => machine::Persisted::Unreadable,
            (Err(e), _) => {
                warn!("{e}");
                machine::Persisted::Unreadable
            }
        };
        let failed = machine::boot_failed(file);
        if failed == Some(FailReason::UnreadableState) {
            warn!(
                "{}: unreadable or unknown content; staying failed until `bbwd reset`",
                paths.failed.display()
            );
        }
        failed
    };
    let (proc, stale) = adopt(&paths);
    if let Some(stale) = stale {
        // The recorded leader is gone; whatever is left of its group must not outlive it.
        if process::kill_stale_group(&stale) {
            warn!(
                "killed what was left of Bitbucket's old process group {}",
                stale.pgid
            );
        }
        let _ = process::remove_pidfile(&paths.pidfile);
    }
    let boot = Boot {
        adopted_pid: proc.as_ref().map(|p| p.pid()),
        failed,
        maintenance: maintenance.as_ref().map(|m| machine::detail(&m.reason)),
    };
    let settings = Settings {
        monitor_interval: cfg.bitbucket.monitor_interval,
        startup_timeout: cfg.bitbucket.startup_timeout,
        failures_before_action: cfg.bitbucket.failures_before_action,
        stop_timeout: cfg.bitbucket.stop_timeout,
        kill_timeout: cfg.bitbucket.kill_timeout,
        max_restarts: cfg.bitbucket.max_restarts,
        restart_window: cfg.bitbucket.restart_window,
        database: cfg.database.is_some(),
        pair: cfg.mode() == Mode::Pair,
        watchdog_resets: !matches!(cfg.watchdog.device, WatchdogDevice::None),
    };
    // Pair mode's platform side first: what it finds (a VIP, the storage record) is part of
    // what the node starts from.
    let mut pair_setup = None;
    if cfg.mode() == Mode::Pair {
        match crate::cluster::Cluster::open(&cfg) {
            Ok(s) => pair_setup = Some(s),
            Err(e) => {
                control.remove();
                return Err(Error::Setup(e));
            }
        }
    }
    let node_boot = node::Boot {
        sup: boot,
        vip_held: pair_setup.as_ref().is_some_and(|s| s.vip_held),
        storage_held: pair_setup.as_ref().is_some_and(|s| s.storage_held),
    };
    let (cluster, pair_settings) = match pair_setup {
        Some(s) => (Some(s.cluster), Some(s.settings)),
        None => (None, None),
    };
    let (node, first) = Node::new(settings, pair_settings, node_boot, now);
    let notify = cfg
        .notify
        .as_ref()
        .map(|n| CommandQueue::new(n.command.clone(), n.timeout));
    let sd = SdNotify::from_env();
    let maintenance_lb = maintenance.as_ref().map(|m| m.lb).unwrap_or_default();
    let mut core = Core {
        sd_watchdog: SystemdWatchdog::from_env(now),
        persisted_failed: failed,
        persisted_maintenance: maintenance.is_some(),
        maintenance_since: maintenance.map(|m| m.since).unwrap_or_default(),
        cfg,
        node,
        spec,
        target,
        proc,
        leader_exited: false,
        probe: HttpProbe::new(),
        db: ConnectCheck::new(),
        check: CheckSlot::default(),
        notify,
        sd,
        ring: Ring::new(),
        event_log,
        paths,
        pending: heapless::Deque::new(),
        exit: false,
        reexec_at: None,
        started_at_ms: clock::wall_ms(),
        last_state: None,
        node_can_correct: true,
        hw: None,
        realtime: false,
        lb,
        maintenance_lb,
        clock_watch: ClockWatch::new(now),
        cluster,
        free: ConnectCheck::new(),
        free_active: false,
        persist_error: None,
        pace: status::LoopStats::default(),
        events_recorded: 0,
        checks_begun: 0,
        #[cfg(feature = "alloc-count")]
        bench: Default::default(),
    };
    if core.cfg.watchdog.realtime {
        core.realtime = harden();
    }
    let version = env!("CARGO_PKG_VERSION");
    let node = core.cfg.node.name.clone();
    core.record(
        EventKind::DaemonStart,
        &machine::detail(&format!("bbwd {version} on {node}")),
    );
    // Armed as late as possible: from here on, a bbwd that does not reach its loop resets the node.
    match open_hardware_watchdog(&core.cfg.watchdog) {
        Ok(Some(dog)) => core.armed(dog),
        Ok(None) => {}
        Err(e) => {
            control.remove();
            return Err(setup("watchdog.device", &e));
        }
    }
    core.apply(now, first);
    core.drain_pending(now);
    core.sd.ready();
    info!("ready: supervising {:?}", core.cfg.bitbucket.command);

    let mut result = core.main_loop(&mut control, &mut signals);
    while result.is_ok() && core.reexec_at.is_some() {
        let e = core.reexec();
        error!("re-exec failed, carrying on as before: {e}");
        core.reexec_at = None;
        result = core.main_loop(&mut control, &mut signals);
    }
    if result.is_ok() {
        // Bitbucket is gone (the machine's `Exit` follows `Gone`): only now may the node lose
        // its watchdog.
        core.disarm_hardware();
    }
    control.remove();
    core.flush_notify();
    if let Some(c) = core.cluster.take() {
        c.close();
    }
    result
}

/// Opens and arms the configured hardware watchdog; `None` for `device = "none"`.
fn open_hardware_watchdog(
    cfg: &config::Watchdog,
) -> Result<Option<Box<dyn HardwareWatchdog>>, bbwd_watchdog::Error> {
    match &cfg.device {
        WatchdogDevice::None => Ok(None),
        WatchdogDevice::Device(path) => {
            Ok(Some(Box::new(DeviceWatchdog::open(path, cfg.timeout)?)))
        }
        WatchdogDevice::Ipmi => {
            use bbwd_platform::ipmi::{Target, WatchdogAction as Bmc};
            use bbwd_watchdog::ipmi::{lan_target, IpmiWatchdog};
            // [watchdog.ipmi]: this node's own BMC over RMCP+; without it the local /dev/ipmi0.
            let target = match &cfg.ipmi {
                Some(lan) => lan_target(&lan.host, lan.port, &lan.username, &lan.password_file)?,
                None => Target::Local(PathBuf::from("/dev/ipmi0")),
            };
            let action = match cfg.action {
                config::WatchdogAction::Reset => Bmc::HardReset,
                config::WatchdogAction::PowerCycle => Bmc::PowerCycle,
                config::WatchdogAction::PowerOff => Bmc::PowerDown,
            };
            Ok(Some(Box::new(IpmiWatchdog::open(
                target,
                action,
                cfg.timeout,
            )?)))
        }
    }
}

/// `[watchdog] realtime`: locks bbwd's memory and puts the loop (this thread) on SCHED_FIFO.
/// A failure is loud but not fatal: supervision without hardening beats none. Returns whether
/// both took effect.
fn harden() -> bool {
    let mut ok = true;
    if let Err(e) = realtime::lock_memory() {
        error!("watchdog.realtime: {e}");
        ok = false;
    }
    if let Err(e) = realtime::set_fifo(realtime::FIFO_PRIORITY) {
        error!("watchdog.realtime: {e}");
        ok = false;
    }
    if ok {
        info!(
            "watchdog.realtime: memory locked, loop at SCHED_FIFO priority {}",
            realtime::FIFO_PRIORITY
        );
    }
    ok
}

/// How to start Bitbucket, from `[bitbucket]` and the resolved user (shared with `bbwd ocf`).
pub(crate) fn spawn_spec(
    bb: &crate::config::Bitbucket,
    user: Option<RunAs>,
    capture_output: bool,
) -> SpawnSpec {
    SpawnSpec {
        argv: bb.command.clone(),
        user,
        env: bb
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        capture_output,
    }
}

/// Re-adopts a Bitbucket recorded in the pid file. Returns it, or the stale record.
fn adopt(paths: &Paths) -> (Option<Supervised>, Option<process::PidRecord>) {
    let record = match process::read_pidfile(&paths.pidfile) {
        Ok(Some(r)) => r,
        Ok(None) => return (None, None),
        Err(e) => {
            warn!("{e}: ignoring it");
            let _ = process::remove_pidfile(&paths.pidfile);
            return (None, None);
        }
    };
    match Supervised::adopt(&record) {
        Ok(Some(mut p)) => {
            // Bitbucket's output pipe: passed across a re-exec, or kept by systemd across our
            // restart, if it was.
            if let Some(fd) = bbwd_platform::reexec::inherited_output(record.pid) {
                p.attach_output(fd);
            } else {
                let name = output_fd_name(record.pid);
                for (n, fd) in sdnotify::listen_fds_with_names() {
                    if n == name {
                        p.attach_output(fd);
                    }
                }
            }
            info!(
                "re-adopting Bitbucket pid {} (started by an earlier bbwd)",
                record.pid
            );
            (Some(p), None)
        }
        Ok(None) => {
            info!("recorded Bitbucket pid {} is gone", record.pid);
            (None, Some(record))
        }
        Err(e) => {
            warn!("cannot re-adopt pid {}: {e}", record.pid);
            (None, Some(record))
        }
    }
}

fn output_fd_name(pid: i32) -> String {
    format!("{FDSTORE_OUTPUT}-{pid}")
}

fn read_maintenance(paths: &Paths) -> Option<MaintenanceFile> {
    match fs::read_optional(&paths.maintenance) {
        Ok(Some(bytes)) => match serde_json::from_slice::<MaintenanceFile>(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                // Keep the operator's intent even if the file is damaged: stay in maintenance.
                warn!(
                    "{}: unreadable ({e}); staying in maintenance",
                    paths.maintenance.display()
                );
                Some(MaintenanceFile {
                    reason: "unreadable maintenance file".into(),
                    since: String::new(),
                    lb: MaintMode::default(),
                })
            }
        },
        Ok(None) => None,
        Err(e) => {
            // As a damaged file: fail safe, stay in maintenance.
            warn!("{e}; staying in maintenance");
            Some(MaintenanceFile {
                reason: "unreadable maintenance file".into(),
                since: String::new(),
                lb: MaintMode::default(),
            })
        }
    }
}

impl Core {
    fn main_loop(
        &mut self,
        control: &mut ControlServer,
        signals: &mut Signals,
    ) -> Result<(), Error> {
        let mut set = PollSet::new();
        while !self.exit && self.reexec_at.is_none_or(|t| clock::now() < t) {
            let now = clock::now();
            set.clear();
            let t_sig = set.add(signals.fd(), Want::Read);
            let t_pid = self
                .proc
                .as_ref()
                .and_then(|p| p.pidfd())
                .and_then(|fd| set.add(fd, Want::Read));
            let t_out = self
                .proc
                .as_ref()
                .and_then(|p| p.output_fd())
                .and_then(|fd| set.add(fd, Want::Read));
            let t_probe = self.probe.interest().and_then(|(fd, i)| {
                set.add(
                    fd,
                    match i {
                        Interest::Readable => Want::Read,
                        Interest::Writable => Want::Write,
                    },
                )
            });
            let t_db = self.db.fd().and_then(|fd| set.add(fd, Want::Write));
            let t_free = self.free.fd().and_then(|fd| set.add(fd, Want::Write));
            if let Some(fd) = bbwd_platform::logger::poll_fd() {
                let _ = set.add(fd, Want::Write);
            }
            let t_notify = self
                .notify
                .as_ref()
                .and_then(|n| n.fd())
                .and_then(|fd| set.add(fd, Want::Read));
            control.poll_items(&mut |item| {
                let _ = set.add(
                    item.fd,
                    if item.writable {
                        Want::Write
                    } else {
                        Want::Read
                    },
                );
            });
            if let Some(lb) = &self.lb {
                lb.server.poll_items(&mut |fd, i| {
                    let want = match i {
                        agentcheck::Interest::Read => Want::Read,
                        agentcheck::Interest::Write => Want::Write,
                    };
                    let _ = set.add(fd, want);
                });
            }
            let t_cluster = self.cluster.as_ref().map(|c| c.register(&mut set));
            let deadline = self.next_deadline(now, control);
            let timeout = deadline.map(|d| d.saturating_duration_since(now));
            let planned_at = now;
            set.wait(timeout).map_err(Error::Loop)?;

            let now = clock::now();
            if let Some(d) = deadline {
                // Late against the moment it was to wake (a deadline already due when the wait
                // began means "at once", not "late by its age").
                self.pace_late(now.saturating_duration_since(d.max(planned_at)));
            }
            #[cfg(feature = "alloc-count")]
            let (allocs_before, events_before, checks_before) = (
                crate::alloc_count::allocations(),
                self.events_recorded,
                self.checks_begun,
            );
            if set.ready(t_sig).any() {
                while let Some(sig) = signals.read() {
                    match sig {
                        Received::Shutdown => {
                            self.sd.stopping();
                            // Pair mode: the node releases in order (VIP, Bitbucket, hooks)
                            // first; the supervisor shuts down when that is done.
                            self.feed_node(now, node::Input::Shutdown);
                        }
                        Received::Reopen => {
                            if let Some(l) = &mut self.event_log {
                                if let Err(e) = l.reopen() {
                                    warn!("{e}");
                                }
                            }
                        }
                        Received::Ignored(n) => {
                            warn!("signal {n} received and ignored: bbwd stops on SIGTERM/SIGINT only")
                        }
                    }
                }
            }
            self.service_process(now, set.ready(t_pid).any(), set.ready(t_out).any());
            if set.ready(t_probe).any() || self.probe.deadline().is_some_and(|d| now >= d) {
                if let Some(o) = self.probe.advance(now) {
                    self.check.probe = Some(o);
                }
            }
            if set.ready(t_db).any() || self.db.deadline().is_some_and(|d| now >= d) {
                if let Some(r) = self.db.advance(now) {
                    self.check.db = Some(r.is_ok());
                }
            }
            self.finish_check(now);
            if set.ready(t_free).any() || self.free.deadline().is_some_and(|d| now >= d) {
                if let Some(r) = self.free.advance(now) {
                    self.free_checked(now, r.is_ok());
                }
            }
            if set.ready(t_notify).any()
                || self
                    .notify
                    .as_ref()
                    .and_then(|n| n.deadline())
                    .is_some_and(|d| now >= d)
            {
                self.service_notify(now);
            }
            let mut served = false;
            control.service(now, &mut |req| {
                served = true;
                self.handle(now, req)
            });
            self.feed_node(now, node::Input::Tick);
            if let (Some(c), Some(tokens)) = (&mut self.cluster, &t_cluster) {
                let mut acts = Vec::new();
                c.service(now, &set, tokens, &mut self.node, &mut acts);
                self.apply(now, acts);
            }
            self.drain_pending(now);
            self.service_mirror(now);
            #[cfg(feature = "alloc-count")]
            self.bench.pass(
                crate::alloc_count::allocations() - allocs_before,
                self.checks_begun - checks_before,
                served || self.events_recorded != events_before,
            );
            let _ = served;

            bbwd_platform::logger::flush();
            let end = clock::now();
            self.pace.passes += 1;
            self.pace.pass_max_ms = self
                .pace
                .pass_max_ms
                .max(end.saturating_duration_since(now).as_millis() as u64);

            // End of the pass: the keep-alives go last, so a pass that hangs anywhere stops them.
            let pass_in_time = self.pet_hardware(now, end);
            let inputs = policy::Inputs {
                due: true,
                pass_in_time,
                node_can_correct: self.node_can_correct,
                self_fence: self.node.self_fenced(),
            };
            if policy::systemd(inputs) == policy::Decision::Pet {
                if let Some(w) = &mut self.sd_watchdog {
                    w.pet_if_due(&self.sd, clock::now());
                }
            }
        }
        if self.reexec_at.is_none() {
            info!("Bitbucket stopped; bbwd exits");
        }
        #[cfg(feature = "alloc-count")]
        info!("{}", self.bench.report());
        Ok(())
    }

    /// The earliest moment anything needs the loop.
    fn next_deadline(&self, now: Instant, control: &ControlServer) -> Option<Instant> {
        let group = (self.leader_exited && self.proc.is_some()).then(|| now + GROUP_POLL);
        [
            self.node.next_deadline(),
            self.probe.deadline(),
            self.db.deadline(),
            self.notify.as_ref().and_then(|n| n.deadline()),
            control.deadline(),
            self.sd_watchdog.as_ref().map(|w| w.next_due()),
            self.hw.as_ref().and_then(|h| h.pacer.next_due()),
            self.lb.as_ref().and_then(|l| l.server.deadline()),
            self.free.deadline(),
            Some(self.clock_watch.next_read()),
            self.cluster.as_ref().and_then(|c| c.deadline()),
            self.reexec_at,
            group,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes over a freshly armed hardware watchdog: pacing from now, events.
    fn armed(&mut self, dog: Box<dyn HardwareWatchdog>) {
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
    fn pet_hardware(&mut self, woke: Instant, end: Instant) -> bool {
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
    fn disarm_hardware(&mut self) {
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

    /// Runs the binary now installed in place of this process (same PID): Bitbucket keeps
    /// running and is re-adopted from the pid file, the VIP and the storage record stay, and the
    /// new run resumes the role from them. Returns only on failure.
    fn reexec(&mut self) -> std::io::Error {
        let binary = match bbwd_platform::reexec::binary() {
            Ok(b) => b,
            Err(e) => return e,
        };
        let v = self.node.machine().view();
        info!(
            "re-executing {} (was {}): Bitbucket pid {:?}, role {}, state {}",
            binary.display(),
            env!("CARGO_PKG_VERSION"),
            v.pid,
            self.node.role().map_or("none", |r| r.as_str()),
            v.state.as_str()
        );
        self.sd.reloading();
        let output = self
            .proc
            .as_ref()
            .and_then(|p| p.output_fd().map(|fd| (fd, p.pid())));
        bbwd_platform::reexec::exec(&binary, output)
    }

    /// Feeds a supervisor input and everything that follows from it.
    fn feed(&mut self, now: Instant, input: Input) {
        self.feed_node(now, node::Input::Sup(input));
    }

    /// Feeds a node input and everything that follows from it.
    fn feed_node(&mut self, now: Instant, input: node::Input) {
        let acts = self.node.step(now, input);
        self.apply(now, acts);
        self.drain_pending(now);
    }

    /// Runs the inputs that carrying out actions produced (the process side's, the cluster's)
    /// until none is left.
    fn drain_pending(&mut self, now: Instant) {
        // Bounded: each round's actions may produce inputs, but a loop must not spin here.
        for _ in 0..256 {
            let input = match self.pending.pop_front() {
                Some(i) => i,
                None => match self.cluster.as_mut().and_then(|c| c.next_input()) {
                    Some(i) => i,
                    None => break,
                },
            };
            let acts = self.node.step(now, input);
            self.apply(now, acts);
        }
        while let Some((kind, detail, problem)) = self.cluster.as_mut().and_then(|c| c.next_event())
        {
            self.record_named(kind, &detail, problem);
        }
        self.after_change();
    }

    fn push_input(&mut self, input: Input) {
        if self.pending.push_back(node::Input::Sup(input)).is_err() {
            error!("internal: input queue full; an input was lost");
        }
    }

    /// Carries out the node's actions: the supervisor's here, the pair's by the cluster.
    fn apply(&mut self, now: Instant, acts: impl IntoIterator<Item = node::Action>) {
        for a in acts {
            match a {
                node::Action::Sup(Action::Spawn) => self.spawn(),
                node::Action::Sup(Action::Signal(sig)) => {
                    let sig = match sig {
                        machine::Sig::Term => process::GroupSignal::Term,
                        machine::Sig::Kill => process::GroupSignal::Kill,
                    };
                    if let Some(p) = &self.proc {
                        if self.leader_exited {
                            // Say what is signalled, and why (the machine's events say when).
                            let pgid = p.record().pgid;
                            let members = process::group_members(pgid);
                            if !members.is_empty() {
                                warn!(
                                    "Bitbucket's leader pid {} exited; {:?} to what is left of its process group {pgid}: pids {members:?}",
                                    p.pid(),
                                    sig
                                );
                            }
                        }
                        if let Err(e) = p.signal_group(sig) {
                            error!("{e}");
                        }
                    }
                }
                node::Action::Sup(Action::Check) => self.begin_check(now),
                node::Action::Sup(Action::CheckFree) => self.begin_free_check(now),
                node::Action::Sup(Action::ResumePetting) => {
                    self.node_can_correct = true;
                    info!("the unkillable process group is gone and the operator reset: keep-alives resume");
                }
                node::Action::Sup(Action::Event(kind, detail)) => self.record(kind, &detail),
                node::Action::Sup(Action::StopPetting) => {
                    self.node_can_correct = false;
                    error!(
                        "the node cannot correct itself: the hardware watchdog is no longer petted"
                    );
                }
                // Settled inside the node.
                node::Action::Sup(Action::Exit | Action::Report(_)) => {}
                node::Action::Exit => self.exit = true,
                node::Action::Event(kind, detail) => {
                    self.record_named(kind.as_str(), &detail, kind.is_problem());
                    if let Some(c) = &mut self.cluster {
                        c.apply(now, &node::Action::Event(kind, detail), &mut self.node);
                    }
                }
                other => {
                    if let Some(c) = &mut self.cluster {
                        c.apply(now, &other, &mut self.node);
                    }
                }
            }
        }
    }

    fn spawn(&mut self) {
        match Supervised::spawn(&self.spec) {
            Ok(p) => {
                let pid = p.pid();
                if let Err(e) = process::write_pidfile(&self.paths.pidfile, &p.record()) {
                    // Re-adoption after a bbwd restart will not work; supervision does.
                    error!("{e}");
                }
                if self.sd.enabled() {
                    if let Some(fd) = p.output_fd() {
                        if let Err(e) = self.sd.store_fd(&output_fd_name(pid), fd) {
                            warn!("cannot keep Bitbucket's output pipe in systemd's fd store: {e}");
                        }
                    }
                }
                self.proc = Some(p);
                self.leader_exited = false;
                self.push_input(Input::Started { pid });
            }
            Err(e) => self.push_input(Input::SpawnFailed {
                detail: machine::detail(&e.to_string()),
            }),
        }
    }

    /// Learns of the leader's exit (pidfd) and of the group being gone; drains its output.
    fn service_process(&mut self, now: Instant, pid_ready: bool, out_ready: bool) {
        let Some(p) = &mut self.proc else { return };
        let mut oome = false;
        if out_ready {
            let mentions = &mut self.pace.oome_mentions;
            p.drain_output(&mut |line: &[u8]| {
                match bbwd_core::output::classify(line) {
                    bbwd_core::output::Line::Oome => oome = true,
                    bbwd_core::output::Line::Mention => *mentions += 1,
                    bbwd_core::output::Line::Other => {}
                }
                info!(target: "bitbucket", "{}", String::from_utf8_lossy(line).trim_end());
            });
        }
        let exit = if pid_ready {
            p.try_collect_exit()
        } else {
            None
        };
        let gone = (self.leader_exited || exit.is_some()) && !p.group_alive();
        if oome {
            self.feed(now, Input::OomeLine);
        }
        if let Some(kind) = exit {
            self.leader_exited = true;
            self.feed(now, Input::Exited { kind });
        }
        if gone {
            if let Some(p) = self.proc.take() {
                if self.sd.enabled() {
                    let _ = self.sd.remove_fd(&output_fd_name(p.pid()));
                }
            }
            self.leader_exited = false;
            if let Err(e) = process::remove_pidfile(&self.paths.pidfile) {
                error!("{e}");
            }
            self.feed(now, Input::Gone);
        }
    }

    fn begin_check(&mut self, now: Instant) {
        self.checks_begun += 1;
        self.check = CheckSlot {
            active: true,
            probe: None,
            db: None,
        };
        if let Err(outcome) =
            self.probe
                .start(&self.target, now, self.cfg.bitbucket.monitor_timeout)
        {
            self.check.probe = Some(outcome);
        }
        if let Some(db) = &self.cfg.database {
            if let Some(r) = self.db.start(db.resolved, now, db.timeout) {
                self.check.db = Some(r.is_ok());
            }
        }
        self.finish_check(now);
    }

    /// `CheckFree`: a TCP connect to `status_url`'s address. Accepted = something listens there
    /// (a Bitbucket that escaped its process group, or a foreign one); refused or no answer
    /// within `monitor_timeout` = free.
    fn begin_free_check(&mut self, now: Instant) {
        self.free_active = true;
        if let Some(r) = self
            .free
            .start(self.target.addr, now, self.cfg.bitbucket.monitor_timeout)
        {
            self.free_checked(now, r.is_ok());
        }
    }

    fn free_checked(&mut self, now: Instant, connected: bool) {
        if !std::mem::take(&mut self.free_active) {
            return;
        }
        let occupied = connected.then(|| {
            machine::detail(&format!(
                "something accepts connections on {} (bitbucket.status_url) while no process of ours runs",
                self.target.addr
            ))
        });
        self.push_input(Input::FreeChecked { occupied });
        self.drain_pending(now);
    }

    /// Records how late the loop woke up; a stall is an event.
    fn pace_late(&mut self, late: Duration) {
        let ms = late.as_millis() as u64;
        if ms > self.pace.late_max_ms {
            self.pace.late_max_ms = ms;
        }
        if late >= LOOP_STALL {
            self.record(
                EventKind::LoopStall,
                &machine::detail(&format!(
                    "the event loop woke {ms} ms after its deadline (bbwd was stopped or starved)"
                )),
            );
        }
    }

    /// Delivers `Checked` once the probe and (if configured) the database check are done.
    fn finish_check(&mut self, _now: Instant) {
        if !self.check.active {
            return;
        }
        let db_needed = self.cfg.database.is_some();
        if let Some(probe) = self.check.probe {
            if !db_needed || self.check.db.is_some() {
                let db_up = if db_needed { self.check.db } else { None };
                self.check = CheckSlot::default();
                self.push_input(Input::Checked { probe, db_up });
            }
        }
    }

    fn service_notify(&mut self, now: Instant) {
        let Some(q) = &mut self.notify else { return };
        if let Some(outcome) = q.service(now) {
            match outcome {
                Outcome::Success => {}
                Outcome::Failed(code) => warn!("notify.command exited with status {code}"),
                Outcome::Signaled(sig) => warn!("notify.command killed by signal {sig}"),
                Outcome::TimedOut => warn!("notify.command exceeded notify.timeout and was killed"),
                Outcome::SpawnFailed(e) => warn!("notify.command: {e}"),
            }
        }
    }

    /// At exit: lets queued notifications (`shutdown`, `stopped`) run, for at most
    /// `NOTIFY_FLUSH_LIMIT`, so the last events reach the operator too.
    fn flush_notify(&mut self) {
        let until = clock::now() + NOTIFY_FLUSH_LIMIT;
        let mut set = PollSet::new();
        loop {
            let now = clock::now();
            let Some(q) = &mut self.notify else { return };
            if q.is_empty() || now >= until {
                if !q.is_empty() {
                    warn!("exiting with {} notification(s) not delivered", q.len());
                }
                return;
            }
            set.clear();
            let _ = q.fd().and_then(|fd| set.add(fd, Want::Read));
            let wake = q.deadline().map_or(until, |d| d.min(until));
            let _ = set.wait(Some(wake.saturating_duration_since(now)));
            self.service_notify(clock::now());
        }
    }

    /// Records an event: ring, log, event log, `notify.command`.
    fn record(&mut self, kind: EventKind, detail: &Detail) {
        self.record_named(kind.as_str(), detail, kind.is_problem());
    }

    /// Records an event by name (the supervisor's kinds and the pair's).
    fn record_named(&mut self, kind: &'static str, detail: &Detail, problem: bool) {
        self.events_recorded += 1;
        let wall_ms = clock::wall_ms();
        if problem {
            warn!("{kind}: {detail}");
        } else {
            info!("{kind}: {detail}");
        }
        self.ring.push(Record {
            wall_ms,
            kind,
            detail: detail.clone(),
        });
        if let Some(l) = &mut self.event_log {
            let line = serde_json::json!({
                "at": clock::rfc3339(wall_ms).as_str(),
                "node": self.cfg.node.name,
                "kind": kind,
                "detail": detail.as_str(),
            });
            if let Err(e) = l.append(line.to_string().as_bytes()) {
                warn!("{e}");
            }
        }
        if let Some(q) = &mut self.notify {
            let mut job = Job::default();
            let _ = job.env.push(("BBWD_EVENT", text256(kind)));
            let _ = job.env.push(("BBWD_NODE", text256(&self.cfg.node.name)));
            let _ = job.env.push(("BBWD_DETAIL", text256(detail)));
            if !q.submit(job, clock::now()) {
                warn!("notify.command is falling behind: an older notification was dropped");
            }
        }
    }

    /// After a step: persist what must survive a restart, tell systemd about state changes.
    fn after_change(&mut self) {
        let view = self.node.machine().view();
        let failed = view.failed.filter(|r| r.persistent());
        self.node_can_correct = view.petting;
        if failed != self.persisted_failed {
            let r = match failed {
                Some(f) => fs::write_atomic(
                    &self.paths.failed,
                    format!("{}\n", f.as_str()).as_bytes(),
                    0o640,
                ),
                None => fs::remove_optional(&self.paths.failed),
            };
            // Tried again after the next step until it succeeds.
            if self.persisted(r) {
                self.persisted_failed = failed;
            }
        }
        if view.maintenance.is_some() != self.persisted_maintenance {
            let r = match &view.maintenance {
                Some(reason) => {
                    self.maintenance_since = clock::rfc3339(clock::wall_ms()).to_string();
                    let m = MaintenanceFile {
                        reason: reason.to_string(),
                        since: self.maintenance_since.clone(),
                        lb: self.maintenance_lb,
                    };
                    let bytes = serde_json::to_vec(&m).unwrap_or_default();
                    fs::write_atomic(&self.paths.maintenance, &bytes, 0o640)
                }
                None => fs::remove_optional(&self.paths.maintenance),
            };
            if self.persisted(r) {
                self.persisted_maintenance = view.maintenance.is_some();
            }
        }
        if self.last_state != Some(view.state) {
            self.last_state = Some(view.state);
            let text = match view.pid {
                Some(pid) => format!("{}: Bitbucket pid {pid}", view.state.as_str()),
                None => format!("{}: Bitbucket not running", view.state.as_str()),
            };
            self.sd.status(&text);
            info!("state {}", view.state.as_str());
        }
    }

    /// Notes the outcome of persisting state; logs a failure once until it changes.
    fn persisted(&mut self, r: Result<(), fs::Error>) -> bool {
        match r {
            Ok(()) => {
                if self.persist_error.take().is_some() {
                    info!("state is saved in state_dir again");
                }
                true
            }
            Err(e) => {
                let text = e.to_string();
                if self.persist_error.as_deref() != Some(&text) {
                    error!("cannot save state: {text}");
                    self.persist_error = Some(text);
                }
                false
            }
        }
    }

    /// Answers one control request.
    fn handle(&mut self, now: Instant, req: Request<'_>) -> Vec<u8> {
        let Request::Line(line, peer) = req;
        let parsed: Result<ControlRequest, _> = serde_json::from_slice(line);
        let reply = match parsed {
            Err(e) => serde_json::json!({ "error": format!("malformed request: {e}") }),
            Ok(ControlRequest::Status) => {
                return serde_json::to_vec(&self.status()).unwrap_or_default()
            }
            Ok(_) if peer.read_only => {
                warn!(
                    "control request from uid {} (pid {}) refused: node.status_group grants status only",
                    peer.uid, peer.pid
                );
                serde_json::json!({ "error": "permission denied: node.status_group grants `bbwd status` only; every other command is root's" })
            }
            Ok(ControlRequest::Maintenance { lb: Some(_), .. }) if self.lb.is_none() => {
                serde_json::json!({ "error": "--drain/--maint apply to a mirror-farm node ([load_balancer]); this node has none" })
            }
            Ok(ControlRequest::Maintenance { on, reason, lb }) => {
                // Without --drain/--maint: drain, or the mode of a maintenance already on. A
                // new mode for a maintenance already on is persisted too.
                let already = self.persisted_maintenance;
                let mode = lb.unwrap_or(if already {
                    self.maintenance_lb
                } else {
                    MaintMode::Drain
                });
                let relabel = on && already && mode != self.maintenance_lb;
                if on {
                    self.maintenance_lb = mode;
                }
                if relabel {
                    self.persisted_maintenance = false;
                }
                info!(
                    "maintenance {} requested by uid {} (pid {})",
                    if on { "on" } else { "off" },
                    peer.uid,
                    peer.pid
                );
                // An empty reason keeps the reason of a maintenance already on (the machine's).
                self.feed(
                    now,
                    Input::Maintenance {
                        on,
                        reason: machine::detail(&reason),
                    },
                );
                if self.persisted_maintenance != on {
                    // Not saved: a restart of bbwd would not know. Never a false "done".
                    let why = self
                        .persist_error
                        .clone()
                        .unwrap_or_else(|| "unknown error".into());
                    serde_json::json!({ "error": format!(
                        "maintenance {} is in effect in the running daemon but was NOT saved \
                         ({why}); a restart of bbwd would {} Bitbucket",
                        if on { "on" } else { "off" },
                        if on { "start" } else { "not start" }
                    ) })
                } else {
                    serde_json::json!({ "ok": true, "state": self.node.machine().state().as_str() })
                }
            }
            Ok(req @ (ControlRequest::Switchover | ControlRequest::ConfirmPeerDown)) => {
                if self.cluster.is_none() {
                    return serde_json::json!({ "error": "not in pair mode: no [cluster] configured" })
                        .to_string()
                        .into_bytes();
                }
                let (input, what) = match req {
                    ControlRequest::Switchover => (node::Input::Switchover, "switchover"),
                    _ => (node::Input::ConfirmPeerDown, "confirm-peer-down"),
                };
                info!("{what} requested by uid {} (pid {})", peer.uid, peer.pid);
                let before = self.node.role();
                let acts = self.node.step(now, input);
                // The node says why it refused, in this step's events.
                let refused = acts.iter().find_map(|a| match a {
                    node::Action::Event(crate::pair::Kind::SwitchoverRefused, d) => {
                        Some(d.to_string())
                    }
                    _ => None,
                });
                self.apply(now, acts);
                self.drain_pending(now);
                let after = self.node.role();
                let after_str = after.map_or("none", |r| r.as_str());
                match refused {
                    Some(why) => serde_json::json!({ "error": format!("{what} refused: {why}") }),
                    None if before == after => serde_json::json!({ "error": format!(
                        "{what} refused: nothing to do as {}",
                        before.map_or("none", |r| r.as_str())
                    ) }),
                    None => serde_json::json!({ "ok": true, "state": after_str }),
                }
            }
            Ok(ControlRequest::Reexec) => {
                info!(
                    "re-exec requested by uid {} (pid {}): Bitbucket, the VIP and the role are kept",
                    peer.uid, peer.pid
                );
                // The reply goes out in this pass; the loop ends a moment later.
                self.reexec_at = Some(now + REEXEC_GRACE);
                serde_json::json!({ "ok": true, "state": self.node.machine().state().as_str() })
            }
            Ok(ControlRequest::Reset) => {
                use machine::ResetRefused;
                let refused = self.node.machine().reset_refused();
                if self.node.machine().state() != State::Failed
                    || refused == Some(ResetRefused::NotFailed)
                {
                    serde_json::json!({ "error": format!("nothing to reset: state is {}", self.node.machine().state().as_str()) })
                } else if refused == Some(ResetRefused::WatchdogResets) {
                    serde_json::json!({ "error": "Bitbucket survived SIGKILL: the node must be reset (the watchdog will do it)" })
                } else if refused == Some(ResetRefused::StillThere) {
                    serde_json::json!({ "error": "Bitbucket's process group survived SIGKILL and is still there; no watchdog will reset this node ([watchdog] device = \"none\"): end it (or reboot), then reset" })
                } else {
                    info!("reset requested by uid {} (pid {})", peer.uid, peer.pid);
                    self.feed(now, Input::Reset);
                    serde_json::json!({ "ok": true, "state": self.node.machine().state().as_str() })
                }
            }
        };
        reply.to_string().into_bytes()
    }

    /// The status report.
    fn status(&mut self) -> status::Status {
        let time_left = self.hw.as_mut().and_then(|h| h.dog.time_left());
        let cluster_status = self
            .cluster
            .as_ref()
            .map(|c| c.status(clock::now(), &self.node));
        let v = self.node.machine().view();
        let (bb_state, http_status) = match v.last_probe {
            Some(ProbeOutcome::Reply { http_status, state }) => {
                (state.map(|s| s.as_str().to_string()), Some(http_status))
            }
            _ => (None, None),
        };
        let device = match &self.cfg.watchdog.device {
            WatchdogDevice::None => "none".to_string(),
            WatchdogDevice::Device(p) => p.display().to_string(),
            WatchdogDevice::Ipmi => "ipmi".to_string(),
        };
        status::Status {
            node: self.cfg.node.name.clone(),
            mode: match self.cfg.mode() {
                Mode::Single => "single",
                Mode::Pair => "pair",
                Mode::Mirror => "mirror",
            }
            .into(),
            role: match self.node.role() {
                None => "none",
                Some(crate::pair::Role::Active | crate::pair::Role::Releasing) => "active",
                Some(_) => "standby",
            }
            .into(),
            state: match self.node.role() {
                Some(crate::pair::Role::Fencing) => "fencing",
                Some(crate::pair::Role::TakingOver) => "taking_over",
                Some(crate::pair::Role::Releasing) => "releasing",
                _ => v.state.as_str(),
            }
            .into(),
            daemon: "up".into(),
            bitbucket: status::Bitbucket {
                state: bb_state,
                http_status,
                pid: v.pid,
                consecutive_failures: v.consecutive_failures,
                last_check: v
                    .last_probe
                    .as_ref()
                    .map(|p| machine::ProbeText(p).to_string()),
            },
            restarts: v.restarts,
            peer: cluster_status.as_ref().map(|c| c.0.clone()),
            vip: cluster_status.as_ref().map(|c| c.1.clone()),
            fencing: cluster_status.map(|c| c.2),
            watchdog: status::Watchdog {
                device,
                armed: self.hw.is_some(),
                petting: v.petting,
                systemd_interval_ms: self
                    .sd_watchdog
                    .as_ref()
                    .map(|w| w.interval().as_millis() as u64),
                timeout_ms: self
                    .hw
                    .as_ref()
                    .map(|h| h.pacer.timeout().as_millis() as u64),
                time_left_ms: time_left.map(|t| t.as_millis() as u64),
                last_reset_by_watchdog: self
                    .hw
                    .as_ref()
                    .and_then(|h| h.dog.last_reset_by_watchdog()),
                realtime: self.realtime,
                pets: self.hw.as_ref().map_or(0, |h| h.pacer.pets()),
                pet_latency_us_last: self
                    .hw
                    .as_ref()
                    .and_then(|h| h.latency_last)
                    .map(|d| d.as_micros() as u64),
                pet_latency_us_max: self
                    .hw
                    .as_ref()
                    .and_then(|h| h.latency_max)
                    .map(|d| d.as_micros() as u64),
            },
            database: self.cfg.database.as_ref().map(|d| status::Database {
                address: d.address.clone(),
                reachable: match v.db {
                    machine::Db::Up => Some(true),
                    machine::Db::Down => Some(false),
                    _ => None,
                },
            }),
            maintenance: v.maintenance.as_ref().map(|r| status::Maintenance {
                reason: r.to_string(),
                since: self.maintenance_since.clone(),
            }),
            failed: v.failed.map(|f| f.as_str().to_string()),
            version: env!("CARGO_PKG_VERSION").into(),
            events: self
                .ring
                .iter()
                .map(|r| status::Event {
                    at: clock::rfc3339(r.wall_ms).to_string(),
                    kind: r.kind.into(),
                    detail: r.detail.to_string(),
                })
                .collect(),
            load_balancer: self.lb.as_ref().map(|l| {
                // Decided afresh: the server takes the same line at the end of this pass,
                // before it accepts another connection.
                let (line, word) = self.lb_reply();
                status::LoadBalancer {
                    address: l.server.local_addr().to_string(),
                    reply: line.to_string(),
                    state: word.to_string(),
                }
            }),
            clock: self.clock_watch.last().map(mirror::clock_report),
            daemon_error: None,
            loop_stats: Some({
                let log = bbwd_platform::logger::stats();
                status::LoopStats {
                    log_dropped_lines: log.dropped_lines,
                    log_dropped_bytes: log.dropped_bytes,
                    log_written_bytes: log.written_bytes,
                    ..self.pace.clone()
                }
            }),
            daemon_run: Some(status::DaemonRun {
                pid: std::process::id(),
                started_at_ms: self.started_at_ms,
                reexecuted: bbwd_platform::reexec::reexecuted(),
            }),
        }
    }
}

/// Text cut to the notify job's fixed capacity.
fn text256(s: &str) -> heapless::String<256> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Mirror-farm node: the agent-check server and the reply it gives (issue 5).
struct LbAgent {
    server: AgentServer,
    /// The reply set on the server, without its `\n`.
    line: ReplyLine,
}

type ReplyLine = heapless::String<{ agentcheck::MAX_REPLY }>;

impl LbAgent {
    fn new(server: AgentServer) -> LbAgent {
        let mut line = ReplyLine::new();
        let _ = line.push_str(server.reply());
        LbAgent { server, line }
    }
}

impl Core {
    /// Once per pass, after the machine's step: the clock reading when due, then the
    /// load balancer's reply from the node's state, then the agent-check connections.
    fn service_mirror(&mut self, now: Instant) {
        if self.clock_watch.due(now) {
            let reading = match clock::kernel_sync() {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("cannot read the kernel clock state (adjtimex): {e}");
                    None
                }
            };
            let change = self.clock_watch.record(now, reading);
            if let (Some(change), Mode::Mirror) = (change, self.cfg.mode()) {
                let (kind, detail) = match change {
                    ClockChange::Unsynchronized(c) => (
                        EventKind::ClockUnsynced,
                        format!(
                            "the kernel clock is not synchronised (max error {} ms): mirrors need \
                             their clocks in sync; start chrony, ntpd or systemd-timesyncd",
                            c.max_error_ms()
                        ),
                    ),
                    ClockChange::Synchronized(c) => (
                        EventKind::ClockSynced,
                        format!(
                            "the kernel clock is synchronised (max error {} ms)",
                            c.max_error_ms()
                        ),
                    ),
                };
                self.record(kind, &machine::detail(&detail));
            }
        }
        if self.lb.is_none() {
            return;
        }
        let (line, _) = self.lb_reply();
        let Some(lb) = &mut self.lb else { return };
        if line != lb.line {
            match lb.server.set_reply(&line) {
                Ok(()) => {
                    info!("load balancer: the HAProxy agent check now answers `{line}`");
                    lb.line = line;
                }
                Err(e) => error!("internal: {e}"),
            }
        }
        lb.server.service(now);
    }

    /// What HAProxy's agent check is to be told now: the line and its one-word form.
    fn lb_reply(&self) -> (ReplyLine, &'static str) {
        let v = self.node.machine().view();
        let reason = v.maintenance.as_deref().unwrap_or("");
        let verdict = mirror::decide(&mirror::Inputs {
            state: v.state,
            process: v.pid.is_some(),
            last_probe: v.last_probe,
            consecutive_failures: v.consecutive_failures,
            failed: v.failed,
            maintenance: v.maintenance.as_deref().map(|r| (r, self.maintenance_lb)),
        });
        let mut line = ReplyLine::new();
        verdict.write_line(reason, &mut line);
        (line, verdict.word())
    }
}
