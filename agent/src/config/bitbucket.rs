//! `[bitbucket]`: how Bitbucket is started, checked, stopped and restarted.
//!
//! Owns: the keys of `[bitbucket]`, their defaults (the seed's: monitor every 15 s, 30 s for a
//! check, 10 min to start), and the rules for the status URL, the user name and the
//! environment table.
//!
//! Must not: resolve the status URL's host or look the user up: whether they exist on this
//! node is `crate::hostcheck`'s question, asked after the config loads.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeTable;

use super::walk::{Checker, Sec, Zero};
use super::Bitbucket;

pub(super) const BITBUCKET_KEYS: &[&str] = &[
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

pub(super) const DEFAULT_STATUS_URL: &str = "http://127.0.0.1:7990/status";

pub(super) const DEFAULT_COMMAND: [&str; 2] =
    ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"];

/// `[bitbucket] stop_timeout`.
pub(super) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// `[bitbucket] kill_timeout`.
pub(super) const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl Checker<'_> {
    pub(super) fn bitbucket(&mut self, root: &DeTable<'_>) -> Option<Bitbucket> {
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

    pub(super) fn environment(&mut self, sec: Sec<'_, '_>) -> Option<BTreeMap<String, String>> {
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
pub(super) fn check_status_url(url: &str) -> Result<(), String> {
    bbwd_core::status_url::StatusUrl::parse(url).map(|_| ())
}
