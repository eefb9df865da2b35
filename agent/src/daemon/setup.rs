//! Starting the daemon: the state directory and its lock, what an earlier bbwd left (pid file,
//! maintenance, failed, the storage record, the VIP), the node built from it, the watchdogs
//! armed, then the loop; and what is needed to re-adopt Bitbucket.
//!
//! Must not decide what to do with what it finds: the node decides (resume, adopt, fail safe).

#[allow(unused_imports)]
use super::*;

/// Runs the daemon until SIGTERM/SIGINT has stopped Bitbucket.
pub fn run(cfg: Config) -> Result<(), Error> {
    fn setup(what: &'static str, e: impl Into<Cause>) -> Error {
        Error::Setup {
            what,
            source: e.into(),
        }
    }
    fn config(key: &'static str, e: impl Into<Cause>) -> Error {
        Error::Config {
            key,
            source: e.into(),
        }
    }
    fs::ensure_dir(&cfg.node.state_dir, 0o750).map_err(|e| setup("state_dir", e))?;
    // A node that cannot record what it runs must not start it: the next bbwd would not know
    // it and start a second one.
    fs::check_writable(&cfg.node.state_dir).map_err(|e| {
        setup(
            "node.state_dir is not writable (read-only or full filesystem?); bbwd would start \
             Bitbucket without a pid file",
            e,
        )
    })?;
    // One bbwd per state_dir (a second one, even on another control socket, would adopt and
    // restart the same Bitbucket). Held until `run` returns; the kernel drops it on any exit.
    let _lock = fs::StateLock::acquire(&cfg.node.state_dir, fs::STATE_LOCK_NAME, None).map_err(
        |e| match e {
            e @ fs::LockError::Held { .. } => setup(
                "another bbwd is already running with this node.state_dir",
                e,
            ),
            fs::LockError::Io(e) => setup("node.state_dir", e),
        },
    )?;
    let paths = Paths::new(&cfg);
    let target = StatusTarget::parse(&cfg.bitbucket.status_url)
        .map_err(|e| config("bitbucket.status_url", e))?;
    let user = match &cfg.bitbucket.user {
        Some(name) => Some(RunAs::lookup(name).map_err(|e| config("bitbucket.user", e))?),
        None => None,
    };
    let spec = spawn_spec(&cfg.bitbucket, user, cfg.bitbucket.capture_output);
    let status_gid = match &cfg.node.status_group {
        Some(g) => Some(control::group_id(g).map_err(|e| config("node.status_group", e))?),
        None => None,
    };
    let mut control = match ControlServer::bind_with(&cfg.node.control_socket, status_gid) {
        Ok(c) => c,
        Err(control::Error::InUse(p)) => return Err(Error::AlreadyRunning(p)),
        Err(e) => return Err(setup("node.control_socket", e)),
    };
    let mut signals = Signals::install().map_err(|e| setup("signals", e))?;
    let lb = match &cfg.load_balancer {
        Some(l) => match AgentServer::bind(l.haproxy_agent, agentcheck::CONN_TIMEOUT) {
            Ok(server) => Some(LbAgent::new(server)),
            Err(e) => {
                control.remove();
                // A port another process holds is this host's state, not the config's (exit
                // 1); an address that is not this node's was refused by the host checks.
                return Err(setup("load_balancer.haproxy_agent", e));
            }
        },
        None => None,
    };
    let exporter = match exporter::Exporter::open(&cfg, clock::now()) {
        Ok(e) => e,
        Err(e) => {
            control.remove();
            return Err(e);
        }
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
                // What the config got wrong here (a key too short, an interface or a listen
                // address not on this node) the host checks refused before (exit 2); what
                // fails now is the host's (a port in use, a netlink socket): exit 1.
                return Err(Error::Pair(e));
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
        exporter,
        check_started: None,
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
            return Err(config("watchdog.device", e));
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
    // The final state (`stopped`) for node_exporter, rather than the last running one.
    core.write_textfile(clock::now());
    core.flush_notify();
    if let Some(c) = core.cluster.take() {
        c.close();
    }
    result
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
