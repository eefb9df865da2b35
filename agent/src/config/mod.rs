//! bbwd.toml: every key of SPEC.md with its default, parsed and validated in one pass.
//!
//! Owns: the `Config` types, their defaults, and the checks `bbwd check-config` and `bbwd run`
//! perform, including the timing rules of `bbwd_core::timing` (R1-R3 at load, R5 at start
//! through [`check_at_start`], the warning W1 through [`warnings`]). Every problem is collected (not just the first), each naming its key and, where the
//! TOML parser knows it, its line. Unknown keys and sections are errors: a typo must never fall
//! back silently to a default. Secret files named by the config must be mode 0600 or stricter.
//!
//! Must not: start anything, touch the network beyond resolving `database.address` once (so a
//! name that does not resolve is a config problem, not a surprise at the first check), or read
//! files other than the config itself, the host name (`/proc/sys/kernel/hostname`, the default
//! `node.name`) and the metadata of the secret files it names.
//!
//! # How problems are found
//! The file is parsed with `toml::de::DeTable::parse_recoverable`, which keeps the span of every
//! key and value, and walked by hand section by section: each getter returns the value to use
//! (the default when the key is absent) and records a `Problem` when the value is wrong, so one
//! pass reports everything. Problems on a line the TOML parser itself rejected are dropped (the
//! parser's recovery guessed there). A `Config` is returned only when there is no problem.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bbwd_core::timing::{self, Rule, Severity, Timings};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Where the daemon looks by default (`$BBWD_CONFIG` overrides it, `-c` overrides both).
pub const DEFAULT_PATH: &str = "/etc/bbwd/bbwd.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: Node,
    pub bitbucket: Bitbucket,
    pub database: Option<Database>,
    pub watchdog: Watchdog,
    pub notify: Option<Notify>,
    pub cluster: Option<Cluster>,
    pub vip: Option<Vip>,
    pub fencing: Option<Fencing>,
    pub hooks: Hooks,
    pub load_balancer: Option<LoadBalancer>,
    /// `[metrics]`, any mode: the Prometheus endpoint and/or node_exporter's textfile.
    pub metrics: Option<Metrics>,
}

/// Which topology the config describes (SPEC "Topology it serves").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Pair,
    Mirror,
}

impl Config {
    pub fn mode(&self) -> Mode {
        if self.cluster.is_some() {
            Mode::Pair
        } else if self.load_balancer.is_some() {
            Mode::Mirror
        } else {
            Mode::Single
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Default: the host name.
    pub name: String,
    /// Default `/var/lib/bbwd`.
    pub state_dir: PathBuf,
    /// Default `/run/bbwd/control.sock`.
    pub control_socket: PathBuf,
    /// Optional: members of this group may ask the daemon for its status (read-only; every
    /// other request stays root only), e.g. a monitoring agent's `nagios`.
    pub status_group: Option<String>,
}

/// `[bitbucket]`
#[derive(Debug, Clone, PartialEq)]
pub struct Bitbucket {
    /// Default `http://127.0.0.1:7990/status`; http only.
    pub status_url: String,
    /// Default `["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"]`; must not be empty.
    pub command: Vec<String>,
    pub user: Option<String>,
    pub environment: BTreeMap<String, String>,
    /// Default 15 s.
    pub monitor_interval: Duration,
    /// Default 30 s.
    pub monitor_timeout: Duration,
    /// Default 10 min.
    pub startup_timeout: Duration,
    /// Default 2; at least 1.
    pub failures_before_action: u32,
    /// Default 120 s.
    pub stop_timeout: Duration,
    /// Default 10 s.
    pub kill_timeout: Duration,
    /// Default 1.
    pub max_restarts: u32,
    /// Default 1 h.
    pub restart_window: Duration,
    /// Added key `capture_output`, default true: read Bitbucket's stdout/stderr through bbwd
    /// (forwarded to bbwd's log) to recognise an `OutOfMemoryError` line.
    pub capture_output: bool,
}

/// `[database]`
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    /// `host:port` as written.
    pub address: String,
    /// Resolved once at load time.
    pub resolved: SocketAddr,
    /// Default 5 s.
    pub timeout: Duration,
}

/// `[watchdog] device`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchdogDevice {
    None,
    /// A watchdog character device such as `/dev/watchdog`.
    Device(PathBuf),
    /// The BMC's watchdog.
    Ipmi,
}

/// `[watchdog] action` (IPMI only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogAction {
    Reset,
    PowerCycle,
    PowerOff,
}

/// `[watchdog]`
#[derive(Debug, Clone, PartialEq)]
pub struct Watchdog {
    /// Default `none`.
    pub device: WatchdogDevice,
    /// Default 60 s.
    pub timeout: Duration,
    /// Default `reset`.
    pub action: WatchdogAction,
    /// Default false.
    pub realtime: bool,
    pub ipmi: Option<IpmiLan>,
}

/// `[watchdog.ipmi]` and the RMCP+ part of `[fencing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IpmiLan {
    pub host: String,
    /// Default 623.
    pub port: u16,
    pub username: String,
    /// Checked: mode 0600 or stricter.
    pub password_file: PathBuf,
    /// Added key `cipher_suite`: 3 (default), 17, or `"auto"` (stored as
    /// `bbwd_platform::ipmi::CIPHER_SUITE_AUTO`: 17 when the BMC lists it, else 3).
    pub cipher_suite: u8,
}

/// `[notify]`
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// Must not be empty.
    pub command: Vec<String>,
    /// Added key `timeout`, default 30 s: a run longer than this is killed.
    pub timeout: Duration,
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub peer: String,
    pub listen: Vec<SocketAddr>,
    /// Same length as `listen`: link i is listen[i] <-> peer_addresses[i].
    pub peer_addresses: Vec<SocketAddr>,
    /// Checked: mode 0600 or stricter.
    pub key_file: PathBuf,
    /// Default 200 ms.
    pub heartbeat_interval: Duration,
    /// Default 1 s; at least 3 × `heartbeat_interval` (timing rule R1).
    pub peer_timeout: Duration,
    /// Default false.
    pub preferred_active: bool,
    pub witness: Option<std::net::IpAddr>,
    /// Added key (SPEC lists it): default 30 s; at least `peer_timeout` (R3). A booting node
    /// waits this long to hear its peer before it treats the silence as death and fences it.
    pub boot_wait: Duration,
    /// Added key `fence_delay`: the priority delay of the node not holding the service. Default
    /// `fencing.timeout + peer_timeout` (`bbwd_core::timing::default_fence_delay`); at least
    /// `fencing.timeout + heartbeat_interval` (R2).
    pub fence_delay: Duration,
}

/// `[vip]`
#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    pub address: std::net::IpAddr,
    pub prefix_len: u8,
    pub interface: String,
    /// Default 3.
    pub garp_count: u32,
    /// Default 200 ms.
    pub garp_interval: Duration,
}

/// `[fencing] action`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAction {
    Off,
    Cycle,
}

/// How a Redfish BMC's TLS certificate is checked (`[fencing]` with `method = "redfish"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedfishTls {
    /// `ca_file`: a PEM file of CA certificates (read and parsed by the check).
    CaFile(PathBuf),
    /// `tls_fingerprint = "sha256:..."`: this certificate exactly.
    Fingerprint([u8; 32]),
    /// `insecure = true`: not checked (a warning in check-config and `bbwd status`).
    Insecure,
}

/// The Redfish-only keys of `[fencing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedfishKeys {
    /// `system`: the ComputerSystem's path; `None` = the only one the service lists.
    pub system: Option<String>,
    /// Exactly one of `ca_file`, `tls_fingerprint`, `insecure = true`.
    pub tls: RedfishTls,
}

/// One fence device: `[fencing]` itself, or one `[[fencing.device]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FenceDevice {
    /// `ipmi` (default) or `redfish`.
    pub method: String,
    pub lan: IpmiLan,
    /// `Some` exactly when `method = "redfish"`.
    pub redfish: Option<RedfishKeys>,
    /// IPMI: 3 (default), 17, or `"auto"` (`bbwd_platform::ipmi::CIPHER_SUITE_AUTO`); anything
    /// else is refused (0 accepts any password). The same as `lan.cipher_suite`.
    pub cipher_suite: u8,
}

/// `[fencing]`. `method`, `lan`, `redfish` and `cipher_suite` are the FIRST device's (the only
/// one in the single-table form); `devices` lists every device in the order they are tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Fencing {
    /// `ipmi` (default) or `redfish`.
    pub method: String,
    /// Host, port (default 623 for ipmi, 443 for redfish), user name, password file.
    pub lan: IpmiLan,
    /// `Some` exactly when `method = "redfish"`.
    pub redfish: Option<RedfishKeys>,
    /// IPMI: 3 (default), 17 or `"auto"`; the same as `lan.cipher_suite`.
    pub cipher_suite: u8,
    /// Added key `device` (`[[fencing.device]]`, Pacemaker's fencing levels): the devices tried
    /// in order until one confirms off; at least one (the single form: `[fencing]` itself).
    pub devices: Vec<FenceDevice>,
    /// Default `off`.
    pub action: FenceAction,
    /// Default 10 s.
    pub timeout: Duration,
}

/// `[hooks]`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    pub before_start: Vec<Vec<String>>,
    pub after_stop: Vec<Vec<String>>,
}

/// `[load_balancer]`
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    pub haproxy_agent: SocketAddr,
}

/// `[metrics]`: at least one of the two is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// `GET /metrics` answered here (Prometheus text exposition format).
    pub listen: Option<SocketAddr>,
    /// node_exporter's textfile collector: written atomically once per `monitor_interval`.
    pub textfile: Option<PathBuf>,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `bitbucket.monitor_interval`; the section name for a section-level
    /// problem; empty for a problem with the file itself.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    /// `bitbucket.monitor_interval (line 12): invalid duration "15x": ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.key.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{} (line {line}): {}", self.key, self.message),
            (false, None) => write!(f, "{}: {}", self.key, self.message),
            (true, Some(line)) => write!(f, "line {line}: {}", self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

/// All problems found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for Problems {
    /// One line per problem, each prefixed with the path: `/etc/bbwd/bbwd.toml: bitbucket.x (line 3): unknown key`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {problem}", self.path.display())?;
        }
        Ok(())
    }
}
impl std::error::Error for Problems {}

/// Reads and validates `path` (including the secret files' modes).
pub fn load(path: &Path) -> Result<Config, Problems> {
    let file_problem = |message: String| Problems {
        path: path.to_path_buf(),
        problems: vec![Problem {
            key: String::new(),
            line: None,
            message,
        }],
    };
    let bytes = match bbwd_platform::fs::read_optional(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(file_problem(
                "no such file (create it, or point -c PATH or $BBWD_CONFIG at the right one)"
                    .to_string(),
            ))
        }
        Err(bbwd_platform::fs::Error::Io { op, source, .. }) => {
            return Err(file_problem(format!("cannot {op}: {source}")))
        }
        Err(e) => return Err(file_problem(e.to_string())),
    };
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, path),
        Err(e) => Err(file_problem(format!(
            "not UTF-8 text (byte {}): TOML files must be UTF-8",
            e.valid_up_to()
        ))),
    }
}

/// Parses and validates config text; `origin` names it in problems. Checks the secret files it
/// names on disk.
pub fn parse(text: &str, origin: &Path) -> Result<Config, Problems> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    let mut ck = Checker {
        text,
        problems: Vec::new(),
        times: TimingInputs::default(),
    };
    // Lines the TOML parser already complained about: what it recovered there is a guess, so
    // problems found in those guesses would only be noise.
    let mut syntax_lines = Vec::new();
    for error in &syntax_errors {
        let line = error.span().map(|span| ck.line_of(span.start));
        syntax_lines.extend(line);
        ck.problems.push(Problem {
            key: String::new(),
            line,
            message: format!("TOML syntax error: {}", error.message()),
        });
    }
    let syntax_count = ck.problems.len();

    let config = ck.config(doc.get_ref());

    let (syntax, mut semantic) = {
        let mut all = std::mem::take(&mut ck.problems);
        let semantic = all.split_off(syntax_count);
        (all, semantic)
    };
    semantic.retain(|p| p.line.is_none_or(|line| !syntax_lines.contains(&line)));
    let mut problems = syntax;
    problems.extend(semantic);
    // File order; problems without a line (the file as a whole) first. Stable: within a line,
    // the order they were found in.
    problems.sort_by_key(|p| p.line.unwrap_or(0));

    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            if problems.is_empty() {
                // Cannot happen (every `None` above reports why); never hand out a half config.
                problems.push(Problem {
                    key: String::new(),
                    line: None,
                    message: "invalid configuration".to_string(),
                });
            }
            Err(Problems {
                path: origin.to_path_buf(),
                problems,
            })
        }
    }
}

/// The durations of a pair config for `bbwd_core::timing` (`None` in single and mirror mode),
/// with systemd's `WatchdogSec` when known.
pub fn timings(cfg: &Config, systemd_watchdog: Option<Duration>) -> Option<Timings> {
    let (cluster, fencing) = (cfg.cluster.as_ref()?, cfg.fencing.as_ref()?);
    Some(Timings {
        heartbeat_interval: cluster.heartbeat_interval,
        peer_timeout: cluster.peer_timeout,
        fence_delay: cluster.fence_delay,
        boot_wait: cluster.boot_wait,
        fence_timeout: fencing.timeout,
        stop_timeout: cfg.bitbucket.stop_timeout,
        kill_timeout: cfg.bitbucket.kill_timeout,
        step_timeout: crate::cluster::STEP_TIMEOUT,
        hardware_watchdog: match cfg.watchdog.device {
            WatchdogDevice::None => None,
            WatchdogDevice::Device(_) | WatchdogDevice::Ipmi => Some(cfg.watchdog.timeout),
        },
        systemd_watchdog,
    })
}

/// The timing rule only `bbwd run` can check (R5): in pair mode with a hardware watchdog,
/// systemd's `WatchdogSec` (`WATCHDOG_USEC`, `systemd_watchdog`) must be more than twice
/// `watchdog.timeout`, so that a hung loop holding the service resets the node instead of
/// getting bbwd restarted. `path` names the config in the problems (like [`load`]'s).
pub fn check_at_start(
    cfg: &Config,
    path: &Path,
    systemd_watchdog: Option<Duration>,
) -> Result<(), Problems> {
    let problems: Vec<Problem> = timings(cfg, systemd_watchdog)
        .map(|t| timing::check(&t))
        .unwrap_or_default()
        .iter()
        .filter(|v| v.rule == Rule::SystemdWatchdog && v.severity == Severity::Refuse)
        .map(|v| Problem {
            key: v.key.to_string(),
            line: None,
            message: v.to_string(),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// What is worth saying about a valid config without refusing it (`check-config` prints these,
/// `run` logs them): today the timing warning W1, pair mode without a hardware watchdog.
pub fn warnings(cfg: &Config) -> Vec<Problem> {
    timings(cfg, None)
        .map(|t| timing::check(&t))
        .unwrap_or_default()
        .iter()
        .filter(|v| v.severity == Severity::Warning)
        .map(|v| Problem {
            key: v.key.to_string(),
            line: None,
            message: v.to_string(),
        })
        .chain(
            cfg.fencing
                .iter()
                .flat_map(|f| f.devices.iter())
                .filter_map(|d| d.redfish.as_ref())
                .filter(|r| r.tls == RedfishTls::Insecure)
                .map(|_| Problem {
                    key: "fencing.insecure".to_string(),
                    line: None,
                    message: "the BMC's TLS certificate is NOT verified: anyone on the path can read \
                              the BMC password and fake a confirmed off; set ca_file or tls_fingerprint"
                        .to_string(),
                }),
        )
        .collect()
}

/// Longest duration any setting accepts: no timer in bbwd needs more than a week, and a bound
/// keeps `Instant + duration` from overflowing anywhere downstream.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

const DURATION_HELP: &str =
    "expected an integer followed by a unit (ms, s, m, h), e.g. \"250ms\", \"15s\", \"10m\", \"1m30s\"";

/// Parses a duration string: an integer followed by `ms`, `s`, `m` or `h` (`"250ms"`, `"15s"`,
/// `"10m"`); combinations like `"1m30s"` are accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration \"{text}\": {why}");
    if text.is_empty() {
        return Err(invalid(DURATION_HELP));
    }
    let bytes = text.as_bytes();
    let mut total_ms: u64 = 0;
    // Rank of the previous unit (h=0 .. ms=3): units must go from largest to smallest, once.
    let mut last_rank: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(invalid(DURATION_HELP));
        }
        let number: u64 = text[digits_start..i].parse().map_err(|_| {
            invalid(&format!(
                "too long (at most {}h)",
                MAX_DURATION.as_secs() / 3600
            ))
        })?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (rank, unit_ms) = match &text[unit_start..i] {
            "h" => (0, 3_600_000),
            "m" => (1, 60_000),
            "s" => (2, 1_000),
            "ms" => (3, 1),
            "" if i == bytes.len() => {
                return Err(invalid(&format!(
                    "missing unit after {number}: add ms, s, m or h (e.g. \"{number}s\")"
                )))
            }
            "" if bytes[i] == b'.' => {
                return Err(invalid(
                    "no fractions: use a smaller unit (e.g. \"1500ms\" for 1.5 s)",
                ))
            }
            _ => return Err(invalid(DURATION_HELP)),
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(invalid(
                "units must go from largest to smallest, each once, e.g. \"1m30s\"",
            ));
        }
        last_rank = Some(rank);
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| {
                invalid(&format!(
                    "too long (at most {}h)",
                    MAX_DURATION.as_secs() / 3600
                ))
            })?;
    }
    let duration = Duration::from_millis(total_ms);
    if duration > MAX_DURATION {
        return Err(invalid(&format!(
            "too long (at most {}h)",
            MAX_DURATION.as_secs() / 3600
        )));
    }
    Ok(duration)
}

// ---- defaults (the doc comments on the struct fields say the same) ----

const DEFAULT_STATE_DIR: &str = "/var/lib/bbwd";
const DEFAULT_CONTROL_SOCKET: &str = "/run/bbwd/control.sock";
const DEFAULT_STATUS_URL: &str = "http://127.0.0.1:7990/status";
const DEFAULT_COMMAND: [&str; 2] = ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"];
/// `[bitbucket] stop_timeout`.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// `[bitbucket] kill_timeout`.
const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// `[fencing] timeout`: one whole fence attempt, BMC session set-up included.
const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(10);
/// `[cluster] boot_wait` (SPEC): long enough for switches and the peer's bbwd to come up
/// after a power cut of both nodes, short beside a Bitbucket start.
const DEFAULT_BOOT_WAIT: Duration = Duration::from_secs(30);
/// Where the kernel publishes the host name (the default `node.name`).
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";
/// Standard RMCP+ port.
const DEFAULT_IPMI_PORT: i64 = 623;
/// Most heartbeat links a pair may have.
pub const MAX_LINKS: usize = 8;
/// Longest node name, bytes (a host name's limit, HOST_NAME_MAX).
pub const MAX_NAME_BYTES: usize = 64;
/// Longest Unix socket path, bytes (`sun_path` is 108 bytes including the NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;
/// Longest interface name, bytes (IFNAMSIZ - 1).
const MAX_IFNAME_BYTES: usize = 15;
/// Longest IPMI user name, bytes: a longer one silently becomes the null user on some BMCs.
const MAX_IPMI_USER_BYTES: usize = 16;
/// Longest BMC watchdog countdown: 16 bits of 100 ms.
const MAX_IPMI_WATCHDOG: Duration = Duration::from_millis(6553 * 1000);

// ---- the known keys, per section ----

const NODE_KEYS: &[&str] = &["name", "state_dir", "control_socket", "status_group"];
const BITBUCKET_KEYS: &[&str] = &[
    "status_url",
    "command",
    "user",
    "environment",
    "monitor_interval",
    "monitor_timeout",
    "startup_timeout",
    "failures_before_action",
    "stop_timeout",
    "kill_timeout",
    "max_restarts",
    "restart_window",
    "capture_output",
];
const DATABASE_KEYS: &[&str] = &["address", "timeout"];
const WATCHDOG_KEYS: &[&str] = &["device", "timeout", "action", "realtime", "ipmi"];
const WATCHDOG_IPMI_KEYS: &[&str] = &["host", "port", "username", "password_file", "cipher_suite"];
const NOTIFY_KEYS: &[&str] = &["command", "timeout"];
const CLUSTER_KEYS: &[&str] = &[
    "peer",
    "listen",
    "peer_addresses",
    "key_file",
    "heartbeat_interval",
    "peer_timeout",
    "preferred_active",
    "witness",
    "boot_wait",
    "fence_delay",
];
const VIP_KEYS: &[&str] = &["address", "interface", "garp_count", "garp_interval"];
const FENCING_KEYS: &[&str] = &[
    "method",
    "host",
    "port",
    "username",
    "password_file",
    "cipher_suite",
    "action",
    "timeout",
    // method = "redfish" only:
    "system",
    "ca_file",
    "tls_fingerprint",
    "insecure",
    // several devices, tried in order: [[fencing.device]]
    "device",
];
/// The keys of one fence device (`[fencing]` without `device`, or each `[[fencing.device]]`).
const DEVICE_KEYS: &[&str] = &[
    "method",
    "host",
    "port",
    "username",
    "password_file",
    "cipher_suite",
    "system",
    "ca_file",
    "tls_fingerprint",
    "insecure",
];
/// The keys of `[fencing]` that only `method = "redfish"` uses.
const REDFISH_ONLY_KEYS: &[&str] = &["system", "ca_file", "tls_fingerprint", "insecure"];
const HOOKS_KEYS: &[&str] = &["before_start", "after_stop"];
const LOAD_BALANCER_KEYS: &[&str] = &["haproxy_agent"];
const METRICS_KEYS: &[&str] = &["listen", "textfile"];

/// Every section with its keys, for "did you mean" and "belongs in [x]" hints.
const SECTIONS: &[(&str, &[&str])] = &[
    ("node", NODE_KEYS),
    ("bitbucket", BITBUCKET_KEYS),
    ("database", DATABASE_KEYS),
    ("watchdog", WATCHDOG_KEYS),
    ("watchdog.ipmi", WATCHDOG_IPMI_KEYS),
    ("notify", NOTIFY_KEYS),
    ("cluster", CLUSTER_KEYS),
    ("vip", VIP_KEYS),
    ("fencing", FENCING_KEYS),
    ("hooks", HOOKS_KEYS),
    ("load_balancer", LOAD_BALANCER_KEYS),
    ("metrics", METRICS_KEYS),
];

/// Top-level tables (`watchdog.ipmi` lives inside `watchdog`).
const TOP_LEVEL: &[&str] = &[
    "node",
    "bitbucket",
    "database",
    "watchdog",
    "notify",
    "cluster",
    "vip",
    "fencing",
    "hooks",
    "load_balancer",
    "metrics",
];

// ---- the walk ----

type Item<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

/// Whether a zero duration is meaningful for a key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    Refused,
    Allowed,
}

/// One table of the file, with where its header is (for "missing key" problems).
#[derive(Clone, Copy)]
struct Sec<'a, 'i> {
    name: &'static str,
    table: &'a DeTable<'i>,
    header: usize,
}

impl<'a, 'i> Sec<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.table.get(key)
    }
    fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }
}

/// Collects problems while walking the document; every getter returns the value to use (the
/// default when the key is absent or wrong) and records why when wrong.
struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    /// The durations the timing rules relate, as the sections are read.
    times: TimingInputs,
}

/// What the timing rules need, recorded while the sections are read: `None` when the value was
/// invalid (already reported; the rules involving it are then not checked) or its section is
/// absent.
#[derive(Default)]
struct TimingInputs {
    heartbeat_interval: Option<Duration>,
    peer_timeout: Option<Duration>,
    boot_wait: Option<Duration>,
    /// `Some(None)`: not set (derived).
    fence_delay: Option<Option<Duration>>,
    fence_timeout: Option<Duration>,
    stop_timeout: Option<Duration>,
    kill_timeout: Option<Duration>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn report(
        &mut self,
        key: impl Into<String>,
        offset: Option<usize>,
        message: impl Into<String>,
    ) {
        let line = offset.map(|o| self.line_of(o));
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    fn at(&mut self, key: impl Into<String>, item: &Item<'_>, message: impl Into<String>) {
        self.report(key, Some(item.span().start), message);
    }

    fn wrong_type(&mut self, key: String, item: &Item<'_>, expected: &str) {
        let found = describe(item.get_ref());
        self.at(key, item, format!("expected {expected}, found {found}"));
    }

    fn missing(&mut self, sec: Sec<'_, '_>, key: &str, example: &str) {
        self.report(
            sec.key(key),
            Some(sec.header),
            format!(
                "missing: [{}] needs `{key}` (e.g. {key} = {example})",
                sec.name
            ),
        );
    }

    /// A sub-table (`[name]` at the top, `[watchdog.ipmi]` inside `[watchdog]`).
    fn section<'a, 'i>(
        &mut self,
        parent: &'a DeTable<'i>,
        key: &str,
        full_name: &'static str,
    ) -> Option<Sec<'a, 'i>> {
        let item = parent.get(key)?;
        match item.get_ref() {
            DeValue::Table(table) => Some(Sec {
                name: full_name,
                table,
                header: item.span().start,
            }),
            _ => {
                self.wrong_type(
                    full_name.to_string(),
                    item,
                    &format!("a table ([{full_name}])"),
                );
                None
            }
        }
    }

    /// Reports every key of `sec` not in `known`, with a hint where one helps.
    fn unknown_keys(&mut self, sec: Sec<'_, '_>, known: &[&str]) {
        for (key, value) in sec.table.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let what = if value.get_ref().is_table() {
                format!("unknown section [{}.{name}]", sec.name)
            } else {
                format!("unknown key `{name}` in [{}]", sec.name)
            };
            let hint = key_hint(name, sec.name, known);
            self.report(
                sec.key(name),
                Some(key.span().start),
                format!("{what}{hint}"),
            );
        }
    }

    fn top_level_unknowns(&mut self, root: &DeTable<'_>) {
        for (key, value) in root.iter() {
            let name: &str = key.get_ref();
            if TOP_LEVEL.contains(&name) {
                continue;
            }
            let message = if value.get_ref().is_table() {
                let hint = closest(name, TOP_LEVEL)
                    .map(|s| format!("; did you mean [{s}]?"))
                    .unwrap_or_default();
                format!("unknown section [{name}]{hint}")
            } else {
                let home = sections_with_key(name);
                let hint = if home.is_empty() {
                    String::new()
                } else {
                    format!("; `{name}` belongs in {home}")
                };
                format!("key `{name}` outside any section: keys go under a [section] header{hint}")
            };
            self.report(name.to_string(), Some(key.span().start), message);
        }
    }

    fn string(&mut self, sec: Sec<'_, '_>, key: &str) -> Option<(String, Span)> {
        let item = sec.get(key)?;
        match item.get_ref().as_str() {
            Some(s) => Some((s.to_string(), item.span())),
            None => {
                self.wrong_type(sec.key(key), item, "a string");
                None
            }
        }
    }

    /// A string that must be there and not be empty.
    fn required_string(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<(String, Span)> {
        if sec.get(key).is_none() {
            self.missing(sec, key, example);
            return None;
        }
        let (s, span) = self.string(sec, key)?;
        if s.is_empty() {
            self.report(
                sec.key(key),
                Some(span.start),
                format!("must not be empty (e.g. {key} = {example})"),
            );
            return None;
        }
        Some((s, span))
    }

    fn boolean(&mut self, sec: Sec<'_, '_>, key: &str, default: bool) -> bool {
        let Some(item) = sec.get(key) else {
            return default;
        };
        match item.get_ref().as_bool() {
            Some(b) => b,
            None => {
                self.wrong_type(sec.key(key), item, "true or false");
                default
            }
        }
    }

    fn integer(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: i64,
        allowed: RangeInclusive<i64>,
    ) -> i64 {
        let Some(item) = sec.get(key) else {
            return default;
        };
        let DeValue::Integer(int) = item.get_ref() else {
            self.wrong_type(sec.key(key), item, "an integer");
            return default;
        };
        let shown = int.to_string();
        match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if allowed.contains(&n) => n,
            _ => {
                self.at(
                    sec.key(key),
                    item,
                    format!(
                        "{shown} is out of range: must be between {} and {}",
                        allowed.start(),
                        allowed.end()
                    ),
                );
                default
            }
        }
    }

    /// A duration string; returns it and its span (None when defaulted).
    fn duration(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: Duration,
        zero: Zero,
    ) -> (Duration, Option<Span>) {
        let Some(item) = sec.get(key) else {
            return (default, None);
        };
        let text = match item.get_ref() {
            DeValue::String(s) => s,
            DeValue::Integer(int) => {
                self.at(
                    sec.key(key),
                    item,
                    format!("expected a duration string with a unit, found the integer {int} (e.g. \"{int}s\")"),
                );
                return (default, None);
            }
            _ => {
                self.wrong_type(sec.key(key), item, "a duration string such as \"15s\"");
                return (default, None);
            }
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && zero == Zero::Refused => {
                self.at(
                    sec.key(key),
                    item,
                    format!("\"{text}\": must be greater than zero"),
                );
                (default, None)
            }
            Ok(d) => (d, Some(item.span())),
            Err(e) => {
                self.at(sec.key(key), item, e);
                (default, None)
            }
        }
    }

    /// An absolute path (a relative one would depend on the daemon's working directory).
    fn path(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: Option<&str>,
        example: &str,
    ) -> Option<(PathBuf, Span)> {
        let (s, span) = match default {
            Some(default) if sec.get(key).is_none() => return Some((PathBuf::from(default), 0..0)),
            Some(_) => self.string(sec, key)?,
            None => self.required_string(sec, key, example)?,
        };
        if !s.starts_with('/') || s.contains('\0') {
            self.report(
                sec.key(key),
                Some(span.start),
                format!("\"{s}\" is not an absolute path (e.g. {example})"),
            );
            return None;
        }
        Some((PathBuf::from(s), span))
    }

    /// A secret file: required, absolute, and mode 0600 or stricter on disk.
    fn secret_file(&mut self, sec: Sec<'_, '_>, key: &str, example: &str) -> Option<PathBuf> {
        let (path, span) = self.path(sec, key, None, example)?;
        if let Err(e) = bbwd_platform::fs::check_secret_file(&path) {
            self.report(sec.key(key), Some(span.start), e.to_string());
            return None;
        }
        Some(path)
    }

    /// An argument vector: a non-empty array of strings whose first element (the program) is
    /// not empty.
    fn argv(&mut self, key: &str, item: &Item<'_>) -> Option<Vec<String>> {
        let Some(array) = item.get_ref().as_array() else {
            let hint = if item.get_ref().is_str() {
                " (write the program and its arguments as a list: [\"/path/to/program\", \"arg\"])"
            } else {
                ""
            };
            let found = describe(item.get_ref());
            self.at(
                key,
                item,
                format!("expected an array of strings, found {found}{hint}"),
            );
            return None;
        };
        if array.is_empty() {
            self.at(
                key,
                item,
                "empty command: give at least the program, e.g. [\"/path/to/program\"]",
            );
            return None;
        }
        let mut argv = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, element) in array.iter().enumerate() {
            match element.get_ref().as_str() {
                Some(s) if s.contains('\0') => {
                    self.at(
                        key,
                        element,
                        format!("argument {} contains a NUL byte", i + 1),
                    );
                    ok = false;
                }
                Some(s) => argv.push(s.to_string()),
                None => {
                    let found = describe(element.get_ref());
                    self.at(
                        key,
                        element,
                        format!("argument {}: expected a string, found {found}", i + 1),
                    );
                    ok = false;
                }
            }
        }
        if ok && argv[0].is_empty() {
            self.at(key, item, "the program (first element) must not be empty");
            ok = false;
        }
        ok.then_some(argv)
    }

    /// A required argument vector key.
    fn command(&mut self, sec: Sec<'_, '_>, key: &str, example: &str) -> Option<Vec<String>> {
        match sec.get(key) {
            Some(item) => self.argv(&sec.key(key), item),
            None => {
                self.missing(sec, key, example);
                None
            }
        }
    }

    /// A list of argument vectors (`[hooks]`).
    fn argv_list(&mut self, sec: Sec<'_, '_>, key: &str) -> Vec<Vec<String>> {
        let Some(item) = sec.get(key) else {
            return Vec::new();
        };
        let Some(array) = item.get_ref().as_array() else {
            self.wrong_type(
                sec.key(key),
                item,
                "an array of commands, e.g. [[\"/bin/mount\", \"/data\"]]",
            );
            return Vec::new();
        };
        array
            .iter()
            .filter_map(|element| self.argv(&sec.key(key), element))
            .collect()
    }

    /// An `IP:PORT` socket address (port not 0).
    fn socket_addr(&mut self, key: &str, item: &Item<'_>, example: &str) -> Option<SocketAddr> {
        let Some(s) = item.get_ref().as_str() else {
            self.wrong_type(
                key.to_string(),
                item,
                &format!("an \"IP:PORT\" string such as \"{example}\""),
            );
            return None;
        };
        match s.parse::<SocketAddr>() {
            Ok(addr) if addr.port() == 0 => {
                self.at(
                    key,
                    item,
                    format!("\"{s}\": port 0 is not a port the peer can reach"),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.at(
                    key,
                    item,
                    format!("invalid socket address \"{s}\": expected IP:PORT, e.g. \"{example}\" (IPv6: \"[fd00::1]:5405\")"),
                );
                None
            }
        }
    }

    /// A non-empty array of socket addresses.
    fn socket_addrs(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<(Vec<SocketAddr>, Span)> {
        let Some(item) = sec.get(key) else {
            self.missing(sec, key, &format!("[\"{example}\"]"));
            return None;
        };
        let Some(array) = item.get_ref().as_array() else {
            self.wrong_type(
                sec.key(key),
                item,
                &format!("an array of \"IP:PORT\" strings, e.g. [\"{example}\"]"),
            );
            return None;
        };
        if array.is_empty() {
            self.at(
                sec.key(key),
                item,
                format!("empty: give one address per heartbeat link, e.g. [\"{example}\"]"),
            );
            return None;
        }
        if array.len() > MAX_LINKS {
            self.at(
                sec.key(key),
                item,
                format!(
                    "{} addresses: at most {MAX_LINKS} heartbeat links",
                    array.len()
                ),
            );
            return None;
        }
        let mut addrs = Vec::with_capacity(array.len());
        let mut ok = true;
        for element in array.iter() {
            match self.socket_addr(&sec.key(key), element, example) {
                Some(addr) if addrs.contains(&addr) => {
                    self.at(sec.key(key), element, format!("{addr} is listed twice"));
                    ok = false;
                }
                Some(addr) => addrs.push(addr),
                None => ok = false,
            }
        }
        ok.then_some((addrs, item.span()))
    }

    /// `[bitbucket]` etc. as a whole config.
    fn config(&mut self, root: &DeTable<'_>) -> Option<Config> {
        self.top_level_unknowns(root);
        let node = self.node(root);
        let bitbucket = self.bitbucket(root);
        let database = self.database(root);
        let watchdog = self.watchdog(root);
        let notify = self.notify(root);
        // [fencing] before [cluster]: cluster.fence_delay's default is derived from
        // fencing.timeout. (Problems are put in file order afterwards.)
        let fencing = self.fencing(root);
        let cluster = self.cluster(root);
        let vip = self.vip(root);
        let hooks = self.hooks(root);
        let load_balancer = self.load_balancer(root);
        let metrics = self.metrics(root);
        self.cross_section(
            root,
            node.as_ref(),
            cluster.as_ref(),
            watchdog.as_ref(),
            fencing.as_ref(),
        );
        self.timing_rules(root);
        Some(Config {
            node: node?,
            bitbucket: bitbucket?,
            database: database?,
            watchdog: watchdog?,
            notify: notify?,
            cluster: cluster?,
            vip: vip?,
            fencing: fencing?,
            hooks,
            load_balancer: load_balancer?,
            metrics: metrics?,
        })
    }

    /// Checks that span sections. `None` arguments were invalid (already reported) or absent.
    fn cross_section(
        &mut self,
        root: &DeTable<'_>,
        node: Option<&Node>,
        cluster: Option<&Option<Cluster>>,
        watchdog: Option<&Watchdog>,
        fencing: Option<&Option<Fencing>>,
    ) {
        let header = |name: &str| root.get(name).map(|item| item.span().start);
        let cluster_line = header("cluster").map(|o| self.line_of(o));
        if let (Some(cluster_line), Some(lb)) = (cluster_line, header("load_balancer")) {
            self.report(
                "load_balancer",
                Some(lb),
                format!(
                    "[cluster] (line {cluster_line}) and [load_balancer] cannot both be set: a node is \
                     either one of a cold-standby pair or a mirror-farm node; remove one"
                ),
            );
        }
        if cluster_line.is_none() {
            for (name, what) in [
                ("vip", "the virtual IP moves"),
                ("fencing", "the peer is fenced"),
            ] {
                if let Some(offset) = header(name) {
                    self.report(
                        name,
                        Some(offset),
                        format!("[{name}] is only used in pair mode ({what} between the two nodes of [cluster]); add [cluster] or remove [{name}]"),
                    );
                }
            }
        } else {
            if root.get("fencing").is_none() {
                self.report(
                    "fencing",
                    header("cluster"),
                    "pair mode needs [fencing]: the standby takes over only after the peer's BMC has confirmed it is off",
                );
            }
            // `bbwd run` cannot serve a pair without an address to move (clients would not
            // follow a takeover): refused here, so that check-config agrees with run.
            if root.get("vip").is_none() {
                self.report(
                    "vip",
                    header("cluster"),
                    "pair mode needs [vip]: the virtual IP clients use moves to the node that serves",
                );
            }
        }
        if let (Some(node), Some(Some(cluster))) = (node, cluster) {
            if node.name == cluster.peer {
                let offset = root
                    .get("cluster")
                    .and_then(|c| c.get_ref().get("peer"))
                    .map(|item| item.span().start);
                self.report(
                    "cluster.peer",
                    offset,
                    format!("\"{}\" is this node's own name (node.name): name the other node of the pair", cluster.peer),
                );
            }
        }
        if let (Some(watchdog), Some(Some(fencing))) = (watchdog, fencing) {
            if let Some(own) = &watchdog.ipmi {
                let own_bmc = fencing.devices.iter().any(|d| {
                    d.method == "ipmi" && d.lan.host == own.host && d.lan.port == own.port
                });
                if own_bmc {
                    let offset = root
                        .get("fencing")
                        .and_then(|f| f.get_ref().get("host"))
                        .map(|item| item.span().start);
                    self.report(
                        "fencing.host",
                        offset,
                        format!(
                            "{}:{} is this node's own BMC ([watchdog.ipmi]): [fencing] must name the PEER's BMC",
                            own.host, own.port
                        ),
                    );
                }
            }
        }
    }

    fn node(&mut self, root: &DeTable<'_>) -> Option<Node> {
        let Some(sec) = self.section(root, "node", "node") else {
            if root.contains_key("node") {
                return None; // not a table: reported
            }
            return Some(Node {
                name: self.default_node_name()?,
                state_dir: PathBuf::from(DEFAULT_STATE_DIR),
                control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
                status_group: None,
            });
        };
        self.unknown_keys(sec, NODE_KEYS);
        let name = match self.string(sec, "name") {
            Some((name, span)) => match check_name(&name) {
                Ok(()) => Some(name),
                Err(why) => {
                    self.report(sec.key("name"), Some(span.start), why);
                    None
                }
            },
            None if sec.get("name").is_none() => self.default_node_name(),
            None => None,
        };
        let state_dir = self.path(
            sec,
            "state_dir",
            Some(DEFAULT_STATE_DIR),
            "\"/var/lib/bbwd\"",
        );
        let control_socket = self.path(
            sec,
            "control_socket",
            Some(DEFAULT_CONTROL_SOCKET),
            "\"/run/bbwd/control.sock\"",
        );
        if let Some((path, span)) = &control_socket {
            let len = path.as_os_str().len();
            if len > MAX_SOCKET_PATH_BYTES {
                self.report(
                    sec.key("control_socket"),
                    Some(span.start),
                    format!("{len} bytes is too long for a Unix socket path (at most {MAX_SOCKET_PATH_BYTES})"),
                );
                return None;
            }
        }
        let status_group = match self.string(sec, "status_group") {
            Some((g, span)) if g.is_empty() => {
                self.report(
                    sec.key("status_group"),
                    Some(span.start),
                    "must name a group (e.g. \"nagios\") or be left out".to_string(),
                );
                return None;
            }
            Some((g, _)) => Some(g),
            None if sec.get("status_group").is_some() => return None,
            None => None,
        };
        Some(Node {
            name: name?,
            state_dir: state_dir?.0,
            control_socket: control_socket?.0,
            status_group,
        })
    }

    /// The host name, for a config without `node.name`.
    fn default_node_name(&mut self) -> Option<String> {
        let read = match bbwd_platform::fs::read_optional(Path::new(HOSTNAME_FILE)) {
            Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
            Ok(None) => Err(format!("{HOSTNAME_FILE} does not exist")),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok(name) => match check_name(&name) {
                Ok(()) => Some(name),
                Err(why) => {
                    self.report(
                        "node.name",
                        None,
                        format!("not set, and the host name cannot serve: {why}; set [node] name"),
                    );
                    None
                }
            },
            Err(why) => {
                self.report(
                    "node.name",
                    None,
                    format!("not set, and the host name cannot be read ({why}); set [node] name"),
                );
                None
            }
        }
    }

    fn bitbucket(&mut self, root: &DeTable<'_>) -> Option<Bitbucket> {
        let default_command = || {
            DEFAULT_COMMAND
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        let Some(sec) = self.section(root, "bitbucket", "bitbucket") else {
            return (!root.contains_key("bitbucket")).then(|| Bitbucket {
                status_url: DEFAULT_STATUS_URL.to_string(),
                command: default_command(),
                user: None,
                environment: BTreeMap::new(),
                monitor_interval: Duration::from_secs(15),
                monitor_timeout: Duration::from_secs(30),
                startup_timeout: Duration::from_secs(600),
                failures_before_action: 2,
                stop_timeout: DEFAULT_STOP_TIMEOUT,
                kill_timeout: DEFAULT_KILL_TIMEOUT,
                max_restarts: 1,
                restart_window: Duration::from_secs(3600),
                capture_output: true,
            });
        };
        self.unknown_keys(sec, BITBUCKET_KEYS);
        let mut ok = true;
        let status_url = match self.string(sec, "status_url") {
            Some((url, span)) => match check_status_url(&url) {
                Ok(()) => url,
                Err(why) => {
                    self.report(
                        sec.key("status_url"),
                        Some(span.start),
                        format!("\"{url}\": {why}"),
                    );
                    ok = false;
                    url
                }
            },
            None => {
                ok &= sec.get("status_url").is_none();
                DEFAULT_STATUS_URL.to_string()
            }
        };
        let command = match sec.get("command") {
            Some(item) => self.argv(&sec.key("command"), item),
            None => Some(default_command()),
        };
        let user = match self.string(sec, "user") {
            Some((user, span)) => {
                if user.is_empty()
                    || user
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
                {
                    self.report(
                        sec.key("user"),
                        Some(span.start),
                        format!("\"{user}\" is not a user name (e.g. user = \"atlbitbucket\")"),
                    );
                    ok = false;
                }
                Some(user)
            }
            None => {
                ok &= sec.get("user").is_none();
                None
            }
        };
        let environment = self.environment(sec);
        let (monitor_interval, _) = self.duration(
            sec,
            "monitor_interval",
            Duration::from_secs(15),
            Zero::Refused,
        );
        let (monitor_timeout, _) = self.duration(
            sec,
            "monitor_timeout",
            Duration::from_secs(30),
            Zero::Refused,
        );
        let (startup_timeout, _) = self.duration(
            sec,
            "startup_timeout",
            Duration::from_secs(600),
            Zero::Refused,
        );
        let failures_before_action =
            self.integer(sec, "failures_before_action", 2, 1..=1000) as u32;
        let stop_timeout = self.timed(sec, "stop_timeout", DEFAULT_STOP_TIMEOUT, |t| {
            &mut t.stop_timeout
        });
        let kill_timeout = self.timed(sec, "kill_timeout", DEFAULT_KILL_TIMEOUT, |t| {
            &mut t.kill_timeout
        });
        let max_restarts = self.integer(sec, "max_restarts", 1, 0..=1000) as u32;
        let (restart_window, _) = self.duration(
            sec,
            "restart_window",
            Duration::from_secs(3600),
            Zero::Refused,
        );
        let capture_output = self.boolean(sec, "capture_output", true);
        if !ok {
            return None;
        }
        Some(Bitbucket {
            status_url,
            command: command?,
            user,
            environment: environment?,
            monitor_interval,
            monitor_timeout,
            startup_timeout,
            failures_before_action,
            stop_timeout,
            kill_timeout,
            max_restarts,
            restart_window,
            capture_output,
        })
    }

    fn environment(&mut self, sec: Sec<'_, '_>) -> Option<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        let Some(item) = sec.get("environment") else {
            return Some(env);
        };
        let Some(table) = item.get_ref().as_table() else {
            self.wrong_type(sec.key("environment"), item, "a table of strings, e.g. { BITBUCKET_HOME = \"/var/atlassian/application-data/bitbucket\" }");
            return None;
        };
        let mut ok = true;
        for (name, value) in table.iter() {
            let key = format!("{}.environment.{}", sec.name, name.get_ref());
            let name: &str = name.get_ref();
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.at(key.clone(), value, "not a valid environment variable name");
                ok = false;
            }
            match value.get_ref().as_str() {
                Some(v) if v.contains('\0') => {
                    self.at(key, value, "contains a NUL byte");
                    ok = false;
                }
                Some(v) => {
                    env.insert(name.to_string(), v.to_string());
                }
                None => {
                    self.wrong_type(key, value, "a string");
                    ok = false;
                }
            }
        }
        ok.then_some(env)
    }

    /// Outer `None`: invalid (reported); inner `None`: not configured.
    fn database(&mut self, root: &DeTable<'_>) -> Option<Option<Database>> {
        let Some(sec) = self.section(root, "database", "database") else {
            return (!root.contains_key("database")).then_some(None);
        };
        self.unknown_keys(sec, DATABASE_KEYS);
        let address = self.required_string(sec, "address", "\"db.example.com:5432\"");
        let (timeout, _) = self.duration(sec, "timeout", Duration::from_secs(5), Zero::Refused);
        let (address, span) = address?;
        match resolve(&address) {
            Ok(resolved) => Some(Some(Database {
                address,
                resolved,
                timeout,
            })),
            Err(why) => {
                self.report(sec.key("address"), Some(span.start), why);
                None
            }
        }
    }

    fn watchdog(&mut self, root: &DeTable<'_>) -> Option<Watchdog> {
        let Some(sec) = self.section(root, "watchdog", "watchdog") else {
            return (!root.contains_key("watchdog")).then(|| Watchdog {
                device: WatchdogDevice::None,
                timeout: Duration::from_secs(60),
                action: WatchdogAction::Reset,
                realtime: false,
                ipmi: None,
            });
        };
        self.unknown_keys(sec, WATCHDOG_KEYS);
        let mut ok = true;
        let device = match self.string(sec, "device") {
            Some((s, span)) => match s.as_str() {
                "none" => WatchdogDevice::None,
                "ipmi" => WatchdogDevice::Ipmi,
                path if path.starts_with('/') && !path.contains('\0') => {
                    WatchdogDevice::Device(PathBuf::from(path))
                }
                _ => {
                    self.report(
                        sec.key("device"),
                        Some(span.start),
                        format!("\"{s}\": expected \"none\", \"ipmi\" or an absolute device path such as \"/dev/watchdog\""),
                    );
                    ok = false;
                    WatchdogDevice::None
                }
            },
            None => {
                ok &= sec.get("device").is_none();
                WatchdogDevice::None
            }
        };
        let (timeout, timeout_span) =
            self.duration(sec, "timeout", Duration::from_secs(60), Zero::Refused);
        if let Some(span) = timeout_span {
            if timeout < Duration::from_secs(1) {
                self.report(
                    sec.key("timeout"),
                    Some(span.start),
                    "must be at least 1s (watchdogs count in seconds)",
                );
                ok = false;
            } else if device == WatchdogDevice::Ipmi && timeout > MAX_IPMI_WATCHDOG {
                self.report(
                    sec.key("timeout"),
                    Some(span.start),
                    format!(
                        "a BMC watchdog counts at most {}s",
                        MAX_IPMI_WATCHDOG.as_secs()
                    ),
                );
                ok = false;
            }
        }
        let action = match self.string(sec, "action") {
            Some((s, span)) => match s.as_str() {
                "reset" => WatchdogAction::Reset,
                "power_cycle" => WatchdogAction::PowerCycle,
                "power_off" => WatchdogAction::PowerOff,
                _ => {
                    self.report(
                        sec.key("action"),
                        Some(span.start),
                        format!("\"{s}\": expected \"reset\", \"power_cycle\" or \"power_off\""),
                    );
                    ok = false;
                    WatchdogAction::Reset
                }
            },
            None => {
                ok &= sec.get("action").is_none();
                WatchdogAction::Reset
            }
        };
        let realtime = self.boolean(sec, "realtime", false);
        let ipmi = match self.section(sec.table, "ipmi", "watchdog.ipmi") {
            Some(sub) => {
                self.unknown_keys(sub, WATCHDOG_IPMI_KEYS);
                if ok && device != WatchdogDevice::Ipmi {
                    self.report(
                        "watchdog.ipmi",
                        Some(sub.header),
                        "[watchdog.ipmi] is only used with device = \"ipmi\"; set device = \"ipmi\" or remove [watchdog.ipmi]",
                    );
                    ok = false;
                }
                let lan = self.ipmi_lan(sub, "/etc/bbwd/own-bmc.pass", false);
                ok &= lan.is_some();
                lan
            }
            None => {
                ok &= sec.get("ipmi").is_none();
                None
            }
        };
        ok.then_some(Watchdog {
            device,
            timeout,
            action,
            realtime,
            ipmi,
        })
    }

    /// The RMCP+ keys shared by `[watchdog.ipmi]` and `[fencing]` (`redfish`: the same keys
    /// for a Redfish service: port 443 by default, no IPMI limit on the user name).
    fn ipmi_lan(
        &mut self,
        sec: Sec<'_, '_>,
        password_example: &str,
        redfish: bool,
    ) -> Option<IpmiLan> {
        let host = self.required_string(sec, "host", "\"10.0.1.1\"");
        if let Some((host, span)) = &host {
            if host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                self.report(
                    sec.key("host"),
                    Some(span.start),
                    format!("\"{host}\" is not a host name or IP address"),
                );
                return None;
            }
        }
        let default_port = if redfish {
            i64::from(bbwd_platform::redfish::DEFAULT_PORT)
        } else {
            DEFAULT_IPMI_PORT
        };
        let port = self.integer(sec, "port", default_port, 1..=65535) as u16;
        let username = self.required_string(sec, "username", "\"fence\"");
        if let Some((user, span)) = &username {
            if !redfish && user.len() > MAX_IPMI_USER_BYTES {
                self.report(
                    sec.key("username"),
                    Some(span.start),
                    format!(
                        "{} bytes: IPMI user names are at most {MAX_IPMI_USER_BYTES} bytes",
                        user.len()
                    ),
                );
                return None;
            }
        }
        let password_file =
            self.secret_file(sec, "password_file", &format!("\"{password_example}\""));
        let cipher_suite = self.cipher_suite(sec);
        Some(IpmiLan {
            host: host?.0,
            port,
            username: username?.0,
            password_file: password_file?,
            cipher_suite: cipher_suite?,
        })
    }

    /// `cipher_suite`: 3 (default), 17 or "auto"; None (reported) otherwise.
    fn cipher_suite(&mut self, sec: Sec<'_, '_>) -> Option<u8> {
        use bbwd_platform::ipmi::{CIPHER_SUITE, CIPHER_SUITE_17, CIPHER_SUITE_AUTO};
        let Some(item) = sec.get("cipher_suite") else {
            return Some(CIPHER_SUITE);
        };
        let key = sec.key("cipher_suite");
        match item.get_ref() {
            DeValue::String(s) if s.as_ref() == "auto" => Some(CIPHER_SUITE_AUTO),
            DeValue::String(s) => {
                let msg = format!(
                    "\"{s}\": expected 3, 17 or \"auto\" (17 when the BMC lists it, else 3)"
                );
                self.at(key, item, msg);
                None
            }
            DeValue::Integer(int) => match i64::from_str_radix(int.as_str(), int.radix()) {
                Ok(3) => Some(CIPHER_SUITE),
                Ok(17) => Some(CIPHER_SUITE_17),
                Ok(0) => {
                    self.at(key, item, "cipher suite 0 is refused: it authenticates nothing (a BMC accepts any password with it); use 3, 17 or \"auto\"");
                    None
                }
                _ => {
                    let msg = format!("cipher suite {}: bbwd speaks 3 (RAKP-HMAC-SHA1, AES) and 17 (RAKP-HMAC-SHA256, AES); use 3, 17 or \"auto\"", int.as_str());
                    self.at(key, item, msg);
                    None
                }
            },
            _ => {
                self.wrong_type(key, item, "3, 17 or \"auto\"");
                None
            }
        }
    }

    fn notify(&mut self, root: &DeTable<'_>) -> Option<Option<Notify>> {
        let Some(sec) = self.section(root, "notify", "notify") else {
            return (!root.contains_key("notify")).then_some(None);
        };
        self.unknown_keys(sec, NOTIFY_KEYS);
        let command = self.command(sec, "command", "[\"/etc/bbwd/notify.sh\"]");
        let (timeout, _) = self.duration(sec, "timeout", Duration::from_secs(30), Zero::Refused);
        Some(Some(Notify {
            command: command?,
            timeout,
        }))
    }

    fn cluster(&mut self, root: &DeTable<'_>) -> Option<Option<Cluster>> {
        let Some(sec) = self.section(root, "cluster", "cluster") else {
            return (!root.contains_key("cluster")).then_some(None);
        };
        self.unknown_keys(sec, CLUSTER_KEYS);
        let mut ok = true;
        let peer = match self.required_string(sec, "peer", "\"bb2\"") {
            Some((peer, span)) => match check_name(&peer) {
                Ok(()) => Some(peer),
                Err(why) => {
                    self.report(sec.key("peer"), Some(span.start), why);
                    None
                }
            },
            None => None,
        };
        let listen = self.socket_addrs(sec, "listen", "10.0.0.1:5405");
        let peer_addresses = self.socket_addrs(sec, "peer_addresses", "10.0.0.2:5405");
        if let (Some((listen, _)), Some((peers, peers_span))) = (&listen, &peer_addresses) {
            if listen.len() != peers.len() {
                self.report(
                    sec.key("peer_addresses"),
                    Some(peers_span.start),
                    format!(
                        "{} addresses but listen has {}: link i is listen[i] <-> peer_addresses[i], one pair per heartbeat link",
                        peers.len(),
                        listen.len()
                    ),
                );
                ok = false;
            } else {
                for (i, (l, p)) in listen.iter().zip(peers.iter()).enumerate() {
                    if l.is_ipv4() != p.is_ipv4() {
                        self.report(
                            sec.key("peer_addresses"),
                            Some(peers_span.start),
                            format!("link {}: {l} and {p} are not of the same IP family", i + 1),
                        );
                        ok = false;
                    }
                }
            }
        }
        let key_file = self.secret_file(sec, "key_file", "\"/etc/bbwd/cluster.key\"");
        // The relations between these (timing rules R1-R3) are checked in `timing_rules`.
        let heartbeat_interval =
            self.timed(sec, "heartbeat_interval", Duration::from_millis(200), |t| {
                &mut t.heartbeat_interval
            });
        let peer_timeout = self.timed(sec, "peer_timeout", Duration::from_secs(1), |t| {
            &mut t.peer_timeout
        });
        let boot_wait = self.timed(sec, "boot_wait", DEFAULT_BOOT_WAIT, |t| &mut t.boot_wait);
        // No default of its own: derived from fencing.timeout (already read) and peer_timeout.
        let fence_timeout = self.times.fence_timeout.unwrap_or(DEFAULT_FENCE_TIMEOUT);
        let derived = timing::default_fence_delay(fence_timeout, peer_timeout);
        let fence_delay = match sec.get("fence_delay") {
            None => {
                self.times.fence_delay = Some(None);
                derived
            }
            Some(_) => match self.duration(sec, "fence_delay", derived, Zero::Refused) {
                (d, Some(_)) => {
                    self.times.fence_delay = Some(Some(d));
                    d
                }
                (d, None) => d,
            },
        };
        let preferred_active = self.boolean(sec, "preferred_active", false);
        let witness = match self.string(sec, "witness") {
            Some((s, span)) => match s.parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() => Some(ip),
                _ => {
                    self.report(
                        sec.key("witness"),
                        Some(span.start),
                        format!("\"{s}\" is not an IP address (e.g. the router: witness = \"10.0.0.254\")"),
                    );
                    ok = false;
                    None
                }
            },
            None => {
                ok &= sec.get("witness").is_none();
                None
            }
        };
        if !ok {
            return None;
        }
        Some(Some(Cluster {
            peer: peer?,
            listen: listen?.0,
            peer_addresses: peer_addresses?.0,
            key_file: key_file?,
            heartbeat_interval,
            peer_timeout,
            preferred_active,
            witness,
            boot_wait,
            fence_delay,
        }))
    }

    /// A duration of a timing rule: read as [`Checker::duration`] (zero refused) and, when
    /// valid or defaulted, recorded in `self.times` through `slot`.
    fn timed(
        &mut self,
        sec: Sec<'_, '_>,
        key: &str,
        default: Duration,
        slot: impl FnOnce(&mut TimingInputs) -> &mut Option<Duration>,
    ) -> Duration {
        let (value, span) = self.duration(sec, key, default, Zero::Refused);
        if span.is_some() || sec.get(key).is_none() {
            *slot(&mut self.times) = Some(value);
        }
        value
    }

    /// The timing rules of `bbwd_core::timing` (pair mode only), each violation reported on
    /// the line of the key to change (or, when that key is not written, of the other key, or
    /// of the section). Not checked when one of the values is itself invalid (reported).
    fn timing_rules(&mut self, root: &DeTable<'_>) {
        if !root.contains_key("cluster") {
            return;
        }
        let t = &self.times;
        let (
            Some(heartbeat_interval),
            Some(peer_timeout),
            Some(boot_wait),
            Some(fence_delay_set),
            Some(fence_timeout),
        ) = (
            t.heartbeat_interval,
            t.peer_timeout,
            t.boot_wait,
            t.fence_delay,
            t.fence_timeout
                .or((!root.contains_key("fencing")).then_some(DEFAULT_FENCE_TIMEOUT)),
        )
        else {
            return;
        };
        let timings = Timings {
            heartbeat_interval,
            peer_timeout,
            fence_delay: fence_delay_set
                .unwrap_or(timing::default_fence_delay(fence_timeout, peer_timeout)),
            boot_wait,
            fence_timeout,
            stop_timeout: t.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
            kill_timeout: t.kill_timeout.unwrap_or(DEFAULT_KILL_TIMEOUT),
            step_timeout: crate::cluster::STEP_TIMEOUT,
            // Only R5 and the W1 warning use these: R5 at start (`check_at_start`), W1 in
            // `warnings`.
            hardware_watchdog: None,
            systemd_watchdog: None,
        };
        for v in timing::check(&timings) {
            if v.severity != Severity::Refuse {
                continue;
            }
            // A derived fence_delay breaks R2 only when peer_timeout < heartbeat_interval,
            // which R1 already reports: do not blame a key the operator did not write.
            if v.rule == Rule::FenceDelay && fence_delay_set.is_none() {
                continue;
            }
            let offset = key_offset(root, v.key)
                .or_else(|| key_offset(root, v.other_key))
                .or_else(|| section_offset(root, v.key));
            self.report(v.key, offset, v.to_string());
        }
    }

    fn vip(&mut self, root: &DeTable<'_>) -> Option<Option<Vip>> {
        let Some(sec) = self.section(root, "vip", "vip") else {
            return (!root.contains_key("vip")).then_some(None);
        };
        self.unknown_keys(sec, VIP_KEYS);
        let address = match self.required_string(sec, "address", "\"10.0.0.50/24\"") {
            Some((s, span)) => match parse_cidr(&s) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.report(
                        sec.key("address"),
                        Some(span.start),
                        format!("\"{s}\": {why}"),
                    );
                    None
                }
            },
            None => None,
        };
        let interface = match self.required_string(sec, "interface", "\"eth0\"") {
            Some((name, span)) => {
                if name.len() > MAX_IFNAME_BYTES
                    || name.contains(['/', '\0'])
                    || name.chars().any(char::is_whitespace)
                {
                    self.report(
                        sec.key("interface"),
                        Some(span.start),
                        format!("\"{name}\" is not an interface name (at most {MAX_IFNAME_BYTES} bytes, no '/' or spaces)"),
                    );
                    None
                } else {
                    Some(name)
                }
            }
            None => None,
        };
        let garp_count = self.integer(sec, "garp_count", 3, 1..=100) as u32;
        let (garp_interval, _) = self.duration(
            sec,
            "garp_interval",
            Duration::from_millis(200),
            Zero::Allowed,
        );
        let (address, prefix_len) = address?;
        Some(Some(Vip {
            address,
            prefix_len,
            interface: interface?,
            garp_count,
            garp_interval,
        }))
    }

    fn fencing(&mut self, root: &DeTable<'_>) -> Option<Option<Fencing>> {
        let Some(sec) = self.section(root, "fencing", "fencing") else {
            return (!root.contains_key("fencing")).then_some(None);
        };
        self.unknown_keys(sec, FENCING_KEYS);
        let mut ok = true;
        // The devices: `[[fencing.device]]` in order, or the single device of `[fencing]`.
        let devices: Vec<Option<FenceDevice>> = match sec.get("device") {
            None => vec![self.fence_device(sec)],
            Some(item) => {
                for key in DEVICE_KEYS {
                    if let Some(k) = sec.get(key) {
                        self.at(
                            sec.key(key),
                            k,
                            format!("with [[fencing.device]], {key} belongs in each device (only action and timeout stay in [fencing])"),
                        );
                        ok = false;
                    }
                }
                match item.get_ref() {
                    DeValue::Array(list) if !list.is_empty() => list
                        .iter()
                        .map(|d| match d.get_ref() {
                            DeValue::Table(table) => {
                                let dsec = Sec {
                                    name: "fencing.device",
                                    table,
                                    header: d.span().start,
                                };
                                self.unknown_keys(dsec, DEVICE_KEYS);
                                self.fence_device(dsec)
                            }
                            _ => {
                                self.wrong_type(
                                    "fencing.device".to_string(),
                                    d,
                                    "a table ([[fencing.device]])",
                                );
                                None
                            }
                        })
                        .collect(),
                    _ => {
                        self.wrong_type(
                            "fencing.device".to_string(),
                            item,
                            "a non-empty array of tables ([[fencing.device]])",
                        );
                        vec![None]
                    }
                }
            }
        };
        let action = match self.string(sec, "action") {
            Some((a, span)) => match a.as_str() {
                "off" => FenceAction::Off,
                "cycle" => FenceAction::Cycle,
                _ => {
                    self.report(
                        sec.key("action"),
                        Some(span.start),
                        format!("\"{a}\": expected \"off\" or \"cycle\""),
                    );
                    ok = false;
                    FenceAction::Off
                }
            },
            None => {
                ok &= sec.get("action").is_none();
                FenceAction::Off
            }
        };
        let timeout = self.timed(sec, "timeout", DEFAULT_FENCE_TIMEOUT, |t| {
            &mut t.fence_timeout
        });
        if !ok {
            return None;
        }
        let devices: Vec<FenceDevice> = devices.into_iter().collect::<Option<_>>()?;
        let first = devices.first()?.clone();
        Some(Some(Fencing {
            method: first.method,
            lan: first.lan,
            redfish: first.redfish,
            cipher_suite: first.cipher_suite,
            devices,
            action,
            timeout,
        }))
    }

    /// One fence device's keys (`[fencing]` itself, or one `[[fencing.device]]`).
    fn fence_device(&mut self, sec: Sec<'_, '_>) -> Option<FenceDevice> {
        let mut ok = true;
        let method = match self.string(sec, "method") {
            Some((m, _)) if m == "ipmi" || m == "redfish" => m,
            Some((m, span)) => {
                self.report(
                    sec.key("method"),
                    Some(span.start),
                    format!("\"{m}\": expected \"ipmi\" or \"redfish\""),
                );
                ok = false;
                m
            }
            None => {
                ok &= sec.get("method").is_none();
                "ipmi".to_string()
            }
        };
        let is_redfish = method == "redfish";
        let lan = self.ipmi_lan(sec, "/etc/bbwd/peer-bmc.pass", is_redfish);
        let redfish = if is_redfish {
            if sec.get("cipher_suite").is_some() {
                self.report(
                    sec.key("cipher_suite"),
                    sec.get("cipher_suite").map(|i| i.span().start),
                    "cipher_suite is an IPMI key: remove it with method = \"redfish\"",
                );
                ok = false;
            }
            let keys = self.redfish_keys(sec);
            ok &= keys.is_some();
            keys
        } else {
            for key in REDFISH_ONLY_KEYS {
                if let Some(item) = sec.get(key) {
                    self.at(
                        sec.key(key),
                        item,
                        format!("{key} is a Redfish key: it needs method = \"redfish\""),
                    );
                    ok = false;
                }
            }
            None
        };
        if !ok {
            return None;
        }
        // The suite (3, 17 or "auto") is read and checked with the other RMCP+ keys.
        let lan = lan?;
        Some(FenceDevice {
            method,
            cipher_suite: lan.cipher_suite,
            lan,
            redfish,
        })
    }

    /// `system` and the certificate check of `method = "redfish"`: exactly one of `ca_file`
    /// (a readable PEM file of CA certificates), `tls_fingerprint` (`sha256:` and 32 bytes in
    /// hex), `insecure = true`.
    fn redfish_keys(&mut self, sec: Sec<'_, '_>) -> Option<RedfishKeys> {
        let mut ok = true;
        let system = match self.string(sec, "system") {
            Some((s, span)) => {
                if !s.starts_with("/redfish/v1/")
                    || s.chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
                {
                    self.report(
                        sec.key("system"),
                        Some(span.start),
                        format!("\"{s}\": expected the ComputerSystem's path, e.g. \"/redfish/v1/Systems/1\""),
                    );
                    ok = false;
                }
                Some(s)
            }
            None => {
                ok &= sec.get("system").is_none();
                None
            }
        };
        let ca_file = if sec.get("ca_file").is_some() {
            match self.path(sec, "ca_file", None, "\"/etc/bbwd/peer-bmc-ca.pem\"") {
                Some((path, span)) => match bbwd_platform::redfish::read_ca_file(&path) {
                    Ok(_) => Some(path),
                    Err(e) => {
                        self.report(sec.key("ca_file"), Some(span.start), e);
                        ok = false;
                        None
                    }
                },
                None => {
                    ok = false;
                    None
                }
            }
        } else {
            None
        };
        let fingerprint = match self.string(sec, "tls_fingerprint") {
            Some((text, span)) => match bbwd_platform::redfish::parse_fingerprint(&text) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.report(sec.key("tls_fingerprint"), Some(span.start), e);
                    ok = false;
                    None
                }
            },
            None => {
                ok &= sec.get("tls_fingerprint").is_none();
                None
            }
        };
        let insecure = self.boolean(sec, "insecure", false);
        let given = usize::from(sec.get("ca_file").is_some())
            + usize::from(sec.get("tls_fingerprint").is_some())
            + usize::from(insecure);
        if given > 1 {
            let key = if insecure {
                "insecure"
            } else {
                "tls_fingerprint"
            };
            self.report(
                sec.key(key),
                sec.get(key).map(|i| i.span().start),
                "give exactly one of ca_file, tls_fingerprint and insecure = true",
            );
            return None;
        }
        if given == 0 {
            self.report(
                sec.key("ca_file"),
                Some(sec.header),
                "method = \"redfish\" needs the BMC's certificate checked: ca_file = the PEM file of the CA that signed it, or tls_fingerprint = \"sha256:...\" of the certificate itself (openssl x509 -noout -fingerprint -sha256); insecure = true only to accept any certificate",
            );
            return None;
        }
        let tls = match (ca_file, fingerprint) {
            (Some(path), _) => RedfishTls::CaFile(path),
            (None, Some(f)) => RedfishTls::Fingerprint(f),
            (None, None) if insecure => RedfishTls::Insecure,
            (None, None) => return None,
        };
        ok.then_some(RedfishKeys { system, tls })
    }

    fn hooks(&mut self, root: &DeTable<'_>) -> Hooks {
        let Some(sec) = self.section(root, "hooks", "hooks") else {
            return Hooks::default();
        };
        self.unknown_keys(sec, HOOKS_KEYS);
        Hooks {
            before_start: self.argv_list(sec, "before_start"),
            after_stop: self.argv_list(sec, "after_stop"),
        }
    }

    fn load_balancer(&mut self, root: &DeTable<'_>) -> Option<Option<LoadBalancer>> {
        let Some(sec) = self.section(root, "load_balancer", "load_balancer") else {
            return (!root.contains_key("load_balancer")).then_some(None);
        };
        self.unknown_keys(sec, LOAD_BALANCER_KEYS);
        let Some(item) = sec.get("haproxy_agent") else {
            self.missing(sec, "haproxy_agent", "\"0.0.0.0:7777\"");
            return None;
        };
        let haproxy_agent = self.socket_addr(&sec.key("haproxy_agent"), item, "0.0.0.0:7777")?;
        Some(Some(LoadBalancer { haproxy_agent }))
    }

    fn metrics(&mut self, root: &DeTable<'_>) -> Option<Option<Metrics>> {
        let Some(sec) = self.section(root, "metrics", "metrics") else {
            return (!root.contains_key("metrics")).then_some(None);
        };
        self.unknown_keys(sec, METRICS_KEYS);
        let mut ok = true;
        let listen = match sec.get("listen") {
            Some(item) => {
                let addr = self.socket_addr(&sec.key("listen"), item, "127.0.0.1:9776");
                ok &= addr.is_some();
                addr
            }
            None => None,
        };
        let textfile = match sec.get("textfile") {
            Some(_) => {
                let p = self.path(
                    sec,
                    "textfile",
                    None,
                    "\"/var/lib/prometheus/node-exporter/bbwd.prom\"",
                );
                match p {
                    Some((path, span)) if path.extension().is_none_or(|e| e != "prom") => {
                        // node_exporter's textfile collector reads `*.prom` files only.
                        self.report(
                            sec.key("textfile"),
                            Some(span.start),
                            format!(
                                "\"{}\": node_exporter's textfile collector reads only files \
                                 ending in .prom (e.g. /var/lib/prometheus/node-exporter/bbwd.prom)",
                                path.display()
                            ),
                        );
                        ok = false;
                        None
                    }
                    Some((path, _)) => Some(path),
                    None => {
                        ok = false;
                        None
                    }
                }
            }
            None => None,
        };
        if ok && listen.is_none() && textfile.is_none() {
            self.report(
                "metrics",
                Some(sec.header),
                "[metrics] needs `listen` (e.g. listen = \"127.0.0.1:9776\") or `textfile` \
                 (e.g. textfile = \"/var/lib/prometheus/node-exporter/bbwd.prom\"), or both; \
                 remove the section to switch metrics off",
            );
            return None;
        }
        ok.then_some(Some(Metrics { listen, textfile }))
    }
}

/// Where `section.key` (dotted, one level) is written in the file, if it is.
fn key_offset(root: &DeTable<'_>, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.split_once('.')?;
    let item = root.get(section)?.get_ref().get(key)?;
    Some(item.span().start)
}

/// Where the section of `section.key` begins, if it is written.
fn section_offset(root: &DeTable<'_>, dotted: &str) -> Option<usize> {
    let section = dotted.split_once('.').map_or(dotted, |(s, _)| s);
    root.get(section).map(|item| item.span().start)
}

/// How a value is named in a "found ..." message.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string \"{s}\""),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        other => format!("a {}", other.type_str()),
    }
}

/// A node or peer name: 1..=64 bytes of letters, digits, `-`, `_`, `.`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("\"{name}\" is longer than {MAX_NAME_BYTES} bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "\"{name}\": use only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Checks `http://HOST[:PORT]/PATH` without resolving HOST (that happens at start-up; the
/// host check phase, `crate::hostcheck`, warns about a name that does not resolve now). The one
/// parser of the URL is `bbwd_core::status_url`, which the probe uses too.
fn check_status_url(url: &str) -> Result<(), String> {
    bbwd_core::status_url::StatusUrl::parse(url).map(|_| ())
}

/// `IP/PREFIX`, prefix 1..=32 (IPv4) or 1..=128 (IPv6).
fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((ip, prefix)) = s.split_once('/') else {
        return Err("expected IP/PREFIX, e.g. \"10.0.0.50/24\" or \"fd00::50/64\"".to_string());
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("\"{ip}\" is not an IP address"))?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a service address"));
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if (1..=max).contains(&p) && prefix.bytes().all(|b| b.is_ascii_digit()) => {
            Ok((ip, p))
        }
        _ => Err(format!("prefix \"{prefix}\" must be between 1 and {max}")),
    }
}

/// Resolves `host:port` once (the database check connects to the result).
fn resolve(address: &str) -> Result<SocketAddr, String> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(format!(
            "\"{address}\": expected HOST:PORT, e.g. \"db.example.com:5432\""
        ));
    }
    match address.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| {
            format!("\"{address}\" resolves to no address; fix the name or use an IP address")
        }),
        Err(e) => Err(format!(
            "cannot resolve \"{address}\" ({e}); fix the name or use an IP address"
        )),
    }
}

/// A hint for an unknown key: the sections that have it, or the closest known key of the same
/// section, or the list of keys the section knows.
fn key_hint(name: &str, section: &str, known: &[&str]) -> String {
    let home = sections_with_key(name);
    if !home.is_empty() {
        return format!("; `{name}` belongs in {home}");
    }
    match closest(name, known) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => format!("; [{section}] knows: {}", known.join(", ")),
    }
}

/// `[a], [b]`: the sections that have `key`.
fn sections_with_key(key: &str) -> String {
    let homes: Vec<String> = SECTIONS
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(s, _)| format!("[{s}]"))
        .collect();
    homes.join(" or ")
}

/// The candidate nearest to `word` by edit distance, if near enough to be a typo.
fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = match word.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), by chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j]; rows kept: two back, previous, current.
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use bbwd_testkit::TempDir;

    /// Secret files in a test's directory.
    trait Secrets {
        /// Writes a secret file with `mode` and returns its path as a string.
        fn secret(&self, name: &str, mode: u32) -> String;
    }

    impl Secrets for TempDir {
        fn secret(&self, name: &str, mode: u32) -> String {
            self.file(name, b"secret\n", mode).display().to_string()
        }
    }

    const ORIGIN: &str = "/etc/bbwd/bbwd.toml";

    fn ok(text: &str) -> Config {
        match parse(text, Path::new(ORIGIN)) {
            Ok(config) => config,
            Err(problems) => panic!("unexpected problems:\n{problems}"),
        }
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, Path::new(ORIGIN)) {
            Ok(config) => panic!("expected problems, parsed {config:?}"),
            Err(p) => {
                assert_eq!(p.path, Path::new(ORIGIN));
                p.problems
            }
        }
    }

    /// The one problem of `text`, which must be about `key` on `line` and mention `needle`.
    fn one_problem(text: &str, key: &str, line: Option<usize>, needle: &str) {
        let found = problems(text);
        assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
        let p = &found[0];
        assert_eq!(p.key, key, "{p:?}");
        assert_eq!(p.line, line, "{p:?}");
        assert!(
            p.message.contains(needle),
            "{:?} does not contain {needle:?}",
            p.message
        );
    }

    fn host_name() -> String {
        std::fs::read_to_string(HOSTNAME_FILE)
            .unwrap()
            .trim()
            .to_string()
    }

    // ---- parse_duration ----

    #[test]
    fn durations_in_every_unit_and_combination() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("15s", Duration::from_secs(15)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("0s", Duration::ZERO),
            ("168h", MAX_DURATION),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        let cases = [
            ("15x", "expected an integer followed by a unit"),
            ("15", "missing unit after 15"),
            ("", "expected an integer"),
            ("s", "expected an integer"),
            ("1.5s", "no fractions"),
            ("-1s", "expected an integer"),
            (" 15s", "expected an integer"),
            ("15 s", "expected an integer"),
            ("30s1m", "largest to smallest"),
            ("1s1s", "largest to smallest"),
            ("169h", "too long"),
            ("99999999999999999999s", "too long"),
            ("18446744073709551615h", "too long"),
        ];
        for (text, needle) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid duration \"{text}\": ")),
                "{err}"
            );
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    // ---- defaults and complete configs ----

    #[test]
    fn empty_config_is_a_single_node_with_documented_defaults() {
        let c = ok("");
        assert_eq!(c.mode(), Mode::Single);
        assert_eq!(c.node.name, host_name());
        assert_eq!(c.node.state_dir, Path::new("/var/lib/bbwd"));
        assert_eq!(c.node.control_socket, Path::new("/run/bbwd/control.sock"));
        let b = &c.bitbucket;
        assert_eq!(b.status_url, "http://127.0.0.1:7990/status");
        assert_eq!(
            b.command,
            ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"]
        );
        assert_eq!(b.user, None);
        assert!(b.environment.is_empty());
        assert_eq!(b.monitor_interval, Duration::from_secs(15));
        assert_eq!(b.monitor_timeout, Duration::from_secs(30));
        assert_eq!(b.startup_timeout, Duration::from_secs(600));
        assert_eq!(b.failures_before_action, 2);
        assert_eq!(b.stop_timeout, Duration::from_secs(120));
        assert_eq!(b.kill_timeout, Duration::from_secs(10));
        assert_eq!(b.max_restarts, 1);
        assert_eq!(b.restart_window, Duration::from_secs(3600));
        assert!(b.capture_output);
        assert_eq!(c.database, None);
        assert_eq!(
            c.watchdog,
            Watchdog {
                device: WatchdogDevice::None,
                timeout: Duration::from_secs(60),
                action: WatchdogAction::Reset,
                realtime: false,
                ipmi: None,
            }
        );
        assert_eq!(c.notify, None);
        assert_eq!(c.cluster, None);
        assert_eq!(c.vip, None);
        assert_eq!(c.fencing, None);
        assert_eq!(c.hooks, Hooks::default());
        assert_eq!(c.load_balancer, None);
    }

    #[test]
    fn empty_sections_are_the_same_as_absent_ones() {
        let with_sections = ok("[node]\n[bitbucket]\n[watchdog]\n[hooks]\n");
        assert_eq!(with_sections, ok(""));
    }

    #[test]
    fn minimal_config_with_a_name() {
        let c = ok("[node]\nname = \"bb1\"\n");
        assert_eq!(c.node.name, "bb1");
        assert_eq!(c.bitbucket.monitor_interval, Duration::from_secs(15));
    }

    /// SPEC.md's config block, verbatim but for the places marked `@...@`.
    const SPEC_EXAMPLE: &str = r#"[node]
name = "bb1"
state_dir = "/var/lib/bbwd"                 # persistent state: maintenance flag, event log
control_socket = "/run/bbwd/control.sock"   # mode 0600, root only

[bitbucket]
status_url = "http://127.0.0.1:7990/status"
command = ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"]  # bbwd starts and supervises it
user = "atlbitbucket"          # optional: run the command as this user
environment = { BITBUCKET_HOME = "/var/atlassian/application-data/bitbucket" }
monitor_interval = "15s"       # seed: not more often than every 15 s in production
monitor_timeout = "30s"        # seed: first check after start can be slow
startup_timeout = "10m"        # how long STARTING (503) is accepted after a start
failures_before_action = 2     # consecutive failed checks before correcting (GC pauses)
stop_timeout = "120s"          # graceful stop (SIGTERM to the process group), then SIGKILL
kill_timeout = "10s"           # after SIGKILL; still not gone => the node cannot correct itself
max_restarts = 1               # restarts within restart_window before escalating
restart_window = "1h"

[database]                     # optional
address = "@DB@"   # TCP connect check
timeout = "5s"

[watchdog]
device = "@DEVICE@"       # or "ipmi" (the BMC's watchdog), or "none"
timeout = "60s"
action = "reset"               # ipmi only: reset | power_cycle | power_off
realtime = false               # mlockall + real-time priority for the loop

[watchdog.ipmi]                # ipmi only; omit to use the local /dev/ipmi0
host = "10.0.1.1"              # this node's own BMC over RMCP+
port = 623
username = "watchdog"
password_file = "@OWN@"    # must be mode 0600

[notify]
command = ["/etc/bbwd/notify.sh"]  # run on every event; BBWD_EVENT, BBWD_NODE, BBWD_DETAIL in env

# ---- pair mode ----
[cluster]
peer = "bb2"
listen = ["10.0.0.1:5405", "192.168.100.1:5405"]          # one per heartbeat link
peer_addresses = ["10.0.0.2:5405", "192.168.100.2:5405"]
key_file = "@KEY@"                        # shared secret, must be mode 0600
heartbeat_interval = "200ms"
peer_timeout = "1s"
preferred_active = true        # this node wins a fence race and starts active on a cold boot
                               # (exactly one node of a pair; both = a reported misconfiguration)
witness = "10.0.0.254"         # optional: reachable => I am not the isolated one
boot_wait = "30s"              # a booting node waits this long to hear its peer before fencing it

[vip]
address = "10.0.0.50/24"       # IPv4 or IPv6
interface = "eth0"
garp_count = 3
garp_interval = "200ms"

[fencing]                      # how to fence the PEER
method = "ipmi"
host = "10.0.1.2"
port = 623
username = "fence"
password_file = "@PEER@"   # must be mode 0600
cipher_suite = 3               # ipmi: RMCP+ (lanplus) 3 | 17 | "auto" (17, else 3); 0 is refused
action = "off"                 # off | cycle
timeout = "10s"

[hooks]                        # extra ordered steps, e.g. DRBD promote + mount
before_start = [["/sbin/drbdadm", "primary", "bitbucket"], ["/bin/mount", "/var/atlassian"]]
after_stop   = [["/bin/umount", "/var/atlassian"], ["/sbin/drbdadm", "secondary", "bitbucket"]]

# ---- any mode ----
[metrics]                      # optional: Prometheus
listen = "127.0.0.1:9776"      # GET /metrics, text exposition format
textfile = "/var/lib/prometheus/node-exporter/bbwd.prom"   # optional: node_exporter textfile collector

# ---- mirror-farm node ----
[load_balancer]
haproxy_agent = "0.0.0.0:7777"  # HAProxy agent-check port: "up", "drain", "down", "maint"
"#;

    /// The SPEC example with the secret files in `dir`, the database on loopback (no DNS in a
    /// test) and the given watchdog device.
    fn spec_example(dir: &TempDir, device: &str) -> String {
        SPEC_EXAMPLE
            .replace("@DB@", "127.0.0.1:5432")
            .replace("@DEVICE@", device)
            .replace("@OWN@", &dir.secret("own-bmc.pass", 0o600))
            .replace("@PEER@", &dir.secret("peer-bmc.pass", 0o600))
            .replace("@KEY@", &dir.secret("cluster.key", 0o600))
    }

    /// Removes the `[load_balancer]` section (the last one) from the SPEC example.
    fn without_load_balancer(text: &str) -> String {
        let cut = text.find("# ---- mirror-farm node ----").unwrap();
        text[..cut].to_string()
    }

    #[test]
    fn spec_example_as_a_pair_with_the_bmc_watchdog() {
        let dir = TempDir::new("spec-pair");
        let text = without_load_balancer(&spec_example(&dir, "ipmi"));
        let c = ok(&text);
        assert_eq!(c.mode(), Mode::Pair);
        assert_eq!(c.node.name, "bb1");
        assert_eq!(c.bitbucket.user.as_deref(), Some("atlbitbucket"));
        assert_eq!(
            c.bitbucket
                .environment
                .get("BITBUCKET_HOME")
                .map(String::as_str),
            Some("/var/atlassian/application-data/bitbucket")
        );
        assert_eq!(c.bitbucket.restart_window, Duration::from_secs(3600));
        let db = c.database.as_ref().unwrap();
        assert_eq!(db.address, "127.0.0.1:5432");
        assert_eq!(db.resolved, "127.0.0.1:5432".parse().unwrap());
        assert_eq!(db.timeout, Duration::from_secs(5));
        assert_eq!(c.watchdog.device, WatchdogDevice::Ipmi);
        assert_eq!(c.watchdog.action, WatchdogAction::Reset);
        let own = c.watchdog.ipmi.as_ref().unwrap();
        assert_eq!(
            (own.host.as_str(), own.port, own.username.as_str()),
            ("10.0.1.1", 623, "watchdog")
        );
        assert_eq!(own.password_file, dir.path().join("own-bmc.pass"));
        let notify = c.notify.as_ref().unwrap();
        assert_eq!(notify.command, ["/etc/bbwd/notify.sh"]);
        assert_eq!(notify.timeout, Duration::from_secs(30));
        let cl = c.cluster.as_ref().unwrap();
        assert_eq!(cl.peer, "bb2");
        assert_eq!(
            cl.listen,
            [
                "10.0.0.1:5405".parse().unwrap(),
                "192.168.100.1:5405".parse().unwrap()
            ]
        );
        assert_eq!(
            cl.peer_addresses,
            [
                "10.0.0.2:5405".parse().unwrap(),
                "192.168.100.2:5405".parse().unwrap()
            ]
        );
        assert_eq!(cl.key_file, dir.path().join("cluster.key"));
        assert_eq!(cl.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(cl.peer_timeout, Duration::from_secs(1));
        assert!(cl.preferred_active);
        assert_eq!(cl.witness, Some("10.0.0.254".parse().unwrap()));
        assert_eq!(cl.boot_wait, Duration::from_secs(30));
        assert_eq!(cl.fence_delay, Duration::from_secs(11));
        let vip = c.vip.as_ref().unwrap();
        assert_eq!(
            (vip.address, vip.prefix_len),
            ("10.0.0.50".parse().unwrap(), 24)
        );
        assert_eq!((vip.interface.as_str(), vip.garp_count), ("eth0", 3));
        assert_eq!(vip.garp_interval, Duration::from_millis(200));
        let f = c.fencing.as_ref().unwrap();
        assert_eq!(f.method, "ipmi");
        assert_eq!(
            (f.lan.host.as_str(), f.lan.port, f.lan.username.as_str()),
            ("10.0.1.2", 623, "fence")
        );
        assert_eq!(f.lan.password_file, dir.path().join("peer-bmc.pass"));
        assert_eq!(
            (f.cipher_suite, f.action, f.timeout),
            (3, FenceAction::Off, Duration::from_secs(10))
        );
        assert_eq!(c.hooks.before_start.len(), 2);
        assert_eq!(
            c.hooks.before_start[0],
            ["/sbin/drbdadm", "primary", "bitbucket"]
        );
        assert_eq!(
            c.hooks.after_stop[1],
            ["/sbin/drbdadm", "secondary", "bitbucket"]
        );
        assert_eq!(c.load_balancer, None);
        assert_eq!(
            c.metrics,
            Some(Metrics {
                listen: Some("127.0.0.1:9776".parse().unwrap()),
                textfile: Some(PathBuf::from("/var/lib/prometheus/node-exporter/bbwd.prom")),
            })
        );
    }

    /// As written, SPEC's block mixes what cannot go together (it lists every key): exactly
    /// those two contradictions are reported, on their lines, and nothing else.
    #[test]
    fn spec_example_verbatim_reports_only_its_two_contradictions() {
        let dir = TempDir::new("spec-verbatim");
        let text = spec_example(&dir, "/dev/watchdog");
        let found = problems(&text);
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.starts_with(needle))
                .map(|i| i + 1)
        };
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].key, "watchdog.ipmi");
        assert_eq!(found[0].line, line_of("[watchdog.ipmi]"));
        assert!(found[0]
            .message
            .contains("only used with device = \"ipmi\""));
        assert_eq!(found[1].key, "load_balancer");
        assert_eq!(found[1].line, line_of("[load_balancer]"));
        assert!(found[1].message.contains(&format!(
            "[cluster] (line {})",
            line_of("[cluster]").unwrap()
        )));
    }

    #[test]
    fn mirror_farm_node() {
        let c = ok("[node]\nname = \"m1\"\n[load_balancer]\nhaproxy_agent = \"0.0.0.0:7777\"\n");
        assert_eq!(c.mode(), Mode::Mirror);
        assert_eq!(
            c.load_balancer.unwrap().haproxy_agent,
            "0.0.0.0:7777".parse().unwrap()
        );
    }

    #[test]
    fn ipv6_vip_heartbeat_and_status_url() {
        let dir = TempDir::new("ipv6");
        let text = format!(
            "[node]\nname = \"bb1\"\n[bitbucket]\nstatus_url = \"http://[::1]:7990/status\"\n\
             [cluster]\npeer = \"bb2\"\nlisten = [\"[fd00::1]:5405\"]\npeer_addresses = [\"[fd00::2]:5405\"]\n\
             key_file = \"{}\"\n[vip]\naddress = \"fd00::50/64\"\ninterface = \"eth0\"\n\
             [fencing]\nhost = \"fd00:1::2\"\nusername = \"fence\"\npassword_file = \"{}\"\n",
            dir.secret("k", 0o600),
            dir.secret("p", 0o400)
        );
        let c = ok(&text);
        assert_eq!(c.vip.as_ref().unwrap().prefix_len, 64);
        assert!(c.vip.as_ref().unwrap().address.is_ipv6());
        assert_eq!(
            c.cluster.as_ref().unwrap().listen[0],
            "[fd00::1]:5405".parse().unwrap()
        );
        // Defaults of the pair sections.
        let cl = c.cluster.unwrap();
        assert!(!cl.preferred_active);
        assert_eq!(
            (cl.heartbeat_interval, cl.peer_timeout),
            (Duration::from_millis(200), Duration::from_secs(1))
        );
        let f = c.fencing.unwrap();
        assert_eq!(
            (f.method.as_str(), f.lan.port, f.cipher_suite, f.action),
            ("ipmi", 623, 3, FenceAction::Off)
        );
        assert_eq!(f.timeout, Duration::from_secs(10));
    }

    // ---- the example file shipped to operators ----

    const EXAMPLE: &str = include_str!("../../../examples/bbwd.toml");

    #[test]
    fn shipped_example_parses_as_a_single_node() {
        let c = ok(EXAMPLE);
        assert_eq!(c.mode(), Mode::Single);
        assert_eq!(c.node.name, host_name());
        assert_eq!(
            c.watchdog.device,
            WatchdogDevice::Device(PathBuf::from("/dev/watchdog"))
        );
        assert_eq!(c.bitbucket.user.as_deref(), Some("atlbitbucket"));
    }

    /// Every switched-off line (`#key = ...`, `#[section]`) of the example, switched on: all its
    /// keys are known and well-formed. What remains are only the problems of switching on
    /// everything at once on a machine that is not a configured node.
    #[test]
    fn shipped_example_with_everything_switched_on_has_only_expected_problems() {
        let enabled: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[') => {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            enabled.contains("\n[cluster]\n") && enabled.contains("\nhaproxy_agent ="),
            "{enabled}"
        );
        let found = problems(&enabled);
        for p in &found {
            let expected = match p.key.as_str() {
                // Secret files that do not exist here.
                "watchdog.ipmi.password_file" | "cluster.key_file" | "fencing.password_file" => {
                    p.message.contains("No such file")
                }
                // No DNS in a test sandbox (and no db.example.com anywhere).
                "database.address" => p.message.contains("cannot resolve"),
                "watchdog.ipmi" => p.message.contains("only used with device = \"ipmi\""),
                "load_balancer" => p.message.contains("cannot both be set"),
                // The Redfish keys, documented beside the example's method = "ipmi".
                "fencing.system"
                | "fencing.ca_file"
                | "fencing.tls_fingerprint"
                | "fencing.insecure" => p.message.contains("needs method = \"redfish\""),
                _ => false,
            };
            assert!(expected, "unexpected problem in the example: {p}");
        }
        // The node-name line is switched on too: it must be valid.
        assert!(!found.iter().any(|p| p.key.starts_with("node")));
    }

    // ---- one test per class of problem ----

    #[test]
    fn unknown_section_suggests_the_closest() {
        one_problem(
            "[bitbucet]\nuser = \"x\"\n",
            "bitbucet",
            Some(1),
            "unknown section [bitbucet]; did you mean [bitbucket]?",
        );
        one_problem(
            "[frobnicate]\n",
            "frobnicate",
            Some(1),
            "unknown section [frobnicate]",
        );
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        one_problem(
            "[bitbucket]\nmonitor_intervall = \"15s\"\n",
            "bitbucket.monitor_intervall",
            Some(2),
            "unknown key `monitor_intervall` in [bitbucket]; did you mean `monitor_interval`?",
        );
        one_problem(
            "[node]\n\nnmae = \"bb1\"\n",
            "node.nmae",
            Some(3),
            "did you mean `name`?",
        );
        // Nothing close: list what the section knows.
        one_problem(
            "[database]\naddress = \"127.0.0.1:5432\"\nzzz = 1\n",
            "database.zzz",
            Some(3),
            "knows: address, timeout",
        );
    }

    #[test]
    fn key_in_the_wrong_section_says_where_it_belongs() {
        one_problem(
            "[bitbucket]\npeer_timeout = \"1s\"\n",
            "bitbucket.peer_timeout",
            Some(2),
            "`peer_timeout` belongs in [cluster]",
        );
        one_problem("name = \"bb1\"\n", "name", Some(1), "outside any section");
        one_problem(
            "[watchdog.foo]\n",
            "watchdog.foo",
            Some(1),
            "unknown section [watchdog.foo]",
        );
    }

    #[test]
    fn wrong_types() {
        one_problem(
            "[bitbucket]\nmax_restarts = \"1\"\n",
            "bitbucket.max_restarts",
            Some(2),
            "expected an integer, found the string \"1\"",
        );
        one_problem(
            "[watchdog]\nrealtime = \"yes\"\n",
            "watchdog.realtime",
            Some(2),
            "expected true or false",
        );
        one_problem(
            "[bitbucket]\nstatus_url = 7990\n",
            "bitbucket.status_url",
            Some(2),
            "expected a string, found the integer 7990",
        );
        one_problem("node = 1\n", "node", Some(1), "expected a table ([node])");
        one_problem(
            "[bitbucket]\ncommand = \"/bin/true\"\n",
            "bitbucket.command",
            Some(2),
            "as a list",
        );
        one_problem(
            "[bitbucket]\ncommand = [\"/bin/echo\", 1]\n",
            "bitbucket.command",
            Some(2),
            "argument 2: expected a string",
        );
        one_problem(
            "[bitbucket]\nenvironment = { A = 1 }\n",
            "bitbucket.environment.A",
            Some(2),
            "expected a string",
        );
        one_problem(
            "[bitbucket]\nfailures_before_action = 2.5\n",
            "bitbucket.failures_before_action",
            Some(2),
            "found a float",
        );
    }

    #[test]
    fn bad_durations_name_the_key_and_line() {
        let found = problems("[bitbucket]\nmonitor_interval = \"15x\"\n");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "bitbucket.monitor_interval (line 2): invalid duration \"15x\": expected an integer followed by a unit \
             (ms, s, m, h), e.g. \"250ms\", \"15s\", \"10m\", \"1m30s\""
        );
        one_problem(
            "[bitbucket]\nstop_timeout = 120\n",
            "bitbucket.stop_timeout",
            Some(2),
            "found the integer 120 (e.g. \"120s\")",
        );
        one_problem(
            "[bitbucket]\nkill_timeout = \"0s\"\n",
            "bitbucket.kill_timeout",
            Some(2),
            "must be greater than zero",
        );
        one_problem(
            "[database]\naddress = \"127.0.0.1:5432\"\ntimeout = \"0ms\"\n",
            "database.timeout",
            Some(3),
            "greater than zero",
        );
        one_problem(
            "[watchdog]\ntimeout = \"500ms\"\n",
            "watchdog.timeout",
            Some(2),
            "at least 1s",
        );
        one_problem(
            "[watchdog]\ndevice = \"ipmi\"\ntimeout = \"2h\"\n",
            "watchdog.timeout",
            Some(3),
            "at most 6553s",
        );
    }

    #[test]
    fn zero_garp_interval_is_allowed() {
        let dir = TempDir::new("garp");
        let text = format!(
            "[cluster]\npeer = \"bb2\"\nlisten = [\"10.0.0.1:5405\"]\npeer_addresses = [\"10.0.0.2:5405\"]\n\
             key_file = \"{}\"\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\ngarp_interval = \"0ms\"\n\
             [fencing]\nhost = \"10.0.1.2\"\nusername = \"fence\"\npassword_file = \"{}\"\n[node]\nname = \"bb1\"\n",
            dir.secret("k", 0o600),
            dir.secret("p", 0o600)
        );
        assert_eq!(ok(&text).vip.unwrap().garp_interval, Duration::ZERO);
    }

    #[test]
    fn out_of_range_numbers() {
        one_problem(
            "[bitbucket]\nfailures_before_action = 0\n",
            "bitbucket.failures_before_action",
            Some(2),
            "0 is out of range: must be between 1 and 1000",
        );
        one_problem(
            "[bitbucket]\nmax_restarts = -1\n",
            "bitbucket.max_restarts",
            Some(2),
            "-1 is out of range",
        );
        one_problem(
            "[bitbucket]\nmax_restarts = 99999999999999999999\n",
            "bitbucket.max_restarts",
            Some(2),
            "99999999999999999999 is out of range",
        );
        let dir = TempDir::new("range");
        let text = format!(
            "[watchdog]\ndevice = \"ipmi\"\n[watchdog.ipmi]\nhost = \"h\"\nport = 70000\n\
             username = \"u\"\npassword_file = \"{}\"\n",
            dir.secret("own.pass", 0o600)
        );
        one_problem(
            &text,
            "watchdog.ipmi.port",
            Some(5),
            "70000 is out of range",
        );
    }

    #[test]
    fn empty_commands_refused() {
        one_problem(
            "[bitbucket]\ncommand = []\n",
            "bitbucket.command",
            Some(2),
            "empty command",
        );
        one_problem(
            "[bitbucket]\ncommand = [\"\", \"-fg\"]\n",
            "bitbucket.command",
            Some(2),
            "program (first element) must not be empty",
        );
        one_problem(
            "[notify]\ncommand = []\n",
            "notify.command",
            Some(2),
            "empty command",
        );
        one_problem(
            "[notify]\ntimeout = \"5s\"\n",
            "notify.command",
            Some(1),
            "missing: [notify] needs `command`",
        );
        one_problem(
            "[hooks]\n\nbefore_start = [[\"/bin/true\"], []]\n",
            "hooks.before_start",
            Some(3),
            "empty command",
        );
        one_problem(
            "[hooks]\nafter_stop = [\"/bin/umount\"]\n",
            "hooks.after_stop",
            Some(2),
            "expected an array of strings, found the string",
        );
    }

    #[test]
    fn bad_status_urls() {
        let cases = [
            ("https://127.0.0.1:8443/status", "https is not supported"),
            ("HTTPS://bb/status", "https is not supported"),
            ("ftp://127.0.0.1/status", "expected http://HOST[:PORT]/PATH"),
            ("127.0.0.1:7990/status", "expected http://HOST[:PORT]/PATH"),
            ("http://127.0.0.1:7990", "missing path"),
            ("http://:7990/status", "missing host"),
            ("http://127.0.0.1:0/status", "not a port"),
            ("http://127.0.0.1:99999/status", "not a port"),
            ("http://127.0.0.1:+80/status", "not a port"),
            ("http://::1:7990/status", "must be in brackets"),
            ("http://[::1/status", "unclosed '['"),
            ("http://[zz::1]:7990/status", "not an IPv6 address"),
            ("http://user@bb:7990/status", "user@"),
            ("http://bb:7990/status#x", "fragment"),
            ("http://bb b:7990/status", "spaces"),
            ("http://bb_1:7990/status", "not a host name"),
        ];
        for (url, needle) in cases {
            one_problem(
                &format!("[bitbucket]\nstatus_url = \"{url}\"\n"),
                "bitbucket.status_url",
                Some(2),
                needle,
            );
        }
        for url in [
            "http://localhost/status",
            "http://bb1.example.com:7990/status?x=1",
            "http://[::1]/status",
            "http://10.0.0.5:7990/",
        ] {
            assert_eq!(
                ok(&format!("[bitbucket]\nstatus_url = \"{url}\"\n"))
                    .bitbucket
                    .status_url,
                url
            );
        }
    }

    #[test]
    fn metrics_section() {
        let c = ok("[metrics]\nlisten = \"[::1]:9776\"\n");
        let m = c.metrics.unwrap();
        assert_eq!(m.listen, Some("[::1]:9776".parse().unwrap()));
        assert_eq!(m.textfile, None);
        let c = ok("[metrics]\ntextfile = \"/run/bbwd.prom\"\n");
        assert_eq!(c.metrics.unwrap().listen, None);
        assert_eq!(ok("").metrics, None);
        for (text, key, line, needle) in [
            (
                "[metrics]\nlisten = \"localhost:9776\"\n",
                "metrics.listen",
                Some(2),
                "invalid socket address \"localhost:9776\"",
            ),
            (
                "[metrics]\nlisten = \"127.0.0.1\"\n",
                "metrics.listen",
                Some(2),
                "expected IP:PORT",
            ),
            (
                "[metrics]\nlisten = 9776\n",
                "metrics.listen",
                Some(2),
                "expected an \"IP:PORT\" string",
            ),
            (
                "[metrics]\nlisten = \"127.0.0.1:0\"\n",
                "metrics.listen",
                Some(2),
                "port 0",
            ),
            (
                "[metrics]\ntextfile = \"bbwd.prom\"\n",
                "metrics.textfile",
                Some(2),
                "not an absolute path",
            ),
            (
                "[metrics]\ntextfile = \"/var/lib/node-exporter/bbwd.txt\"\n",
                "metrics.textfile",
                Some(2),
                "ending in .prom",
            ),
            ("\n[metrics]\n", "metrics", Some(2), "needs `listen`"),
            (
                "[metrics]\nlisten = \"127.0.0.1:9776\"\nlistn = \"x\"\n",
                "metrics.listn",
                Some(3),
                "did you mean `listen`?",
            ),
            (
                "[metric]\nlisten = \"127.0.0.1:9776\"\n",
                "metric",
                Some(1),
                "did you mean [metrics]?",
            ),
            (
                "[metrics]\nhaproxy_agent = \"0.0.0.0:7777\"\nlisten = \"127.0.0.1:9776\"\n",
                "metrics.haproxy_agent",
                Some(2),
                "belongs in [load_balancer]",
            ),
        ] {
            one_problem(text, key, line, needle);
        }
    }

    #[test]
    fn bad_socket_addresses() {
        one_problem(
            "[load_balancer]\nhaproxy_agent = \"localhost:7777\"\n",
            "load_balancer.haproxy_agent",
            Some(2),
            "invalid socket address \"localhost:7777\": expected IP:PORT",
        );
        one_problem(
            "[load_balancer]\nhaproxy_agent = \"0.0.0.0\"\n",
            "load_balancer.haproxy_agent",
            Some(2),
            "invalid socket address",
        );
        one_problem(
            "[load_balancer]\nhaproxy_agent = \"0.0.0.0:0\"\n",
            "load_balancer.haproxy_agent",
            Some(2),
            "port 0",
        );
        one_problem(
            "[load_balancer]\n",
            "load_balancer.haproxy_agent",
            Some(1),
            "missing",
        );
    }

    /// A valid pair config, with `extra` lines added to `[cluster]`, and `sections` appended
    /// (then a `[vip]` at the end, which pair mode needs, unless `sections` has one).
    fn pair(dir: &TempDir, cluster_extra: &str, sections: &str) -> String {
        let vip = if sections.contains("[vip]") {
            ""
        } else {
            "\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n"
        };
        format!(
            "[node]\nname = \"bb1\"\n[cluster]\npeer = \"bb2\"\nkey_file = \"{}\"\n{cluster_extra}\
             [fencing]\nhost = \"10.0.1.2\"\nusername = \"fence\"\npassword_file = \"{}\"\n{sections}{vip}",
            dir.secret("cluster.key", 0o600),
            dir.secret("peer.pass", 0o600)
        )
    }

    const LINKS: &str = "listen = [\"10.0.0.1:5405\"]\npeer_addresses = [\"10.0.0.2:5405\"]\n";

    #[test]
    fn cluster_link_problems() {
        let dir = TempDir::new("links");
        // Lines: 1 [node], 2 name, 3 [cluster], 4 peer, 5 key_file, 6.. extra.
        one_problem(
            &pair(&dir, "listen = [\"10.0.0.1:5405\", \"192.168.0.1:5405\"]\npeer_addresses = [\"10.0.0.2:5405\"]\n", ""),
            "cluster.peer_addresses",
            Some(7),
            "1 addresses but listen has 2",
        );
        one_problem(
            &pair(
                &dir,
                "listen = [\"10.0.0.1:5405\"]\npeer_addresses = [\"[fd00::2]:5405\"]\n",
                "",
            ),
            "cluster.peer_addresses",
            Some(7),
            "not of the same IP family",
        );
        one_problem(
            &pair(
                &dir,
                "listen = []\npeer_addresses = [\"10.0.0.2:5405\"]\n",
                "",
            ),
            "cluster.listen",
            Some(6),
            "empty",
        );
        let found = problems(&pair(
            &dir,
            "listen = [\"10.0.0.1\"]\npeer_addresses = [\"10.0.0.2:5405\", \"10.0.0.2:5405\"]\n",
            "",
        ));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(
            (found[0].key.as_str(), found[0].line),
            ("cluster.listen", Some(6))
        );
        assert_eq!(
            (found[1].key.as_str(), found[1].line),
            ("cluster.peer_addresses", Some(7))
        );
        assert!(found[1].message.contains("listed twice"));
        one_problem(
            &pair(&dir, "peer_addresses = [\"10.0.0.2:5405\"]\n", ""),
            "cluster.listen",
            Some(3),
            "missing: [cluster] needs `listen`",
        );
    }

    /// Timing rule R1 (`bbwd_core::timing`): peer_timeout >= 3 × heartbeat_interval.
    #[test]
    fn peer_timeout_must_cover_three_heartbeats() {
        let dir = TempDir::new("timeouts");
        let extra = format!("{LINKS}heartbeat_interval = \"1s\"\npeer_timeout = \"2999ms\"\n");
        one_problem(
            &pair(&dir, &extra, ""),
            "cluster.peer_timeout",
            Some(9),
            "cluster.peer_timeout = 2999ms must be at least 3 × cluster.heartbeat_interval = 3 × 1s = 3s (R1): one or two lost",
        );
        // Only heartbeat_interval given: the default peer_timeout (1s) is too short for it;
        // reported at the line of the key that is written. The derived fence_delay is not
        // blamed as well (R2 follows from R1 for it).
        let extra = format!("{LINKS}heartbeat_interval = \"2s\"\n");
        one_problem(
            &pair(&dir, &extra, ""),
            "cluster.peer_timeout",
            Some(8),
            "cluster.peer_timeout = 1s must be at least 3 × cluster.heartbeat_interval = 3 × 2s",
        );
        let c = ok(&pair(
            &dir,
            &format!("{LINKS}heartbeat_interval = \"100ms\"\npeer_timeout = \"300ms\"\n"),
            "",
        ));
        assert_eq!(c.cluster.unwrap().peer_timeout, Duration::from_millis(300));
    }

    #[test]
    fn boot_wait_and_fence_delay_defaults() {
        let dir = TempDir::new("timing-defaults");
        let c = ok(&pair(&dir, LINKS, ""));
        let cl = c.cluster.as_ref().unwrap();
        assert_eq!(cl.boot_wait, Duration::from_secs(30));
        // fencing.timeout (10s) + peer_timeout (1s).
        assert_eq!(cl.fence_delay, Duration::from_secs(11));
        // Derived from the values given, in whatever order the sections come.
        let text = format!(
            "[node]\nname = \"bb1\"\n[fencing]\nhost = \"10.0.1.2\"\nusername = \"fence\"\n\
             password_file = \"{}\"\ntimeout = \"20s\"\n[cluster]\npeer = \"bb2\"\nkey_file = \"{}\"\n\
             {LINKS}peer_timeout = \"3s\"\nboot_wait = \"1m\"\n\
             [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
            dir.secret("p", 0o600),
            dir.secret("k", 0o600)
        );
        let cl = ok(&text).cluster.unwrap();
        assert_eq!(
            (cl.fence_delay, cl.boot_wait),
            (Duration::from_secs(23), Duration::from_secs(60))
        );
        let extra = format!("{LINKS}fence_delay = \"15s\"\nboot_wait = \"5s\"\n");
        let cl = ok(&pair(&dir, &extra, "")).cluster.unwrap();
        assert_eq!(
            (cl.fence_delay, cl.boot_wait),
            (Duration::from_secs(15), Duration::from_secs(5))
        );
    }

    /// Timing rule R2: fence_delay >= fencing.timeout + heartbeat_interval, refused naming both.
    #[test]
    fn fence_delay_must_cover_the_peers_whole_fence_attempt() {
        let dir = TempDir::new("fence-delay");
        // Boundary: 10s + 200ms is accepted, a millisecond less is not.
        let at = format!("{LINKS}fence_delay = \"10200ms\"\n");
        assert_eq!(
            ok(&pair(&dir, &at, "")).cluster.unwrap().fence_delay,
            Duration::from_millis(10_200)
        );
        let below = format!("{LINKS}fence_delay = \"10199ms\"\n");
        one_problem(
            &pair(&dir, &below, ""),
            "cluster.fence_delay",
            Some(8),
            "cluster.fence_delay = 10199ms must be at least fencing.timeout + cluster.heartbeat_interval = 10s + 200ms = 10200ms (R2)",
        );
        // A longer fencing.timeout breaks a fence_delay that was fine: both keys named.
        let found = problems(&pair(
            &dir,
            &format!("{LINKS}fence_delay = \"12s\"\n"),
            "timeout = \"30s\"\n",
        ));
        assert_eq!(found.len(), 1, "{found:#?}");
        let text = found[0].to_string();
        assert!(
            text.starts_with("cluster.fence_delay (line 8): ")
                && text.contains("fencing.timeout + cluster.heartbeat_interval = 30s + 200ms"),
            "{text}"
        );
    }

    /// Timing rule R3: boot_wait >= peer_timeout.
    #[test]
    fn boot_wait_must_cover_a_peer_timeout() {
        let dir = TempDir::new("boot-wait");
        let at = format!("{LINKS}peer_timeout = \"5s\"\nboot_wait = \"5s\"\n");
        assert!(parse(&pair(&dir, &at, ""), Path::new(ORIGIN)).is_ok());
        let below = format!("{LINKS}peer_timeout = \"5s\"\nboot_wait = \"4999ms\"\n");
        one_problem(
            &pair(&dir, &below, ""),
            "cluster.boot_wait",
            Some(9),
            "cluster.boot_wait = 4999ms must be at least cluster.peer_timeout = 5s (R3)",
        );
        // boot_wait not written (default 30s): reported at peer_timeout's line.
        let long = format!("{LINKS}peer_timeout = \"31s\"\n");
        one_problem(
            &pair(&dir, &long, ""),
            "cluster.boot_wait",
            Some(8),
            "cluster.boot_wait = 30s must be at least cluster.peer_timeout = 31s",
        );
    }

    #[test]
    fn timing_rules_are_not_checked_on_invalid_values_or_outside_pair_mode() {
        let dir = TempDir::new("timing-invalid");
        // The invalid duration is the one problem: no cascade into R2.
        let extra = format!("{LINKS}fence_delay = \"soon\"\n");
        one_problem(
            &pair(&dir, &extra, ""),
            "cluster.fence_delay",
            Some(8),
            "invalid duration \"soon\"",
        );
        let extra = format!("{LINKS}boot_wait = \"0s\"\n");
        one_problem(
            &pair(&dir, &extra, ""),
            "cluster.boot_wait",
            Some(8),
            "must be greater than zero",
        );
        // A single node with a long kill_timeout and no watchdog: nothing to say.
        let c = ok("[node]\nname = \"bb1\"\n[bitbucket]\nkill_timeout = \"10m\"\n");
        assert_eq!(timings(&c, None), None);
        assert!(warnings(&c).is_empty());
        assert!(check_at_start(&c, Path::new(ORIGIN), Some(Duration::from_secs(1))).is_ok());
    }

    /// Timing rule R5 (at `bbwd run`): WatchdogSec > 2 × watchdog.timeout in pair mode with a
    /// hardware watchdog; the shipped unit's value passes with the default timeout.
    #[test]
    fn systemd_watchdog_must_leave_the_reset_to_the_hardware_in_pair_mode() {
        let dir = TempDir::new("r5");
        let with_dog = pair(&dir, LINKS, "[watchdog]\ndevice = \"/dev/watchdog\"\n");
        let c = ok(&with_dog);
        let origin = Path::new(ORIGIN);
        let unit = include_str!("../../../systemd/bbwd.service");
        let shipped = unit
            .lines()
            .find_map(|l| l.strip_prefix("WatchdogSec="))
            .map(|v| parse_duration(v).unwrap());
        assert!(
            check_at_start(&c, origin, shipped).is_ok(),
            "the shipped unit's WatchdogSec ({shipped:?}) with the default watchdog.timeout"
        );
        assert!(check_at_start(&c, origin, Some(Duration::from_millis(120_001))).is_ok());
        assert!(
            check_at_start(&c, origin, None).is_ok(),
            "not under systemd"
        );
        let refused = check_at_start(&c, origin, Some(Duration::from_secs(120))).unwrap_err();
        assert_eq!(refused.problems.len(), 1, "{refused}");
        let line = refused.to_string();
        assert!(
            line.starts_with("/etc/bbwd/bbwd.toml: watchdog.timeout: watchdog.timeout = 60s")
                && line.contains("WatchdogSec = 120s")
                && line.contains("drop-in"),
            "{line}"
        );
        // The BMC watchdog counts too.
        let bmc = ok(&pair(
            &dir,
            LINKS,
            "[watchdog]\ndevice = \"ipmi\"\ntimeout = \"10s\"\n",
        ));
        assert!(check_at_start(&bmc, origin, Some(Duration::from_secs(20))).is_err());
        assert!(check_at_start(&bmc, origin, Some(Duration::from_secs(21))).is_ok());
        // No hardware watchdog: R5 has nothing to order, but W1 warns (and refuses nothing).
        let none = ok(&pair(&dir, LINKS, ""));
        assert!(check_at_start(&none, origin, Some(Duration::from_secs(1))).is_ok());
        let w = warnings(&none);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "watchdog.device");
        assert!(w[0].message.contains("(W1)"), "{}", w[0]);
        assert!(warnings(&c).is_empty());
    }

    #[test]
    fn cipher_suite_zero_refused() {
        let dir = TempDir::new("cipher");
        one_problem(
            &pair(&dir, LINKS, "cipher_suite = 0\n"),
            "fencing.cipher_suite",
            Some(12),
            "cipher suite 0 is refused",
        );
        one_problem(
            &pair(&dir, LINKS, "cipher_suite = 256\n"),
            "fencing.cipher_suite",
            Some(12),
            "cipher suite 256: bbwd speaks 3",
        );
        let suite = |extra: &str| ok(&pair(&dir, LINKS, extra)).fencing.unwrap().cipher_suite;
        assert_eq!(suite(""), 3, "the default stays 3");
        assert_eq!(suite("cipher_suite = 3\n"), 3);
        assert_eq!(suite("cipher_suite = 17\n"), 17);
        assert_eq!(
            suite("cipher_suite = \"auto\"\n"),
            bbwd_platform::ipmi::CIPHER_SUITE_AUTO
        );
    }

    #[test]
    fn cipher_suites_other_than_3_17_auto_are_refused_naming_the_key() {
        let dir = TempDir::new("cipher-other");
        for (value, says) in [
            ("1", "cipher suite 1: bbwd speaks 3"),
            ("6", "use 3, 17 or \"auto\""),
            ("\"17\"", "\"17\": expected 3, 17 or \"auto\""),
            ("\"best\"", "\"best\": expected 3, 17 or \"auto\""),
            ("true", "expected 3, 17 or \"auto\", found"),
        ] {
            one_problem(
                &pair(&dir, LINKS, &format!("cipher_suite = {value}\n")),
                "fencing.cipher_suite",
                Some(12),
                says,
            );
        }
        // [watchdog.ipmi] takes the same key.
        let pw = dir.secret("wd.pass", 0o600);
        let text = |v: &str| {
            format!(
                "[watchdog]\ndevice = \"ipmi\"\n[watchdog.ipmi]\nhost = \"10.0.1.1\"\nusername = \"wd\"\npassword_file = \"{pw}\"\n{v}"
            )
        };
        let c = ok(&text("cipher_suite = \"auto\"\n"));
        assert_eq!(
            c.watchdog.ipmi.unwrap().cipher_suite,
            bbwd_platform::ipmi::CIPHER_SUITE_AUTO
        );
        assert_eq!(ok(&text("")).watchdog.ipmi.unwrap().cipher_suite, 3);
        one_problem(
            &text("cipher_suite = 2\n"),
            "watchdog.ipmi.cipher_suite",
            Some(7),
            "cipher suite 2: bbwd speaks 3",
        );
    }

    /// A CA certificate (P-256, self-signed) for the `ca_file` checks: data, never trusted.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBkTCCATegAwIBAgIUB4EODe8jOB8DgQEJR+VgTRutlUswCgYIKoZIzj0EAwIw\n\
HjEcMBoGA1UEAwwTYmJ3ZCBjb25maWcgdGVzdCBDQTAeFw0yNjEyMDQyMDIzMTJa\n\
Fw0zNjEyMDEyMDIzMTJaMB4xHDAaBgNVBAMME2Jid2QgY29uZmlnIHRlc3QgQ0Ew\n\
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQNSu0v3M/hu+7Lomx8EuMo4kV7bD99\n\
dFaRcmvElsj39B1rXtN3iAbsnH4TeY7j666qcNehAtwBsXRNgfTpBSbZo1MwUTAd\n\
BgNVHQ4EFgQU60Ax/Gyayrum/SZ8ag1zAQ7tri4wHwYDVR0jBBgwFoAU60Ax/Gya\n\
yrum/SZ8ag1zAQ7tri4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF\n\
AiEAtzORmC/2DMelsuwYLCyhyGrIRtJ2qyCT9K+LMutr76YCIEAZ4w5oEju6BSII\n\
t+h8RlXtLvUB/0zX7TsGjndYo2kC\n\
-----END CERTIFICATE-----\n\
";

    /// `method = "redfish"`: the TLS check is required and exactly one; each key's value is
    /// checked (a readable PEM CA file, a sha256 fingerprint, a /redfish/v1/ path); the IPMI
    /// and Redfish keys stay with their method; port 443 by default; insecure is a warning.
    #[test]
    fn redfish_keys_checked() {
        let dir = TempDir::new("redfish");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, TEST_CA_PEM).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let rf = |extra: &str| pair(&dir, LINKS, &format!("method = \"redfish\"\n{extra}"));
        let pin = format!("tls_fingerprint = \"sha256:{}\"\n", "ab".repeat(32));
        // Lines: 8 [fencing], 12 method, 13.. extra.
        one_problem(
            &rf(""),
            "fencing.ca_file",
            Some(8),
            "needs the BMC's certificate checked",
        );
        one_problem(
            &rf(&format!("ca_file = \"{}\"\n", not_pem.display())),
            "fencing.ca_file",
            Some(13),
            "not a PEM certificate file",
        );
        one_problem(
            &rf("ca_file = \"/nonexistent/ca.pem\"\n"),
            "fencing.ca_file",
            Some(13),
            "No such file",
        );
        one_problem(
            &rf("tls_fingerprint = \"AB:CD\"\n"),
            "fencing.tls_fingerprint",
            Some(13),
            "expected \"sha256:\"",
        );
        one_problem(
            &rf("tls_fingerprint = \"sha256:ABCD\"\n"),
            "fencing.tls_fingerprint",
            Some(13),
            "64 hex digits",
        );
        one_problem(
            &rf(&format!("ca_file = \"{}\"\n{pin}", ca.display())),
            "fencing.tls_fingerprint",
            Some(14),
            "exactly one of ca_file, tls_fingerprint and insecure",
        );
        one_problem(
            &rf(&format!("{pin}insecure = true\n")),
            "fencing.insecure",
            Some(14),
            "exactly one",
        );
        one_problem(
            &rf(&format!("{pin}system = \"Systems/1\"\n")),
            "fencing.system",
            Some(14),
            "ComputerSystem's path",
        );
        one_problem(
            &rf(&format!("{pin}cipher_suite = 3\n")),
            "fencing.cipher_suite",
            Some(14),
            "IPMI key",
        );
        one_problem(
            &pair(&dir, LINKS, &pin),
            "fencing.tls_fingerprint",
            Some(12),
            "needs method = \"redfish\"",
        );

        // Valid: a CA file, a pin, or insecure (then a warning naming the key).
        let c = ok(&rf(&format!(
            "ca_file = \"{}\"\nsystem = \"/redfish/v1/Systems/abc\"\n",
            ca.display()
        )));
        let f = c.fencing.unwrap();
        assert_eq!((f.method.as_str(), f.lan.port), ("redfish", 443));
        let r = f.redfish.unwrap();
        assert_eq!(r.tls, RedfishTls::CaFile(ca.clone()));
        assert_eq!(r.system.as_deref(), Some("/redfish/v1/Systems/abc"));
        let c = ok(&rf(&format!("{pin}port = 8443\n")));
        let f = c.fencing.as_ref().unwrap();
        assert_eq!(f.lan.port, 8443);
        assert_eq!(
            f.redfish.as_ref().unwrap().tls,
            RedfishTls::Fingerprint([0xab; 32])
        );
        assert!(warnings(&c).iter().all(|w| w.key != "fencing.insecure"));
        let c = ok(&rf("insecure = true\n"));
        assert_eq!(
            c.fencing.as_ref().unwrap().redfish.as_ref().unwrap().tls,
            RedfishTls::Insecure
        );
        let w = warnings(&c);
        assert!(
            w.iter()
                .any(|w| w.key == "fencing.insecure" && w.message.contains("NOT verified")),
            "{w:?}"
        );
        // Redfish user names are not bound by IPMI's 16 bytes.
        let long_user = rf(&pin).replace(
            "username = \"fence\"",
            "username = \"a-very-long-user-name\"",
        );
        assert_eq!(
            ok(&long_user).fencing.unwrap().lan.username,
            "a-very-long-user-name"
        );
    }

    /// `[[fencing.device]]`: several devices in order, each with the keys of a single
    /// `[fencing]`; action and timeout stay in `[fencing]`; device keys there are refused.
    #[test]
    fn fence_devices_are_listed_in_order() {
        let dir = TempDir::new("devices");
        let pw = dir.secret("peer2.pass", 0o600);
        let key = dir.secret("cluster.key", 0o600);
        let pin = format!("tls_fingerprint = \"sha256:{}\"", "ab".repeat(32));
        let text = |top: &str, devices: &str| {
            format!(
                "[node]\nname = \"bb1\"\n[cluster]\npeer = \"bb2\"\nkey_file = \"{key}\"\n{LINKS}\
                 [fencing]\n{top}timeout = \"20s\"\n{devices}\
                 [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n"
            )
        };
        let two = format!(
            "[[fencing.device]]\nmethod = \"redfish\"\nhost = \"10.0.1.2\"\nusername = \"fence\"\n\
             password_file = \"{pw}\"\n{pin}\n\
             [[fencing.device]]\nhost = \"10.0.2.2\"\nusername = \"fence\"\npassword_file = \"{pw}\"\n"
        );
        let c = ok(&text("", &two));
        let f = c.fencing.unwrap();
        assert_eq!(f.devices.len(), 2);
        assert_eq!(
            (f.devices[0].method.as_str(), f.devices[0].lan.port),
            ("redfish", 443)
        );
        assert_eq!(
            (
                f.devices[1].method.as_str(),
                f.devices[1].lan.port,
                f.devices[1].cipher_suite
            ),
            ("ipmi", 623, 3)
        );
        // The first device is also the single-device view.
        assert_eq!(
            (f.method.as_str(), f.lan.host.as_str()),
            ("redfish", "10.0.1.2")
        );
        assert_eq!(f.timeout, Duration::from_secs(20));
        // The single form is one device.
        let single = ok(&pair(&dir, LINKS, "")).fencing.unwrap();
        assert_eq!(single.devices.len(), 1);
        assert_eq!(single.devices[0].lan, single.lan);
        // Device keys beside the list: refused, naming the key (line 9: [fencing] is 8).
        one_problem(
            &text("host = \"10.0.9.9\"\n", &two),
            "fencing.host",
            Some(9),
            "belongs in each device",
        );
        // Each device is checked like [fencing]: a Redfish device without its TLS check.
        let bad = format!(
            "[[fencing.device]]\nmethod = \"redfish\"\nhost = \"10.0.1.2\"\nusername = \"fence\"\n\
             password_file = \"{pw}\"\n"
        );
        one_problem(
            &text("", &bad),
            "fencing.device.ca_file",
            Some(10),
            "needs the BMC's certificate checked",
        );
        one_problem(
            &text("", &format!("{two}bogus = 1\n")),
            "fencing.device.bogus",
            Some(20),
            "unknown key",
        );
    }

    #[test]
    fn fencing_keys_checked() {
        let dir = TempDir::new("fencing");
        one_problem(
            &pair(&dir, LINKS, "method = \"ipmilan\"\n"),
            "fencing.method",
            Some(12),
            "expected \"ipmi\" or \"redfish\"",
        );
        one_problem(
            &pair(&dir, LINKS, "action = \"reboot\"\n"),
            "fencing.action",
            Some(12),
            "expected \"off\" or \"cycle\"",
        );
        one_problem(
            &pair(&dir, LINKS, "username = \"a-very-long-user-name\"\n"),
            "",
            Some(12),
            "duplicate key",
        );
        let long_user = pair(&dir, LINKS, "").replace(
            "username = \"fence\"",
            "username = \"a-very-long-user-name\"",
        );
        one_problem(&long_user, "fencing.username", Some(10), "at most 16 bytes");
        assert_eq!(
            ok(&pair(&dir, LINKS, "action = \"cycle\"\n"))
                .fencing
                .unwrap()
                .action,
            FenceAction::Cycle
        );
    }

    #[test]
    fn vip_address_must_be_ip_slash_prefix() {
        let dir = TempDir::new("vip");
        for (address, needle) in [
            ("10.0.0.50", "expected IP/PREFIX"),
            ("10.0.0.50/33", "between 1 and 32"),
            ("10.0.0.50/0", "between 1 and 32"),
            ("fd00::50/129", "between 1 and 128"),
            ("bb-vip/24", "not an IP address"),
            ("0.0.0.0/24", "cannot be a service address"),
        ] {
            let text = pair(
                &dir,
                LINKS,
                &format!("[vip]\naddress = \"{address}\"\ninterface = \"eth0\"\n"),
            );
            one_problem(&text, "vip.address", Some(13), needle);
        }
        let text = pair(
            &dir,
            LINKS,
            "[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"a-much-too-long-if\"\n",
        );
        one_problem(&text, "vip.interface", Some(14), "not an interface name");
        let text = pair(&dir, LINKS, "[vip]\naddress = \"10.0.0.50/24\"\n");
        one_problem(
            &text,
            "vip.interface",
            Some(12),
            "missing: [vip] needs `interface`",
        );
        let text = pair(
            &dir,
            LINKS,
            "[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\ngarp_count = 0\n",
        );
        one_problem(&text, "vip.garp_count", Some(15), "between 1 and 100");
    }

    #[test]
    fn watchdog_device_and_action() {
        one_problem(
            "[watchdog]\ndevice = \"watchdog0\"\n",
            "watchdog.device",
            Some(2),
            "expected \"none\", \"ipmi\" or an absolute device path",
        );
        one_problem(
            "[watchdog]\naction = \"explode\"\n",
            "watchdog.action",
            Some(2),
            "expected \"reset\", \"power_cycle\" or \"power_off\"",
        );
        let c = ok("[watchdog]\ndevice = \"/dev/watchdog1\"\n");
        assert_eq!(
            c.watchdog.device,
            WatchdogDevice::Device(PathBuf::from("/dev/watchdog1"))
        );
        let c = ok("[watchdog]\ndevice = \"ipmi\"\naction = \"power_cycle\"\nrealtime = true\n");
        assert_eq!(
            (c.watchdog.device, c.watchdog.action, c.watchdog.realtime),
            (WatchdogDevice::Ipmi, WatchdogAction::PowerCycle, true)
        );
        assert_eq!(c.watchdog.ipmi, None, "no [watchdog.ipmi]: the local BMC");
    }

    #[test]
    fn watchdog_ipmi_only_with_device_ipmi() {
        let dir = TempDir::new("wd-ipmi");
        let text = format!(
            "[watchdog]\ndevice = \"none\"\n\n[watchdog.ipmi]\nhost = \"10.0.1.1\"\nusername = \"wd\"\npassword_file = \"{}\"\n",
            dir.secret("own.pass", 0o600)
        );
        one_problem(
            &text,
            "watchdog.ipmi",
            Some(4),
            "only used with device = \"ipmi\"",
        );
        // Without a [watchdog] header at all: device is the default, none.
        let text = format!(
            "[watchdog.ipmi]\nhost = \"10.0.1.1\"\nusername = \"wd\"\npassword_file = \"{}\"\n",
            dir.secret("own.pass", 0o600)
        );
        one_problem(
            &text,
            "watchdog.ipmi",
            Some(1),
            "only used with device = \"ipmi\"",
        );
    }

    #[test]
    fn cluster_and_load_balancer_together_refused() {
        let dir = TempDir::new("both");
        let text = pair(
            &dir,
            LINKS,
            "[load_balancer]\nhaproxy_agent = \"0.0.0.0:7777\"\n",
        );
        one_problem(
            &text,
            "load_balancer",
            Some(12),
            "[cluster] (line 3) and [load_balancer] cannot both be set",
        );
    }

    #[test]
    fn pair_sections_need_cluster_and_cluster_needs_fencing() {
        one_problem(
            "[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
            "vip",
            Some(1),
            "only used in pair mode",
        );
        let dir = TempDir::new("needs-fencing");
        let text = format!(
            "[node]\nname = \"bb1\"\n[cluster]\npeer = \"bb2\"\n{LINKS}key_file = \"{}\"\n\
             [vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
            dir.secret("k", 0o600)
        );
        one_problem(&text, "fencing", Some(3), "pair mode needs [fencing]");
        // And [vip]: `bbwd run` cannot serve a pair without an address to move, so check-config
        // refuses it too (it once said valid, and run exited 1).
        let text = pair(&dir, LINKS, "[watchdog]\n").replace(
            "\n[vip]\naddress = \"10.0.0.50/24\"\ninterface = \"eth0\"\n",
            "",
        );
        one_problem(&text, "vip", Some(3), "pair mode needs [vip]");
    }

    #[test]
    fn peer_is_not_this_node_and_fencing_is_not_this_bmc() {
        let dir = TempDir::new("self");
        let text = pair(&dir, LINKS, "").replace("peer = \"bb2\"", "peer = \"bb1\"");
        one_problem(&text, "cluster.peer", Some(4), "this node's own name");
        let text = format!(
            "{}[watchdog]\ndevice = \"ipmi\"\n[watchdog.ipmi]\nhost = \"10.0.1.2\"\nusername = \"wd\"\npassword_file = \"{}\"\n",
            pair(&dir, LINKS, ""),
            dir.secret("own.pass", 0o600)
        );
        one_problem(&text, "fencing.host", Some(9), "this node's own BMC");
    }

    #[test]
    fn witness_must_be_an_ip_address() {
        let dir = TempDir::new("witness");
        one_problem(
            &pair(&dir, &format!("{LINKS}witness = \"router\"\n"), ""),
            "cluster.witness",
            Some(8),
            "not an IP address",
        );
        let c = ok(&pair(&dir, &format!("{LINKS}witness = \"fd00::fe\"\n"), ""));
        assert_eq!(
            c.cluster.unwrap().witness,
            Some("fd00::fe".parse().unwrap())
        );
    }

    #[test]
    fn names_checked() {
        one_problem(
            "[node]\nname = \"bb 1\"\n",
            "node.name",
            Some(2),
            "use only letters",
        );
        one_problem(
            "[node]\nname = \"\"\n",
            "node.name",
            Some(2),
            "must not be empty",
        );
        one_problem(
            &format!("[node]\nname = \"{}\"\n", "a".repeat(65)),
            "node.name",
            Some(2),
            "longer than 64",
        );
        one_problem(
            "[bitbucket]\nuser = \"atl bitbucket\"\n",
            "bitbucket.user",
            Some(2),
            "not a user name",
        );
    }

    #[test]
    fn paths_must_be_absolute_and_socket_paths_short() {
        one_problem(
            "[node]\nstate_dir = \"var/lib/bbwd\"\n",
            "node.state_dir",
            Some(2),
            "not an absolute path",
        );
        let long = format!("/run/{}/control.sock", "x".repeat(100));
        one_problem(
            &format!("[node]\ncontrol_socket = \"{long}\"\n"),
            "node.control_socket",
            Some(2),
            "too long for a Unix socket path",
        );
    }

    #[test]
    fn insecure_key_file_refused_with_chmod_hint() {
        let dir = TempDir::new("insecure");
        let text = pair(&dir, LINKS, "");
        let key = dir.path().join("cluster.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            (found[0].key.as_str(), found[0].line),
            ("cluster.key_file", Some(5))
        );
        assert!(
            found[0].message.contains("mode 0644 is too open"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .message
                .contains(&format!("chmod 600 {}", key.display())),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn missing_and_relative_secret_files() {
        let dir = TempDir::new("missing-secret");
        let text = pair(&dir, LINKS, "").replace("peer.pass", "no-such.pass");
        one_problem(&text, "fencing.password_file", Some(11), "No such file");
        let text =
            pair(&dir, LINKS, "").replace(&format!("\"{}", dir.path().display()), "\"relative");
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found
            .iter()
            .all(|p| p.message.contains("not an absolute path")));
    }

    #[test]
    fn database_address_must_resolve() {
        one_problem(
            "[database]\naddress = \"db.example.com\"\n",
            "database.address",
            Some(2),
            "expected HOST:PORT",
        );
        one_problem(
            "[database]\naddress = \"127.0.0.1:99999\"\n",
            "database.address",
            Some(2),
            "expected HOST:PORT",
        );
        one_problem(
            "[database]\naddress = \"[::1\"\n",
            "database.address",
            Some(2),
            "cannot resolve",
        );
        one_problem(
            "[database]\ntimeout = \"5s\"\n",
            "database.address",
            Some(1),
            "missing",
        );
        let c = ok("[database]\naddress = \"[::1]:5432\"\n");
        assert_eq!(c.database.unwrap().resolved, "[::1]:5432".parse().unwrap());
    }

    #[test]
    fn environment_names_checked() {
        one_problem(
            "[bitbucket]\nenvironment = { \"A=B\" = \"x\" }\n",
            "bitbucket.environment.A=B",
            Some(2),
            "not a valid environment variable name",
        );
        let c = ok("[bitbucket.environment]\nJAVA_HOME = \"/opt/java\"\nLANG = \"C.UTF-8\"\n");
        assert_eq!(c.bitbucket.environment.len(), 2);
    }

    // ---- many problems at once ----

    #[test]
    fn all_problems_reported_together_in_file_order() {
        let text = "\
[node]
name = \"bb1\"
[bitbucket]
monitor_intervall = \"15s\"
stop_timeout = \"2 minutes\"
failures_before_action = 0
command = []
[watchdog]
device = \"watchdog\"
[vip]
address = \"10.0.0.50\"
interface = \"eth0\"
[frob]
";
        let found = problems(text);
        let got: Vec<(&str, Option<usize>)> =
            found.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            got,
            [
                ("bitbucket.monitor_intervall", Some(4)),
                ("bitbucket.stop_timeout", Some(5)),
                ("bitbucket.failures_before_action", Some(6)),
                ("bitbucket.command", Some(7)),
                ("watchdog.device", Some(9)),
                ("vip", Some(10)),
                ("vip.address", Some(11)),
                ("frob", Some(13)),
            ]
        );
        let shown = Problems {
            path: PathBuf::from(ORIGIN),
            problems: found,
        }
        .to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 8);
        assert!(
            lines.iter().all(|l| l.starts_with("/etc/bbwd/bbwd.toml: ")),
            "{shown}"
        );
        assert_eq!(
            lines[0],
            "/etc/bbwd/bbwd.toml: bitbucket.monitor_intervall (line 4): unknown key `monitor_intervall` in [bitbucket]; \
             did you mean `monitor_interval`?"
        );
    }

    #[test]
    fn syntax_errors_are_reported_with_their_line_and_the_rest_still_checked() {
        let text = "[node]\nname = bb1\n[bitbucket]\nmax_restarts = \"x\"\n";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!((found[0].key.as_str(), found[0].line), ("", Some(2)));
        assert!(
            found[0].message.starts_with("TOML syntax error: "),
            "{}",
            found[0].message
        );
        assert!(found[0]
            .to_string()
            .starts_with("line 2: TOML syntax error"));
        assert_eq!(
            (found[1].key.as_str(), found[1].line),
            ("bitbucket.max_restarts", Some(4))
        );
    }

    #[test]
    fn problem_display_forms() {
        let p = |key: &str, line| Problem {
            key: key.to_string(),
            line,
            message: "m".to_string(),
        };
        assert_eq!(p("a.b", Some(3)).to_string(), "a.b (line 3): m");
        assert_eq!(p("a.b", None).to_string(), "a.b: m");
        assert_eq!(p("", Some(3)).to_string(), "line 3: m");
        assert_eq!(p("", None).to_string(), "m");
    }

    // ---- load ----

    #[test]
    fn load_reads_the_file_and_names_it_in_problems() {
        let dir = TempDir::new("load");
        let path = dir.path().join("bbwd.toml");
        std::fs::write(&path, "[node]\nname = \"bb7\"\n").unwrap();
        assert_eq!(load(&path).unwrap().node.name, "bb7");
        std::fs::write(&path, "[node]\nnmae = \"bb7\"\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(err.path, path);
        assert!(
            err.to_string()
                .starts_with(&format!("{}: node.nmae (line 2): ", path.display())),
            "{err}"
        );
        std::fs::write(&path, b"[node]\nname = \"\xff\"\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("not UTF-8"));
        let missing = dir.path().join("nope.toml");
        let err = load(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: no such file (create it, or point -c PATH or $BBWD_CONFIG at the right one)",
                missing.display()
            )
        );
    }

    /// Parser robustness: thousands of damaged variants of a complete config (bytes deleted,
    /// duplicated, replaced by TOML's own punctuation) are reported on, never a panic, and every
    /// problem carries a line within the file.
    #[test]
    fn damaged_configs_never_panic() {
        let dir = TempDir::new("damaged");
        // No [database]: a damaged address could send a test to the name service.
        let base = without_load_balancer(&spec_example(&dir, "ipmi"))
            .replace("[database]                     # optional\naddress = \"127.0.0.1:5432\"   # TCP connect check\ntimeout = \"5s\"\n", "");
        assert!(!base.contains("[database]"));
        ok(&base);
        const ALPHABET: &[u8] = b"[]{}=\"',.#\n 0123456789smh:/-_abcxyz";
        let mut rng = bbwd_testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        let lines = base.lines().count() + 2;
        for _ in 0..3000 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, bytes[at]),
                    _ => bytes[at] = ALPHABET[(next() as usize) % ALPHABET.len()],
                }
            }
            let text = String::from_utf8(bytes).expect("ASCII in, ASCII out");
            if let Err(problems) = parse(&text, Path::new(ORIGIN)) {
                assert!(!problems.problems.is_empty());
                for p in &problems.problems {
                    assert!(
                        p.line.is_none_or(|l| (1..=lines).contains(&l)),
                        "{p:?} in\n{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn edit_distance_counts_typos() {
        assert_eq!(edit_distance("monitor_intervall", "monitor_interval"), 1);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(closest("adress", DATABASE_KEYS), Some("address"));
        assert_eq!(closest("xyz", DATABASE_KEYS), None);
    }
}

/// Mutation fuzzing of the parser: random byte edits of the shipped example must never panic,
/// and every rejection must name a problem. (Deterministic: a fixed xorshift seed per case.)
#[cfg(test)]
mod fuzz {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/bbwd.toml");

    use bbwd_testkit::Rng;

    const ALPHABET: &[u8] = b" \n\t=[]{}\",.#0123456789abcdefsmh-_\\'\x00\xff";

    #[test]
    fn mutated_configs_never_panic_and_every_rejection_names_a_problem() {
        let origin = Path::new("fuzz.toml");
        for case in 0..1500u64 {
            let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (case + 1));
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            for _ in 0..=rng.index(8) {
                let at = rng.index(bytes.len());
                match rng.index(3) {
                    0 => bytes[at] = ALPHABET[rng.index(ALPHABET.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, ALPHABET[rng.index(ALPHABET.len())]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Err(p) = parse(&text, origin) {
                assert!(
                    !p.problems.is_empty(),
                    "case {case}: rejected without a problem"
                );
                for problem in &p.problems {
                    assert!(!problem.message.is_empty(), "case {case}: empty message");
                }
            }
        }
    }
}
