//! `[bitbucket]`: how Bitbucket is started, checked, stopped and restarted.
//!
//! Owns: the keys of `[bitbucket]`, their defaults (the seed's: a check every 15 s, 30 s for
//! one check, 10 min to start), and the rules for the status URL, the user name and the
//! environment table.
//!
//! Must not: resolve the status URL's host or look the user up: whether they exist on this node
//! is `crate::hostcheck`'s question, asked after the config loads.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeTable;

use super::values::Zero;
use super::walk::{Checker, Sec};
use super::Bitbucket;

pub(super) const KEYS: &[&str] = &[
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

const DEFAULT_STATUS_URL: &str = "http://127.0.0.1:7990/status";
const DEFAULT_COMMAND: [&str; 2] = ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"];
/// `stop_timeout`: a graceful stop of Bitbucket (SIGTERM to its process group), then SIGKILL.
pub(super) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// `kill_timeout`: after SIGKILL; still not gone, the node cannot correct itself.
pub(super) const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// `[bitbucket]` when not written (and the default of each key).
fn defaults() -> Bitbucket {
    Bitbucket {
        status_url: DEFAULT_STATUS_URL.to_string(),
        command: DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect(),
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
    }
}

impl Checker<'_> {
    /// `[bitbucket]`; `None`: invalid (reported).
    pub(super) fn bitbucket(&mut self, root: &DeTable<'_>) -> Option<Bitbucket> {
        let Some(sec) = self.section(root, "bitbucket", "bitbucket") else {
            return (!root.contains_key("bitbucket")).then(defaults);
        };
        self.unknown_keys(sec, KEYS);
        let d = defaults();
        let status_url = self.parsed(
            sec,
            "status_url",
            d.status_url,
            |url| match check_status_url(url) {
                Ok(()) => Ok(url.to_string()),
                Err(why) => Err(format!("\"{url}\": {why}")),
            },
        );
        let command = match sec.get("command") {
            Some(item) => self.argv(&sec.key("command"), item),
            None => Some(d.command),
        };
        let user = self.parsed(sec, "user", None, |user| {
            check_user(user).map(|()| Some(user.to_string()))
        });
        let environment = self.environment(sec);
        let duration =
            |ck: &mut Self, key, default| ck.duration(sec, key, default, Zero::Refused).0;
        let monitor_interval = duration(self, "monitor_interval", d.monitor_interval);
        let monitor_timeout = duration(self, "monitor_timeout", d.monitor_timeout);
        let startup_timeout = duration(self, "startup_timeout", d.startup_timeout);
        let failures_before_action = self.integer(sec, "failures_before_action", 2, 1..=1000);
        let stop_timeout = self.timed(sec, "stop_timeout", d.stop_timeout, |t| &mut t.stop_timeout);
        let kill_timeout = self.timed(sec, "kill_timeout", d.kill_timeout, |t| &mut t.kill_timeout);
        let max_restarts = self.integer(sec, "max_restarts", 1, 0..=1000);
        let restart_window = duration(self, "restart_window", d.restart_window);
        let capture_output = self.boolean(sec, "capture_output", d.capture_output);
        Some(Bitbucket {
            status_url: status_url?,
            command: command?,
            user: user?,
            environment: environment?,
            monitor_interval,
            monitor_timeout,
            startup_timeout,
            failures_before_action: failures_before_action as u32,
            stop_timeout,
            kill_timeout,
            max_restarts: max_restarts as u32,
            restart_window,
            capture_output,
        })
    }

    /// `environment`: a table of strings, each name a valid environment variable name.
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
}

/// Checks `http://HOST[:PORT]/PATH` without resolving HOST (that happens at start-up; the
/// host check phase, `crate::hostcheck`, warns about a name that does not resolve now). The one
/// parser of the URL is `bbwd_core::status_url`, which the probe uses too.
fn check_status_url(url: &str) -> Result<(), String> {
    bbwd_core::status_url::StatusUrl::parse(url).map(|_| ())
}

/// `user`: a user name (not empty, no spaces, control characters or ':'), not looked up here.
fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty()
        || user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(format!(
            "\"{user}\" is not a user name (e.g. user = \"atlbitbucket\")"
        ));
    }
    Ok(())
}
