//! bbwd.toml: every key of SPEC.md with its default, parsed and validated in one pass.
//!
//! Owns: the `Config` types, their defaults, and the checks `bbwd check-config` and `bbwd run`
//! perform. Every problem is collected (not just the first), each naming its key and, where the
//! TOML parser knows it, its line. Unknown keys and sections are errors: a typo must never fall
//! back silently to a default. Secret files named by the config must be mode 0600 or stricter.
//!
//! Must not: touch the network, start anything, or read files other than the config itself and
//! the metadata of the secret files it names.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Default 1 s; must exceed `heartbeat_interval`.
    pub peer_timeout: Duration,
    /// Default false.
    pub preferred_active: bool,
    pub witness: Option<std::net::IpAddr>,
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

/// `[fencing]`
#[derive(Debug, Clone, PartialEq)]
pub struct Fencing {
    /// Only `ipmi`.
    pub method: String,
    pub lan: IpmiLan,
    /// Default 3; 0 is refused (it accepts any password).
    pub cipher_suite: u8,
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
        let _ = f;
        todo!()
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
        let _ = f;
        todo!()
    }
}
impl std::error::Error for Problems {}

/// Reads and validates `path` (including the secret files' modes).
pub fn load(path: &Path) -> Result<Config, Problems> {
    let _ = path;
    todo!()
}

/// Parses and validates config text; `origin` names it in problems. Checks the secret files it
/// names on disk.
pub fn parse(text: &str, origin: &Path) -> Result<Config, Problems> {
    let _ = (text, origin);
    todo!()
}

/// Parses a duration string: an integer followed by `ms`, `s`, `m` or `h` (`"250ms"`, `"15s"`,
/// `"10m"`); combinations like `"1m30s"` are accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let _ = text;
    todo!()
}
