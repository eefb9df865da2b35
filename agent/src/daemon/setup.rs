//! Starting the daemon: the state directory and its lock, what an earlier bbwd left (pid file,
//! maintenance, failed, the storage record, the VIP), the node built from it, the watchdogs
//! armed, then the loop; and what is needed to re-adopt Bitbucket.
//!
//! Must not decide what to do with what it finds: the node decides (resume, adopt, fail safe).
//!
//! Start-up runs in this order, each step a function below: claim `state_dir` (its lock), read
//! `[bitbucket]`, bind the control socket, install the signal handlers, then `start`: the
//! HAProxy agent port, the metrics endpoint, the event log, what an earlier bbwd left, pair
//! mode's platform side, the node and the `Core` around it, realtime hardening, the
//! `daemon_start` event, the hardware watchdog armed; then the node's first actions, `READY=1`,
//! the loop (again after a failed re-exec) and the shut-down. A failure after the control socket
//! is bound removes it before anything else opened is dropped.

#[allow(unused_imports)]
use super::*;

/// Runs the daemon until SIGTERM/SIGINT has stopped Bitbucket.
pub fn run(cfg: Config) -> Result<(), Error> {
    // Held until `run` returns; the kernel drops it on any exit.
    let _lock = claim_state_dir(&cfg.node.state_dir)?;
    let paths = Paths::new(&cfg);
    let (target, spec) = read_bitbucket(&cfg)?;
    let mut control = bind_control(&cfg.node)?;
    let mut signals = Signals::install().map_err(|e| setup_error("signals", e))?;
    let (mut core, now, first) = start(cfg, paths, target, spec, &control)?;
    core.become_ready(now, first);
    let result = core.supervise(&mut control, &mut signals);
    core.shut_down(&control, result.is_ok());
    result
}

/// `Error::Setup`: setting up `what` failed on this node.
fn setup_error(what: &'static str, e: impl Into<Cause>) -> Error {
    Error::Setup {
        what,
        source: e.into(),
    }
}

/// `Error::Config`: the value of `key` does not work on this node.
fn config_error(key: &'static str, e: impl Into<Cause>) -> Error {
    Error::Config {
        key,
        source: e.into(),
    }
}

/// Creates `state_dir`, checks it takes writes and takes its lock (returned, to be held).
fn claim_state_dir(dir: &std::path::Path) -> Result<fs::StateLock, Error> {
    fs::ensure_dir(dir, 0o750).map_err(|e| setup_error("state_dir", e))?;
    // A node that cannot record what it runs must not start it: the next bbwd would not know
    // it and start a second one.
    fs::check_writable(dir).map_err(|e| {
        setup_error(
            "node.state_dir is not writable (read-only or full filesystem?); bbwd would start \
             Bitbucket without a pid file",
            e,
        )
    })?;
    // One bbwd per state_dir (a second one, even on another control socket, would adopt and
    // restart the same Bitbucket).
    fs::StateLock::acquire(dir, fs::STATE_LOCK_NAME, None).map_err(|e| match e {
        e @ fs::LockError::Held { .. } => setup_error(
            "another bbwd is already running with this node.state_dir",
            e,
        ),
        fs::LockError::Io(e) => setup_error("node.state_dir", e),
    })
}

/// `[bitbucket]` resolved on this node: where its `/status` is, and how to start it (as which
/// user).
fn read_bitbucket(cfg: &Config) -> Result<(StatusTarget, SpawnSpec), Error> {
    let target = StatusTarget::parse(&cfg.bitbucket.status_url)
        .map_err(|e| config_error("bitbucket.status_url", e))?;
    let user = match &cfg.bitbucket.user {
        Some(name) => Some(RunAs::lookup(name).map_err(|e| config_error("bitbucket.user", e))?),
        None => None,
    };
    let spec = spawn_spec(&cfg.bitbucket, user, cfg.bitbucket.capture_output);
    Ok((target, spec))
}

/// Binds the control socket (`node.control_socket`, readable by `node.status_group` if set).
fn bind_control(node: &config::Node) -> Result<ControlServer, Error> {
    let status_gid = match &node.status_group {
        Some(g) => Some(control::group_id(g).map_err(|e| config_error("node.status_group", e))?),
        None => None,
    };
    match ControlServer::bind_with(&node.control_socket, status_gid) {
        Ok(c) => Ok(c),
        Err(control::Error::InUse(p)) => Err(Error::AlreadyRunning(p)),
        Err(e) => Err(setup_error("node.control_socket", e)),
    }
}

/// The rest of start-up, up to the armed hardware watchdog: returns the `Core`, the moment the
/// node was built at and its first actions. On failure it removes the control socket first.
fn start(
    cfg: Config,
    paths: Paths,
    target: StatusTarget,
    spec: SpawnSpec,
    control: &ControlServer,
) -> Result<(Core, Instant, node::Actions), Error> {
    let fail = |e: Error| {
        control.remove();
        e
    };
    let lb = bind_lb(&cfg).map_err(fail)?;
    let exporter = exporter::Exporter::open(&cfg, clock::now()).map_err(fail)?;
    let event_log = open_event_log(&paths);
    let now = clock::now();
    let left = LeftBehind::read(&paths);
    // Pair mode's platform side first: what it finds (a VIP, the storage record) is part of
    // what the node starts from.
    let pair = open_pair(&cfg).map_err(fail)?;
    let (node, first, cluster) = new_node(&cfg, &left, pair, now);
    let opened = Opened {
        paths,
        target,
        spec,
        lb,
        exporter,
        event_log,
        cluster,
    };
    let mut core = Core::new(cfg, node, left, opened, now);
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
    core.arm_at_start().map_err(fail)?;
    Ok((core, now, first))
}

/// Binds mirror mode's HAProxy agent-check port (`[load_balancer]`), if configured.
fn bind_lb(cfg: &Config) -> Result<Option<LbAgent>, Error> {
    let Some(l) = &cfg.load_balancer else {
        return Ok(None);
    };
    match AgentServer::bind(l.haproxy_agent, agentcheck::CONN_TIMEOUT) {
        Ok(server) => Ok(Some(LbAgent::new(server))),
        // A port another process holds is this host's state, not the config's (exit 1); an
        // address that is not this node's was refused by the host checks.
        Err(e) => Err(setup_error("load_balancer.haproxy_agent", e)),
    }
}

/// Opens `state_dir/events.log`; without it events still reach the ring and the journal.
fn open_event_log(paths: &Paths) -> Option<EventLog> {
    match EventLog::open(&paths.events, EVENT_LOG_MAX_BYTES) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!("event log disabled: {e}");
            None
        }
    }
}

/// Opens pair mode's platform side (`crate::cluster`); `None` outside pair mode.
fn open_pair(cfg: &Config) -> Result<Option<crate::cluster::Setup>, Error> {
    if cfg.mode() != Mode::Pair {
        return Ok(None);
    }
    // What the config got wrong here (a key too short, an interface or a listen address not on
    // this node) the host checks refused before (exit 2); what fails now is the host's (a port
    // in use, a netlink socket): exit 1.
    crate::cluster::Cluster::open(cfg)
        .map(Some)
        .map_err(Error::Pair)
}

/// What an earlier bbwd left in `state_dir`.
struct LeftBehind {
    /// Operator maintenance (`state_dir/maintenance`).
    maintenance: Option<MaintenanceFile>,
    /// A persistent `failed` (`state_dir/failed`).
    failed: Option<FailReason>,
    /// The Bitbucket of the pid file, re-adopted.
    proc: Option<Supervised>,
}

impl LeftBehind {
    /// Reads maintenance, `failed` and the pid file, in that order; ends what is left of a
    /// recorded Bitbucket that is gone.
    fn read(paths: &Paths) -> LeftBehind {
        let maintenance = read_maintenance(paths);
        let failed = read_failed(paths);
        let (proc, stale) = adopt(paths);
        if let Some(stale) = stale {
            end_stale(paths, &stale);
        }
        LeftBehind {
            maintenance,
            failed,
            proc,
        }
    }
}

/// The persisted `failed` as the machine reads it at boot (unreadable content stays failed).
fn read_failed(paths: &Paths) -> Option<FailReason> {
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
}

/// Kills what is left of a gone leader's process group and removes its pid file.
fn end_stale(paths: &Paths, stale: &process::PidRecord) {
    // The recorded leader is gone; whatever is left of its group must not outlive it.
    if process::kill_stale_group(stale) {
        warn!(
            "killed what was left of Bitbucket's old process group {}",
            stale.pgid
        );
    }
    let _ = process::remove_pidfile(&paths.pidfile);
}

/// The supervisor's settings, from `[bitbucket]`, `[database]`, the mode and the watchdog.
fn settings(cfg: &Config) -> Settings {
    Settings {
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
    }
}

/// Builds the node from the config, what was left behind and what pair mode found; returns it,
/// its first actions and the cluster (pair mode).
fn new_node(
    cfg: &Config,
    left: &LeftBehind,
    pair: Option<crate::cluster::Setup>,
    now: Instant,
) -> (Node, node::Actions, Option<crate::cluster::Cluster>) {
    let boot = Boot {
        adopted_pid: left.proc.as_ref().map(|p| p.pid()),
        failed: left.failed,
        maintenance: left
            .maintenance
            .as_ref()
            .map(|m| machine::detail(&m.reason)),
    };
    let node_boot = node::Boot {
        sup: boot,
        vip_held: pair.as_ref().is_some_and(|s| s.vip_held),
        storage_held: pair.as_ref().is_some_and(|s| s.storage_held),
    };
    let (cluster, pair_settings) = match pair {
        Some(s) => (Some(s.cluster), Some(s.settings)),
        None => (None, None),
    };
    let (node, first) = Node::new(settings(cfg), pair_settings, node_boot, now);
    (node, first, cluster)
}

/// The platform objects start-up opened before the node, moved into the `Core`.
struct Opened {
    paths: Paths,
    target: StatusTarget,
    spec: SpawnSpec,
    lb: Option<LbAgent>,
    exporter: exporter::Exporter,
    event_log: Option<EventLog>,
    cluster: Option<crate::cluster::Cluster>,
}

impl Core {
    /// The loop's state at start-up: the node, what was left behind, what was opened; the
    /// notify queue and systemd notification are set up here.
    fn new(cfg: Config, node: Node, left: LeftBehind, opened: Opened, now: Instant) -> Core {
        let notify = cfg
            .notify
            .as_ref()
            .map(|n| CommandQueue::new(n.command.clone(), n.timeout));
        let sd = SdNotify::from_env();
        let maintenance = left.maintenance;
        let maintenance_lb = maintenance.as_ref().map(|m| m.lb).unwrap_or_default();
        Core {
            sd_watchdog: SystemdWatchdog::from_env(now),
            persisted_failed: left.failed,
            persisted_maintenance: maintenance.is_some(),
            maintenance_since: maintenance.map(|m| m.since).unwrap_or_default(),
            cfg,
            node,
            spec: opened.spec,
            target: opened.target,
            proc: left.proc,
            leader_exited: false,
            probe: HttpProbe::new(),
            db: ConnectCheck::new(),
            check: CheckSlot::default(),
            notify,
            sd,
            ring: Ring::new(),
            event_log: opened.event_log,
            paths: opened.paths,
            pending: heapless::Deque::new(),
            exit: false,
            reexec_at: None,
            started_at_ms: clock::wall_ms(),
            last_state: None,
            node_can_correct: true,
            hw: None,
            realtime: false,
            lb: opened.lb,
            maintenance_lb,
            clock_watch: ClockWatch::new(now),
            cluster: opened.cluster,
            free: ConnectCheck::new(),
            free_active: false,
            persist_error: None,
            pace: status::LoopStats::default(),
            events_recorded: 0,
            checks_begun: 0,
            exporter: opened.exporter,
            check_started: None,
            #[cfg(feature = "alloc-count")]
            bench: Default::default(),
        }
    }

    /// Opens and arms the configured hardware watchdog (`[watchdog] device`), if any.
    fn arm_at_start(&mut self) -> Result<(), Error> {
        match open_hardware_watchdog(&self.cfg.watchdog) {
            Ok(Some(dog)) => self.armed(dog),
            Ok(None) => {}
            Err(e) => return Err(config_error("watchdog.device", e)),
        }
        Ok(())
    }

    /// Carries out the node's first actions, then tells systemd the daemon is ready.
    fn become_ready(&mut self, now: Instant, first: node::Actions) {
        self.apply(now, first);
        self.drain_pending(now);
        self.sd.ready();
        info!("ready: supervising {:?}", self.cfg.bitbucket.command);
    }

    /// Runs the loop until it ends for good; a re-exec that fails carries on with another loop.
    fn supervise(
        &mut self,
        control: &mut ControlServer,
        signals: &mut Signals,
    ) -> Result<(), Error> {
        let mut result = self.main_loop(control, signals);
        while result.is_ok() && self.reexec_at.is_some() {
            let e = self.reexec();
            error!("re-exec failed, carrying on as before: {e}");
            self.reexec_at = None;
            result = self.main_loop(control, signals);
        }
        result
    }

    /// After the loop: disarms the watchdog (only if the loop ended cleanly), removes the
    /// control socket, writes the final textfile, flushes notifications, closes the cluster.
    fn shut_down(&mut self, control: &ControlServer, clean: bool) {
        if clean {
            // Bitbucket is gone (the machine's `Exit` follows `Gone`): only now may the node
            // lose its watchdog.
            self.disarm_hardware();
        }
        control.remove();
        // The final state (`stopped`) for node_exporter, rather than the last running one.
        self.write_textfile(clock::now());
        self.flush_notify();
        if let Some(c) = self.cluster.take() {
            c.close();
        }
    }
}

/// Opens and arms the configured hardware watchdog; `None` for `device = "none"`.
pub(super) fn open_hardware_watchdog(
    cfg: &config::Watchdog,
) -> Result<Option<Box<dyn HardwareWatchdog>>, bbwd_watchdog::Error> {
    match &cfg.device {
        WatchdogDevice::None => Ok(None),
        WatchdogDevice::Device(path) => {
            Ok(Some(Box::new(DeviceWatchdog::open(path, cfg.timeout)?)))
        }
        WatchdogDevice::Ipmi => {
            use bbwd_platform::ipmi::{Target, WatchdogAction as Bmc};
            use bbwd_watchdog::ipmi::{lan_target_with_suite, IpmiWatchdog};
            // [watchdog.ipmi]: this node's own BMC over RMCP+; without it the local /dev/ipmi0.
            let target = match &cfg.ipmi {
                Some(lan) => lan_target_with_suite(
                    &lan.host,
                    lan.port,
                    &lan.username,
                    &lan.password_file,
                    lan.cipher_suite,
                )?,
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
pub(super) fn harden() -> bool {
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
pub(super) fn adopt(paths: &Paths) -> (Option<Supervised>, Option<process::PidRecord>) {
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

pub(super) fn output_fd_name(pid: i32) -> String {
    format!("{FDSTORE_OUTPUT}-{pid}")
}

pub(super) fn read_maintenance(paths: &Paths) -> Option<MaintenanceFile> {
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
