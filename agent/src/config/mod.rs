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
mod tests;
