//! `bbwd ocf ACTION`: bbwd as a Pacemaker OCF resource agent, for clusters that outgrow a pair.
//! Also reached as `/usr/lib/ocf/resource.d/bbwd/bitbucket ACTION` (a symlink to bbwd: `main`
//! dispatches on argv[0]'s file name), which is how Pacemaker calls it.
//!
//! Owns: the five actions (`start`, `stop`, `monitor`, `meta-data`, `validate-all`), their OCF
//! exit codes, the meta-data XML, and the arithmetic that keeps every action inside Pacemaker's
//! own operation timeout (`OCF_RESKEY_CRM_meta_timeout`, ms).
//!
//! Must not: supervise. In this mode Pacemaker is the supervisor: each action is one short-lived
//! `bbwd` process that acts and exits; nothing of bbwd keeps running. It never restarts
//! Bitbucket on its own (a failed monitor is Pacemaker's to act on) and never shares a pid file
//! with bbwd's daemon (`ocf-bitbucket.pid`, not `bitbucket.pid`).
//!
//! # Theory of operation
//! ```text
//!  start:   find ─► (running? adopt it) ─► else spawn detached (new session, output to
//!           state_dir/ocf-bitbucket.out) ─► pid file ─► probe /status every STARTUP_POLL
//!           until healthy (0) | leader exits (1) | start window or Pacemaker budget spent (1)
//!  stop:    find ─► SIGTERM group ─► wait term_wait ─► SIGKILL group ─► wait kill_wait
//!           ─► gone: remove pid file (0) | still there (1: Pacemaker fences the node)
//!  monitor: no process (7) | probe: RUNNING/MAINTENANCE/FIRST_RUN (0), STARTING within
//!           startup_timeout of the process's start (0), anything else (1)
//! ```
//! "find" reads `state_dir/ocf-bitbucket.pid` and adopts the process only if its pid *and* start
//! time match, so a recycled pid is never taken for Bitbucket.
//!
//! # Invariants
//! * Every action answers before Pacemaker's timeout: waits end `margin(timeout)` early, and
//!   `stop` sends SIGKILL with at least `min(kill_timeout, budget / 2)` left.
//! * `start` never starts a second instance: it adopts a running one, and kills what is left of
//!   a dead one's process group before starting.
//! * `stop` returns success only when the whole process group is gone.
//! * MAINTENANCE is healthy (a backup never triggers a failover); only `/status` is consulted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bbwd_platform::control;
use bbwd_platform::fs;
use bbwd_platform::http::{probe_once, BbState, ProbeOutcome, StatusTarget};
use bbwd_platform::poll::{PollSet, Want};
use bbwd_platform::process::{self, GroupSignal, PidRecord, RunAs, SpawnSpec, Supervised};

use crate::config::{self, Config};
use crate::exit::Exit;
pub use crate::exit::OcfCode;
use crate::machine::ProbeText;

/// The agent's name: the symlink's file name and `<resource-agent name=...>`.
pub const AGENT_NAME: &str = "bitbucket";
/// The pid file in `state_dir`; the daemon's is `bitbucket.pid`, so the two never share one.
pub const PIDFILE_NAME: &str = "ocf-bitbucket.pid";
/// Bitbucket's stdout/stderr in `state_dir` (the previous start's is kept as `.1`).
pub const OUTPUT_NAME: &str = "ocf-bitbucket.out";
/// The daemon's pid file name (see `daemon.rs`): a live process there means bbwd's daemon
/// supervises Bitbucket on this node, and the agent must not start a second one.
const DAEMON_PIDFILE_NAME: &str = "bitbucket.pid";
/// Held (flock) for the whole of a `start`, so that concurrent starts start one process.
const START_LOCK_NAME: &str = "ocf-start.lock";
/// Held (flock) briefly: by a `start` while it spawns and records Bitbucket, by a `stop` while it
/// reads the record and while it removes it. So a stop never misses a process spawned but not
/// yet recorded, and never removes a record it did not stop (a start racing a stop once had its
/// fresh record removed: a Bitbucket that ran, unrecorded, with `monitor` saying 7).
const PIDFILE_LOCK_NAME: &str = "ocf-pidfile.lock";
/// How long to wait for the pid-file lock: its holders only spawn, read or write a small file.
const PIDFILE_LOCK_WAIT: Duration = Duration::from_secs(10);
/// A stop stops what the record names, again if a racing start recorded another meanwhile; so
/// many rounds at most, then it gives up (a start loop beside it).
const MAX_STOP_ROUNDS: usize = 4;

/// Between two `/status` probes while waiting for a start. Bitbucket takes minutes to start;
/// one probe a second costs nothing and ends the start soon after it is healthy.
const STARTUP_POLL: Duration = Duration::from_secs(1);
/// How long a start waits for a concurrent one without a Pacemaker timeout to go by.
const DEFAULT_START_LOCK_WAIT: Duration = Duration::from_secs(600);
/// Between two looks at the process group while waiting for a stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long to wait for bbwd's daemon to answer on its control socket (is it running here?).
const DAEMON_ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Smallest and largest share of Pacemaker's timeout kept back so the agent answers in time.
const MARGIN_MIN: Duration = Duration::from_secs(1);
const MARGIN_MAX: Duration = Duration::from_secs(10);

// The config's defaults (`config.rs`), from which the meta-data's default timeouts are derived.
// A unit test checks they match what an empty config parses to.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Seeds ("Monitoring frequency"): not more often than every 15 s; a 30 s monitor timeout.
const MONITOR_INTERVAL: Duration = Duration::from_secs(15);
const MONITOR_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to the config's own timeouts in the meta-data's start/stop defaults: room for the
/// margin, the process start and the last probe.
const META_SLACK: Duration = Duration::from_secs(60);
const META_STOP_SLACK: Duration = Duration::from_secs(30);

/// The actions this agent implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    MetaData,
    ValidateAll,
}

impl Action {
    /// The action named by Pacemaker: an empty one is a usage error (2); any other name
    /// (`notify`, `promote`, `reload`, `migrate_to`, ...) is unimplemented (3), as OCF asks.
    pub fn parse(name: &str) -> Result<Action, OcfCode> {
        match name {
            "start" => Ok(Action::Start),
            "stop" => Ok(Action::Stop),
            "monitor" => Ok(Action::Monitor),
            "meta-data" => Ok(Action::MetaData),
            "validate-all" => Ok(Action::ValidateAll),
            "" => Err(OcfCode::ErrArgs),
            _ => Err(OcfCode::ErrUnimplemented),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
        }
    }
}

/// What Pacemaker passes in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcfEnv {
    /// `OCF_RESKEY_config`.
    pub config: Option<PathBuf>,
    /// `OCF_RESKEY_CRM_meta_timeout` (ms): Pacemaker kills the agent after this.
    pub timeout: Option<Duration>,
    /// `OCF_RESKEY_CRM_meta_interval` (ms): 0 on a probe (a one-off monitor).
    pub interval: Option<Duration>,
    /// `OCF_RESOURCE_INSTANCE`, for log lines.
    pub instance: Option<String>,
}

impl OcfEnv {
    /// Reads the variables from `vars`; unparsable numbers are ignored (treated as absent).
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(vars: impl Iterator<Item = (K, V)>) -> OcfEnv {
        let mut env = OcfEnv::default();
        let ms = |v: &str| v.trim().parse::<u64>().ok().map(Duration::from_millis);
        for (k, v) in vars {
            let v = v.as_ref();
            match k.as_ref() {
                "OCF_RESKEY_config" if !v.is_empty() => env.config = Some(PathBuf::from(v)),
                "OCF_RESKEY_CRM_meta_timeout" => env.timeout = ms(v).filter(|d| !d.is_zero()),
                "OCF_RESKEY_CRM_meta_interval" => env.interval = ms(v),
                "OCF_RESOURCE_INSTANCE" if !v.is_empty() => env.instance = Some(v.to_string()),
                _ => {}
            }
        }
        env
    }

    fn from_process() -> OcfEnv {
        OcfEnv::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// A probe: a monitor Pacemaker runs once (interval 0) to learn the state on a node, also
    /// on nodes where Bitbucket is not set up.
    pub fn is_probe(&self) -> bool {
        self.interval.is_some_and(|i| i.is_zero())
    }
}

// ---------------------------------------------------------------------------------------------
// Timeout arithmetic (pure)

/// What is kept back from Pacemaker's timeout `t`: a tenth, at least 1 s, at most 10 s.
pub fn margin(t: Duration) -> Duration {
    (t / 10).clamp(MARGIN_MIN, MARGIN_MAX)
}

/// The time an action may use: Pacemaker's timeout less the margin; `None` without a timeout.
pub fn budget(pacemaker: Option<Duration>) -> Option<Duration> {
    pacemaker.map(|t| t.saturating_sub(margin(t)))
}

/// How long `start` may wait for a healthy `/status`: what is left of the start window
/// (`startup_timeout` from the process's start), within Pacemaker's budget.
pub fn start_wait(
    startup_timeout: Duration,
    started_ago: Duration,
    pacemaker: Option<Duration>,
) -> Duration {
    let window = startup_timeout.saturating_sub(started_ago);
    budget(pacemaker).map_or(window, |b| window.min(b))
}

/// How `stop` spends its time: SIGTERM, `term_wait`, SIGKILL, `kill_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPlan {
    pub term_wait: Duration,
    pub kill_wait: Duration,
}

/// The config's `stop_timeout` and `kill_timeout`, shortened to fit Pacemaker's budget: SIGKILL
/// always goes out with `min(kill_timeout, budget / 2)` left to see the group go.
pub fn stop_plan(
    stop_timeout: Duration,
    kill_timeout: Duration,
    pacemaker: Option<Duration>,
) -> StopPlan {
    let Some(b) = budget(pacemaker) else {
        return StopPlan {
            term_wait: stop_timeout,
            kill_wait: kill_timeout,
        };
    };
    let kill_reserve = kill_timeout.min(b / 2);
    let term_wait = stop_timeout.min(b - kill_reserve);
    StopPlan {
        term_wait,
        kill_wait: kill_timeout.min(b - term_wait),
    }
}

/// Default operation timeouts advertised in the meta-data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaTimeouts {
    pub start: Duration,
    pub stop: Duration,
    pub monitor: Duration,
    pub monitor_interval: Duration,
}

/// Start: `startup_timeout` plus slack; stop: longer than `stop_timeout + kill_timeout` by the
/// margin and slack, so `stop_plan` does not have to shorten the config's own timeouts.
pub fn meta_timeouts(startup: Duration, stop: Duration, kill: Duration) -> MetaTimeouts {
    MetaTimeouts {
        start: startup + META_SLACK,
        stop: stop + kill + META_STOP_SLACK,
        monitor: MONITOR_TIMEOUT,
        monitor_interval: MONITOR_INTERVAL,
    }
}

// ---------------------------------------------------------------------------------------------
// Health (pure)

/// What one `/status` answer means to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// 200 with RUNNING, MAINTENANCE (e.g. a backup) or FIRST_RUN.
    Healthy,
    /// 503 STARTING.
    Starting,
    /// Anything else: another state, 404, 500, garbage, a timeout, a refused connection.
    Unhealthy,
}

pub fn classify(outcome: &ProbeOutcome) -> Health {
    match *outcome {
        ProbeOutcome::Reply {
            http_status: 200,
            state: Some(BbState::Running | BbState::Maintenance | BbState::FirstRun),
        } => Health::Healthy,
        ProbeOutcome::Reply {
            http_status: 503,
            state: Some(BbState::Starting),
        } => Health::Starting,
        _ => Health::Unhealthy,
    }
}

/// `monitor`'s answer for a running process: STARTING is fine only within the start window.
pub fn monitor_code(health: Health, in_start_window: bool) -> OcfCode {
    match health {
        Health::Healthy => OcfCode::Success,
        Health::Starting if in_start_window => OcfCode::Success,
        Health::Starting | Health::Unhealthy => OcfCode::ErrGeneric,
    }
}

// ---------------------------------------------------------------------------------------------
// Meta-data

/// Escapes text for XML character data and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// The OCF meta-data (ra-api-1.dtd).
pub fn meta_data() -> String {
    let t = meta_timeouts(
        DEFAULT_STARTUP_TIMEOUT,
        DEFAULT_STOP_TIMEOUT,
        DEFAULT_KILL_TIMEOUT,
    );
    let longdesc = "Starts, stops and monitors Bitbucket Server (formerly Stash) on this node the \
way Atlassian's high-availability guide describes. Health comes from Bitbucket's /status page \
only: 200 RUNNING, MAINTENANCE or FIRST_RUN is healthy (so a backup never triggers a failover), \
503 STARTING is accepted within bitbucket.startup_timeout of a start, anything else is a failure. \
Stop sends SIGTERM to Bitbucket's process group, waits bitbucket.stop_timeout, then SIGKILL, \
always before Pacemaker's own operation timeout runs out. Everything but the config path comes \
from bbwd.toml: [bitbucket] command, user, environment, status_url and timeouts, [node] \
state_dir (pid file ocf-bitbucket.pid, Bitbucket's output in ocf-bitbucket.out). Pacemaker \
supervises in this mode: do not run bbwd's daemon (bbwd.service) on the same nodes. If you \
raise stop_timeout + kill_timeout or startup_timeout, raise the stop and start operation \
timeouts with them. Implemented by bbwd (bbwd ocf ACTION).";
    let config_longdesc = "Path of bbwd's configuration file (bbwd.toml). Check it with \
`bbwd check-config -c PATH`; validate-all reports a missing Bitbucket program or user as \
not installed (5) and an invalid file as not configured (6).";
    let mut x = String::new();
    let _ = writeln!(x, "<?xml version=\"1.0\"?>");
    let _ = writeln!(x, "<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">");
    let _ = writeln!(
        x,
        "<resource-agent name=\"{AGENT_NAME}\" version=\"{}\">",
        xml_escape(env!("CARGO_PKG_VERSION"))
    );
    let _ = writeln!(x, "<version>1.0</version>");
    let _ = writeln!(
        x,
        "<longdesc lang=\"en\">{}</longdesc>",
        xml_escape(longdesc)
    );
    let _ = writeln!(
        x,
        "<shortdesc lang=\"en\">Bitbucket Server, started, stopped and monitored by bbwd</shortdesc>"
    );
    let _ = writeln!(x, "<parameters>");
    let _ = writeln!(x, "<parameter name=\"config\" unique=\"1\" required=\"0\">");
    let _ = writeln!(
        x,
        "<longdesc lang=\"en\">{}</longdesc>",
        xml_escape(config_longdesc)
    );
    let _ = writeln!(x, "<shortdesc lang=\"en\">bbwd.toml path</shortdesc>");
    let _ = writeln!(
        x,
        "<content type=\"string\" default=\"{}\"/>",
        xml_escape(config::DEFAULT_PATH)
    );
    let _ = writeln!(x, "</parameter>");
    let _ = writeln!(x, "</parameters>");
    let _ = writeln!(x, "<actions>");
    let _ = writeln!(x, "<action name=\"start\" timeout=\"{}\"/>", secs(t.start));
    let _ = writeln!(x, "<action name=\"stop\" timeout=\"{}\"/>", secs(t.stop));
    let _ = writeln!(
        x,
        "<action name=\"monitor\" timeout=\"{}\" interval=\"{}\" depth=\"0\"/>",
        secs(t.monitor),
        secs(t.monitor_interval)
    );
    let _ = writeln!(x, "<action name=\"validate-all\" timeout=\"30s\"/>");
    let _ = writeln!(x, "<action name=\"meta-data\" timeout=\"5s\"/>");
    let _ = writeln!(x, "</actions>");
    let _ = writeln!(x, "</resource-agent>");
    x
}

// ---------------------------------------------------------------------------------------------
// The actions (I/O)

/// One invocation: the action, Pacemaker's environment and the config path.
struct Agent {
    action: Action,
    env: OcfEnv,
    config_path: PathBuf,
    started: Instant,
}

/// Outcome of an action: the code, and the reason logged with it.
type Outcome = (OcfCode, String);

impl Agent {
    fn log(&self, level: &str, msg: &str) {
        let instance = self.env.instance.as_deref().unwrap_or(AGENT_NAME);
        eprintln!(
            "bbwd-ocf({instance})[{}]: {level}: {} {msg}",
            std::process::id(),
            self.action.name()
        );
    }

    fn run(&self) -> OcfCode {
        let (code, msg) = match self.action {
            Action::MetaData => {
                print!("{}", meta_data());
                return OcfCode::Success;
            }
            Action::ValidateAll => self.validate().map(|_| {
                (
                    OcfCode::Success,
                    format!("{}: valid", self.config_path.display()),
                )
            }),
            Action::Start => self.start(),
            Action::Stop => self.stop(),
            Action::Monitor => self.monitor(),
        }
        .unwrap_or_else(|e| e);
        let level = match code {
            OcfCode::Success => "INFO",
            // Expected answers of a monitor, not problems.
            OcfCode::NotRunning if self.action == Action::Monitor => "INFO",
            _ => "ERROR",
        };
        if !msg.is_empty() {
            self.log(level, &msg);
        }
        code
    }

    /// Loads the config and resolves how to start Bitbucket: 6 when the config is invalid or
    /// describes a pair, 5 when the program or the user is missing.
    fn validate(&self) -> Result<(Config, SpawnSpec, StatusTarget), Outcome> {
        let cfg = config::load(&self.config_path).map_err(|problems| {
            for line in problems.to_string().lines() {
                self.log("ERROR", line);
            }
            (
                OcfCode::ErrConfigured,
                format!("{}: invalid config", self.config_path.display()),
            )
        })?;
        if cfg.mode() == config::Mode::Pair {
            return Err((
                OcfCode::ErrConfigured,
                "[cluster] (bbwd's own pair mode) is configured: under Pacemaker, Pacemaker is \
                 the cluster manager; remove [cluster], [vip] and [fencing]"
                    .to_string(),
            ));
        }
        let target = StatusTarget::parse(&cfg.bitbucket.status_url).map_err(|e| {
            (
                OcfCode::ErrConfigured,
                format!("bitbucket.status_url: {}", e.0),
            )
        })?;
        // The same host checks as check-config and run: something not installed here is
        // OCF_ERR_INSTALLED, a config that does not fit this node OCF_ERR_CONFIGURED.
        let found = crate::hostcheck::check(&cfg);
        let mut first_error = None;
        for f in &found {
            match f.severity {
                crate::hostcheck::Severity::Error => {
                    self.log("ERROR", &f.to_string());
                    first_error.get_or_insert(f);
                }
                crate::hostcheck::Severity::Warning => self.log("WARN", &f.to_string()),
            }
        }
        if let Some(f) = first_error {
            let code = match f.kind {
                crate::hostcheck::Kind::Missing => OcfCode::ErrInstalled,
                crate::hostcheck::Kind::Mismatch => OcfCode::ErrConfigured,
            };
            return Err((code, f.to_string()));
        }
        let user = match &cfg.bitbucket.user {
            Some(name) => Some(RunAs::lookup(name).map_err(|e| match e {
                process::Error::UnknownUser(_) => (
                    OcfCode::ErrInstalled,
                    format!("bitbucket.user: {e} on this node"),
                ),
                e => (OcfCode::ErrGeneric, format!("bitbucket.user: {e}")),
            })?),
            None => None,
        };
        // Output goes to a file in OCF mode (nobody drains a pipe between Pacemaker's calls).
        let spec = crate::daemon::spawn_spec(&cfg.bitbucket, user, false);
        Ok((cfg, spec, target))
    }

    /// Loads the config for monitor and stop, which need no program or user.
    fn load(&self) -> Result<(Config, StatusTarget), Outcome> {
        let cfg = config::load(&self.config_path).map_err(|problems| {
            for line in problems.to_string().lines() {
                self.log("ERROR", line);
            }
            (
                OcfCode::ErrConfigured,
                format!("{}: invalid config", self.config_path.display()),
            )
        })?;
        let target = StatusTarget::parse(&cfg.bitbucket.status_url).map_err(|e| {
            (
                OcfCode::ErrConfigured,
                format!("bitbucket.status_url: {}", e.0),
            )
        })?;
        Ok((cfg, target))
    }

    /// Time left of Pacemaker's budget for this action (`None`: no timeout given).
    fn budget_left(&self) -> Option<Duration> {
        budget(self.env.timeout).map(|b| b.saturating_sub(self.started.elapsed()))
    }

    fn monitor(&self) -> Result<Outcome, Outcome> {
        let (cfg, target) = match self.load() {
            Ok(v) => v,
            // A probe on a node where Bitbucket is not set up: it cannot be running there.
            Err((_, msg)) if self.env.is_probe() => {
                return Ok((OcfCode::NotRunning, format!("{msg} (probe: not running)")))
            }
            Err(e) => return Err(e),
        };
        let pidfile = cfg.node.state_dir.join(PIDFILE_NAME);
        let mut p = match find(&pidfile) {
            Found::Nothing => {
                // Report what runs, whoever started it: a Bitbucket under bbwd's own daemon
                // here is running (7 would make Pacemaker start a second one elsewhere).
                return match daemon_supervises(&cfg) {
                    None => Ok((OcfCode::NotRunning, String::new())),
                    Some(why) => {
                        let timeout = self
                            .budget_left()
                            .map_or(cfg.bitbucket.monitor_timeout, |b| {
                                b.min(cfg.bitbucket.monitor_timeout)
                            });
                        let outcome = probe_once(&target, timeout);
                        let msg = format!(
                            "{why}: Bitbucket runs under bbwd's daemon, not Pacemaker ({}); disable bbwd.service",
                            ProbeText(&outcome)
                        );
                        if classify(&outcome) == Health::Healthy {
                            Ok((OcfCode::Success, msg))
                        } else {
                            Err((OcfCode::ErrGeneric, msg))
                        }
                    }
                };
            }
            Found::Stale(record) => {
                return if process::stale_group_alive(&record) {
                    Err((
                        OcfCode::ErrGeneric,
                        format!(
                            "Bitbucket pid {} is gone but members of its process group {} remain",
                            record.pid, record.pgid
                        ),
                    ))
                } else {
                    Ok((
                        OcfCode::NotRunning,
                        format!("recorded Bitbucket pid {} is gone", record.pid),
                    ))
                };
            }
            Found::Proc(p) => p,
        };
        if p.try_collect_exit().is_some() {
            return if p.group_alive() {
                Err((
                    OcfCode::ErrGeneric,
                    format!(
                        "Bitbucket pid {} exited but members of its process group remain",
                        p.pid()
                    ),
                ))
            } else {
                Ok((
                    OcfCode::NotRunning,
                    format!("Bitbucket pid {} exited", p.pid()),
                ))
            };
        }
        let timeout = self
            .budget_left()
            .map_or(cfg.bitbucket.monitor_timeout, |b| {
                b.min(cfg.bitbucket.monitor_timeout)
            });
        let outcome = probe_once(&target, timeout);
        let health = classify(&outcome);
        let in_window =
            process::started_ago(&p.record()).is_some_and(|a| a < cfg.bitbucket.startup_timeout);
        let code = monitor_code(health, in_window);
        let msg = match (code, health) {
            (OcfCode::Success, Health::Healthy) => String::new(),
            (OcfCode::Success, _) => format!("pid {}: still starting", p.pid()),
            (_, Health::Starting) => format!(
                "pid {}: still STARTING after bitbucket.startup_timeout ({})",
                p.pid(),
                humantime::format_duration(cfg.bitbucket.startup_timeout)
            ),
            _ => format!("pid {}: /status: {}", p.pid(), ProbeText(&outcome)),
        };
        if code == OcfCode::Success {
            Ok((code, msg))
        } else {
            Err((code, msg))
        }
    }

    fn start(&self) -> Result<Outcome, Outcome> {
        let (cfg, spec, target) = self.validate()?;
        if let Some(why) = daemon_supervises(&cfg) {
            return Err((
                OcfCode::ErrGeneric,
                format!("{why}: bbwd's daemon supervises Bitbucket on this node; under Pacemaker, disable bbwd.service"),
            ));
        }
        fs::ensure_dir(&cfg.node.state_dir, 0o750)
            .map_err(|e| (OcfCode::ErrGeneric, format!("node.state_dir: {e}")))?;
        fs::check_writable(&cfg.node.state_dir).map_err(|e| {
            (
                OcfCode::ErrGeneric,
                format!("node.state_dir is not writable ({e}): refusing to start Bitbucket without a pid file"),
            )
        })?;
        // One start at a time: a second concurrent start waits, then adopts what the first
        // started.
        let wait = self.budget_left().unwrap_or(DEFAULT_START_LOCK_WAIT);
        let _lock = fs::StateLock::acquire(&cfg.node.state_dir, START_LOCK_NAME, Some(wait))
            .map_err(|e| {
                (
                    OcfCode::ErrGeneric,
                    format!("another start is under way: {e}"),
                )
            })?;
        let pidfile = cfg.node.state_dir.join(PIDFILE_NAME);
        let found = match find(&pidfile) {
            Found::Proc(mut p) => match p.try_collect_exit() {
                None => Ok(p),
                Some(_) => Err(Found::Proc(p)),
            },
            other => Err(other),
        };
        let mut p = match found {
            Ok(p) => {
                self.log("INFO", &format!("Bitbucket pid {} already runs", p.pid()));
                p
            }
            Err(leftover) => {
                // Whatever is left of an earlier instance goes before a new one starts.
                self.clear_leftovers(leftover, cfg.bitbucket.kill_timeout)?;
                // Never two: nothing of ours runs, so nothing may answer on status_url.
                if let Ok(s) = std::net::TcpStream::connect_timeout(
                    &target.addr,
                    cfg.bitbucket.monitor_timeout.min(STARTUP_POLL),
                ) {
                    drop(s);
                    return Err((
                        OcfCode::ErrGeneric,
                        format!(
                            "something already accepts connections on {} (bitbucket.status_url) \
                             while no Bitbucket of this agent runs: not starting a second one",
                            target.addr
                        ),
                    ));
                }
                let _record = self.pidfile_lock(&cfg)?;
                self.spawn(&cfg, &spec, &pidfile)?
            }
        };
        let ago = process::started_ago(&p.record()).unwrap_or_default();
        let wait = start_wait(cfg.bitbucket.startup_timeout, ago, self.env.timeout);
        let deadline = Instant::now() + wait;
        let mut set = PollSet::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = cfg.bitbucket.monitor_timeout.min(left.max(STOP_POLL));
            let outcome = probe_once(&target, timeout);
            if classify(&outcome) == Health::Healthy {
                return Ok((
                    OcfCode::Success,
                    format!(
                        "Bitbucket pid {} is healthy ({})",
                        p.pid(),
                        ProbeText(&outcome)
                    ),
                ));
            }
            if let Some(exit) = p.try_collect_exit() {
                return Err((
                    OcfCode::ErrGeneric,
                    format!(
                        "Bitbucket pid {} exited during start ({exit:?}); its output is in {}",
                        p.pid(),
                        cfg.node.state_dir.join(OUTPUT_NAME).display()
                    ),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                let why = if ago + wait >= cfg.bitbucket.startup_timeout {
                    "bitbucket.startup_timeout"
                } else {
                    "Pacemaker's start timeout"
                };
                return Err((
                    OcfCode::ErrGeneric,
                    format!(
                        "Bitbucket pid {} not healthy before {why} ran out; last /status: {}",
                        p.pid(),
                        ProbeText(&outcome)
                    ),
                ));
            }
            // Sleep until the next probe, or until the leader exits.
            set.clear();
            if let Some(fd) = p.pidfd() {
                let _ = set.add(fd, Want::Read);
            }
            let _ = set.wait(Some(STARTUP_POLL.min(deadline - now)));
        }
    }

    /// Starts Bitbucket detached and records it; Bitbucket's previous output becomes `.1`.
    fn spawn(&self, cfg: &Config, spec: &SpawnSpec, pidfile: &Path) -> Result<Supervised, Outcome> {
        let output = cfg.node.state_dir.join(OUTPUT_NAME);
        let _ = std::fs::rename(&output, cfg.node.state_dir.join(format!("{OUTPUT_NAME}.1")));
        let p = Supervised::spawn_detached(spec, &output)
            .map_err(|e| (OcfCode::ErrGeneric, e.to_string()))?;
        if let Err(e) = process::write_pidfile(pidfile, &p.record()) {
            // Unrecorded, it could never be stopped: take it down again at once.
            let _ = p.signal_group(GroupSignal::Kill);
            return Err((OcfCode::ErrGeneric, e.to_string()));
        }
        self.log(
            "INFO",
            &format!(
                "started Bitbucket pid {}: {:?}",
                p.pid(),
                cfg.bitbucket.command
            ),
        );
        Ok(p)
    }

    /// Kills what is left of an instance whose leader is gone, and waits for it to go.
    fn clear_leftovers(&self, found: Found, kill_timeout: Duration) -> Result<(), Outcome> {
        let wait = self
            .budget_left()
            .map_or(kill_timeout, |left| left.min(kill_timeout));
        let gone = match found {
            Found::Nothing => true,
            Found::Stale(record) => {
                if process::kill_stale_group(&record) {
                    self.log(
                        "WARN",
                        &format!("killed what was left of process group {}", record.pgid),
                    );
                }
                wait_until(wait, || !process::stale_group_alive(&record))
            }
            Found::Proc(mut p) => {
                if p.group_alive() {
                    let _ = p.signal_group(GroupSignal::Kill);
                    self.log(
                        "WARN",
                        &format!("killed what was left of process group {}", p.record().pgid),
                    );
                }
                wait_until(wait, || !p.group_alive())
            }
        };
        if gone {
            Ok(())
        } else {
            Err((
                OcfCode::ErrGeneric,
                "members of an earlier Bitbucket's process group survive SIGKILL".to_string(),
            ))
        }
    }

    /// The pid-file lock (`PIDFILE_LOCK_NAME`); `Err` only when another action holds it past
    /// `PIDFILE_LOCK_WAIT`. A lock file that cannot be opened (no `state_dir` yet, a read-only
    /// one) is no lock, not a failure: nothing can be recorded there by a racing start either,
    /// and a stop must not fail on it.
    fn pidfile_lock(&self, cfg: &Config) -> Result<Option<fs::StateLock>, Outcome> {
        match fs::StateLock::acquire(
            &cfg.node.state_dir,
            PIDFILE_LOCK_NAME,
            Some(PIDFILE_LOCK_WAIT),
        ) {
            Ok(lock) => Ok(Some(lock)),
            Err(e @ fs::LockError::Held { .. }) => {
                Err((OcfCode::ErrGeneric, format!("the pid file is busy: {e}")))
            }
            Err(fs::LockError::Io(e)) => {
                if cfg.node.state_dir.is_dir() {
                    self.log("WARN", &format!("going on without the pid-file lock: {e}"));
                }
                Ok(None)
            }
        }
    }

    /// Stops what the pid file names and removes the record, only if it still names what was
    /// stopped; a start that recorded another process meanwhile gets that one stopped too.
    fn stop(&self) -> Result<Outcome, Outcome> {
        let (cfg, _) = self.load()?;
        let pidfile = cfg.node.state_dir.join(PIDFILE_NAME);
        for _ in 0..MAX_STOP_ROUNDS {
            let found = {
                let _record = self.pidfile_lock(&cfg)?;
                find(&pidfile)
            };
            let stopped = match &found {
                Found::Nothing => return Ok((OcfCode::Success, String::new())),
                Found::Proc(p) => p.record(),
                Found::Stale(record) => *record,
            };
            self.stop_one(&cfg, found)?;
            let _record = self.pidfile_lock(&cfg)?;
            match process::read_pidfile(&pidfile) {
                Ok(Some(now)) if now != stopped => {
                    self.log(
                        "INFO",
                        &format!(
                            "a start recorded Bitbucket pid {} meanwhile: stopping it too",
                            now.pid
                        ),
                    );
                    continue;
                }
                _ => {
                    if let Err(e) = process::remove_pidfile(&pidfile) {
                        self.log("WARN", &e.to_string());
                    }
                    return Ok((OcfCode::Success, "Bitbucket stopped".to_string()));
                }
            }
        }
        Err((
            OcfCode::ErrGeneric,
            format!(
                "starts keep recording a new Bitbucket while this stop stops the last \
                 ({MAX_STOP_ROUNDS} rounds)"
            ),
        ))
    }

    /// SIGTERM, `stop_timeout`, SIGKILL, `kill_timeout` (shortened to Pacemaker's budget left)
    /// to what `find` found; `Err` if its group survives.
    fn stop_one(&self, cfg: &Config, found: Found) -> Result<(), Outcome> {
        let plan = stop_plan(
            cfg.bitbucket.stop_timeout,
            cfg.bitbucket.kill_timeout,
            self.env
                .timeout
                .map(|t| t.saturating_sub(self.started.elapsed())),
        );
        let gone = match found {
            Found::Nothing => true,
            Found::Stale(record) => {
                if process::kill_stale_group(&record) {
                    self.log(
                        "WARN",
                        &format!("SIGKILL to what was left of process group {}", record.pgid),
                    );
                }
                wait_until(plan.kill_wait, || !process::stale_group_alive(&record))
            }
            Found::Proc(mut p) => {
                let pid = p.pid();
                if let Err(e) = p.signal_group(GroupSignal::Term) {
                    self.log("ERROR", &e.to_string());
                }
                self.log(
                    "INFO",
                    &format!(
                        "SIGTERM to Bitbucket pid {pid}'s group; SIGKILL after {}",
                        humantime::format_duration(plan.term_wait)
                    ),
                );
                if wait_until(plan.term_wait, || !p.group_alive()) {
                    true
                } else {
                    self.log(
                        "WARN",
                        &format!("Bitbucket pid {pid} still there: SIGKILL to its group"),
                    );
                    if let Err(e) = p.signal_group(GroupSignal::Kill) {
                        self.log("ERROR", &e.to_string());
                    }
                    wait_until(plan.kill_wait, || !p.group_alive())
                }
            }
        };
        if gone {
            Ok(())
        } else {
            Err((
                OcfCode::ErrGeneric,
                "Bitbucket's process group survives SIGKILL: this node cannot stop it".to_string(),
            ))
        }
    }
}

/// What the pid file leads to.
enum Found {
    Nothing,
    /// The recorded process (maybe already exited: a zombie with the right start time).
    Proc(Supervised),
    /// The recorded leader is gone; members of its group may remain.
    Stale(PidRecord),
}

fn find(pidfile: &Path) -> Found {
    let record = match process::read_pidfile(pidfile) {
        Ok(Some(r)) => r,
        Ok(None) => return Found::Nothing,
        Err(e) => {
            eprintln!("bbwd-ocf: {e}: ignoring it");
            return Found::Nothing;
        }
    };
    match Supervised::adopt(&record) {
        Ok(Some(p)) => Found::Proc(p),
        Ok(None) => Found::Stale(record),
        Err(e) => {
            eprintln!("bbwd-ocf: cannot look at pid {}: {e}", record.pid);
            Found::Stale(record)
        }
    }
}

/// Polls `done` every `STOP_POLL` for up to `wait`; true once it holds.
fn wait_until(wait: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(STOP_POLL.min(deadline - now));
    }
}

/// Whether bbwd's daemon looks after Bitbucket on this node (its pid file names a live
/// process, or it answers on its control socket): the reason, if so.
fn daemon_supervises(cfg: &Config) -> Option<String> {
    let pidfile = cfg.node.state_dir.join(DAEMON_PIDFILE_NAME);
    if let Ok(Some(record)) = process::read_pidfile(&pidfile) {
        if let Ok(Some(_)) = Supervised::adopt(&record) {
            return Some(format!(
                "{} names live pid {}",
                pidfile.display(),
                record.pid
            ));
        }
    }
    let socket = &cfg.node.control_socket;
    if control::request(socket, br#"{"cmd":"status"}"#, DAEMON_ASK_TIMEOUT).is_ok() {
        return Some(format!("a bbwd daemon answers on {}", socket.display()));
    }
    None
}

/// Whether `program` is an executable file: an absolute or relative path as given, or a bare
/// name found in `$PATH`.
pub(crate) fn program_installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return false;
    }
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// When bbwd runs as the agent symlink (argv[0]'s file name is `bitbucket`), the action
/// Pacemaker passes as argv[1] (empty when missing).
pub fn called_as_agent() -> Option<String> {
    let mut args = std::env::args_os();
    let argv0 = args.next()?;
    if Path::new(&argv0).file_name()? != AGENT_NAME {
        return None;
    }
    Some(
        args.next()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// `bbwd ocf ACTION` (with `-c PATH` when given) or the `bitbucket` symlink: the exit code.
/// The config is `-c`, else `OCF_RESKEY_config`, else `$BBWD_CONFIG`, else the default.
pub fn main(action: &str, config_flag: Option<PathBuf>) -> Exit {
    let env = OcfEnv::from_process();
    let action = match Action::parse(action) {
        Ok(a) => a,
        Err(code) => {
            if code == OcfCode::ErrArgs {
                eprintln!(
                    "usage: {AGENT_NAME} start|stop|monitor|meta-data|validate-all \
                     (or bbwd ocf ACTION); parameter OCF_RESKEY_config"
                );
            } else {
                eprintln!("bbwd-ocf: action `{action}` is not implemented");
            }
            return Exit::Ocf(code);
        }
    };
    let config_path = config_flag
        .or_else(|| env.config.clone())
        .or_else(|| std::env::var_os("BBWD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    Exit::Ocf(
        Agent {
            action,
            env,
            config_path,
            started: Instant::now(),
        }
        .run(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbwd_platform::http::ProbeFailure;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn actions_parse_and_the_rest_is_unimplemented_or_a_usage_error() {
        assert_eq!(Action::parse("start"), Ok(Action::Start));
        assert_eq!(Action::parse("stop"), Ok(Action::Stop));
        assert_eq!(Action::parse("monitor"), Ok(Action::Monitor));
        assert_eq!(Action::parse("meta-data"), Ok(Action::MetaData));
        assert_eq!(Action::parse("validate-all"), Ok(Action::ValidateAll));
        for other in [
            "notify",
            "promote",
            "demote",
            "reload",
            "migrate_to",
            "status",
            "x",
        ] {
            assert_eq!(
                Action::parse(other),
                Err(OcfCode::ErrUnimplemented),
                "{other}"
            );
        }
        assert_eq!(Action::parse(""), Err(OcfCode::ErrArgs));
    }

    #[test]
    fn environment_is_read_in_milliseconds_and_probes_are_interval_zero() {
        let env = OcfEnv::from_vars(
            [
                ("OCF_RESKEY_config", "/etc/x.toml"),
                ("OCF_RESKEY_CRM_meta_timeout", "20000"),
                ("OCF_RESKEY_CRM_meta_interval", "0"),
                ("OCF_RESOURCE_INSTANCE", "bb"),
                ("PATH", "/bin"),
            ]
            .into_iter(),
        );
        assert_eq!(env.config, Some(PathBuf::from("/etc/x.toml")));
        assert_eq!(env.timeout, Some(S(20)));
        assert!(env.is_probe());
        assert_eq!(env.instance.as_deref(), Some("bb"));
        let env = OcfEnv::from_vars(
            [
                ("OCF_RESKEY_CRM_meta_timeout", "soon"),
                ("OCF_RESKEY_CRM_meta_interval", "15000"),
                ("OCF_RESKEY_config", ""),
            ]
            .into_iter(),
        );
        assert_eq!(env.timeout, None, "garbage is ignored, not a zero timeout");
        assert_eq!(env.config, None);
        assert!(!env.is_probe());
        assert!(!OcfEnv::from_vars(std::iter::empty::<(&str, &str)>()).is_probe());
        let zero = OcfEnv::from_vars([("OCF_RESKEY_CRM_meta_timeout", "0")].into_iter());
        assert_eq!(zero.timeout, None);
    }

    #[test]
    fn margin_is_a_tenth_between_one_and_ten_seconds() {
        assert_eq!(margin(S(20)), S(2));
        assert_eq!(margin(S(5)), S(1));
        assert_eq!(margin(S(600)), S(10));
        assert_eq!(budget(Some(S(20))), Some(S(18)));
        assert_eq!(
            budget(Some(Duration::from_millis(500))),
            Some(Duration::ZERO)
        );
        assert_eq!(budget(None), None);
    }

    #[test]
    fn stop_sends_sigkill_before_pacemaker_gives_up() {
        // No Pacemaker timeout (by hand): the config's timeouts as they are.
        assert_eq!(
            stop_plan(S(120), S(10), None),
            StopPlan {
                term_wait: S(120),
                kill_wait: S(10)
            }
        );
        // ocf-tester's 20 s with the defaults: 18 s budget, half of it kept for SIGKILL.
        assert_eq!(
            stop_plan(S(120), S(10), Some(S(20))),
            StopPlan {
                term_wait: S(9),
                kill_wait: S(9)
            }
        );
        // A 60 s budget: the whole kill_timeout is kept.
        assert_eq!(
            stop_plan(S(120), S(10), Some(S(60))),
            StopPlan {
                term_wait: S(44),
                kill_wait: S(10)
            }
        );
        // A tiny budget is split in two.
        assert_eq!(
            stop_plan(S(120), S(10), Some(S(5))),
            StopPlan {
                term_wait: S(2),
                kill_wait: S(2)
            }
        );
        // Short config timeouts are kept.
        assert_eq!(
            stop_plan(S(1), S(1), Some(S(20))),
            StopPlan {
                term_wait: S(1),
                kill_wait: S(1)
            }
        );
        // Whatever the inputs, the plan fits the budget.
        for t in [1, 3, 7, 20, 60, 130, 160, 1000] {
            for stop in [0, 1, 30, 120, 600] {
                for kill in [0, 1, 10, 60] {
                    let p = stop_plan(S(stop), S(kill), Some(S(t)));
                    let b = budget(Some(S(t))).unwrap();
                    assert!(
                        p.term_wait + p.kill_wait <= b,
                        "t={t} stop={stop} kill={kill}"
                    );
                    assert!(p.term_wait <= S(stop) && p.kill_wait <= S(kill));
                    assert!(p.kill_wait >= S(kill).min(b / 2));
                }
            }
        }
    }

    #[test]
    fn start_waits_for_the_rest_of_the_start_window_within_the_budget() {
        assert_eq!(start_wait(S(600), S(0), None), S(600));
        assert_eq!(start_wait(S(600), S(0), Some(S(20))), S(18));
        assert_eq!(start_wait(S(600), S(590), Some(S(660))), S(10));
        assert_eq!(start_wait(S(600), S(900), Some(S(660))), S(0));
    }

    #[test]
    fn default_timeouts_follow_the_seeds_and_leave_stop_its_full_time() {
        let t = meta_timeouts(
            DEFAULT_STARTUP_TIMEOUT,
            DEFAULT_STOP_TIMEOUT,
            DEFAULT_KILL_TIMEOUT,
        );
        assert_eq!(t.monitor, S(30));
        assert_eq!(t.monitor_interval, S(15));
        assert!(t.stop > DEFAULT_STOP_TIMEOUT + DEFAULT_KILL_TIMEOUT);
        assert!(t.start > DEFAULT_STARTUP_TIMEOUT);
        // With the advertised stop timeout, the config's defaults are not shortened.
        assert_eq!(
            stop_plan(DEFAULT_STOP_TIMEOUT, DEFAULT_KILL_TIMEOUT, Some(t.stop)),
            StopPlan {
                term_wait: DEFAULT_STOP_TIMEOUT,
                kill_wait: DEFAULT_KILL_TIMEOUT
            }
        );
        assert_eq!(
            start_wait(DEFAULT_STARTUP_TIMEOUT, S(0), Some(t.start)),
            DEFAULT_STARTUP_TIMEOUT
        );
    }

    #[test]
    fn defaults_match_the_config_defaults() {
        let cfg = config::parse("[node]\nname = \"x\"\n", Path::new("test.toml")).unwrap();
        assert_eq!(cfg.bitbucket.startup_timeout, DEFAULT_STARTUP_TIMEOUT);
        assert_eq!(cfg.bitbucket.stop_timeout, DEFAULT_STOP_TIMEOUT);
        assert_eq!(cfg.bitbucket.kill_timeout, DEFAULT_KILL_TIMEOUT);
        assert_eq!(cfg.bitbucket.monitor_interval, MONITOR_INTERVAL);
        assert_eq!(cfg.bitbucket.monitor_timeout, MONITOR_TIMEOUT);
    }

    fn reply(code: u16, state: Option<BbState>) -> ProbeOutcome {
        ProbeOutcome::Reply {
            http_status: code,
            state,
        }
    }

    #[test]
    fn monitor_follows_the_seeds() {
        use BbState::*;
        for healthy in [Running, Maintenance, FirstRun] {
            assert_eq!(classify(&reply(200, Some(healthy))), Health::Healthy);
            assert_eq!(monitor_code(Health::Healthy, false), OcfCode::Success);
        }
        assert_eq!(classify(&reply(503, Some(Starting))), Health::Starting);
        assert_eq!(monitor_code(Health::Starting, true), OcfCode::Success);
        assert_eq!(monitor_code(Health::Starting, false), OcfCode::ErrGeneric);
        for bad in [
            reply(503, Some(Stopping)),
            reply(500, Some(Error)),
            reply(404, None),
            reply(200, Some(Other)),
            reply(200, None),
            reply(503, Some(Running)),
            ProbeOutcome::Failed(ProbeFailure::Refused),
            ProbeOutcome::Failed(ProbeFailure::Timeout),
            ProbeOutcome::Failed(ProbeFailure::Malformed),
        ] {
            assert_eq!(classify(&bad), Health::Unhealthy, "{bad:?}");
        }
        assert_eq!(monitor_code(Health::Unhealthy, true), OcfCode::ErrGeneric);
    }

    /// A small well-formedness check: every tag closes in order, attribute values are quoted,
    /// no bare `&` or `<` in text. (The test suite validates against ra-api-1.dtd with xmllint.)
    fn well_formed(xml: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = xml;
        while let Some(i) = rest.find('<') {
            let text = &rest[..i];
            if let Some(amp) = text.find('&') {
                let ent = &text[amp..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| ent.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let end = rest[i..].find('>').ok_or("unclosed <")? + i;
            let tag = &rest[i + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if tag.contains('<') {
                return Err(format!("< inside tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_ascii_whitespace().next().ok_or("empty tag")?;
            if body.matches('"').count() % 2 != 0
                || body.matches('=').count() * 2 != body.matches('"').count()
            {
                return Err(format!("unquoted attribute in {tag:?}"));
            }
            seen.push(name.to_string());
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        Ok(seen)
    }

    #[test]
    fn meta_data_is_well_formed_and_complete() {
        let xml = meta_data();
        assert!(xml.starts_with(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"
        ));
        let seen = well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        // The DTD's order: version, longdesc, shortdesc, parameters, actions.
        let top: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|t| ["resource-agent", "version", "parameters", "actions"].contains(t))
            .collect();
        assert_eq!(top, ["resource-agent", "version", "parameters", "actions"]);
        assert!(xml.contains("<resource-agent name=\"bitbucket\""));
        assert!(xml.contains("<parameter name=\"config\" unique=\"1\" required=\"0\">"));
        assert!(xml.contains("default=\"/etc/bbwd/bbwd.toml\""));
        assert!(xml.contains("<action name=\"monitor\" timeout=\"30s\" interval=\"15s\""));
        assert!(xml.contains("<action name=\"start\" timeout=\"660s\"/>"));
        assert!(xml.contains("<action name=\"stop\" timeout=\"160s\"/>"));
        for a in ["meta-data", "validate-all"] {
            assert!(xml.contains(&format!("<action name=\"{a}\"")), "{a}");
        }
        // The checker itself catches what it should.
        assert!(well_formed("<a><b></a></b>").is_err());
        assert!(well_formed("<a x=1/>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
        assert!(well_formed("<a>").is_err());
        assert_eq!(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn program_lookup_follows_path_rules() {
        assert!(program_installed("/bin/sh"));
        assert!(program_installed("sh"), "found in PATH");
        assert!(!program_installed("/etc/passwd"), "not executable");
        assert!(!program_installed("/no/such/program"));
        assert!(!program_installed("bbwd-no-such-program"));
        assert!(!program_installed(""));
        assert!(!program_installed("/bin"), "a directory");
    }
}
