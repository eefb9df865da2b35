//! `[notify]` (optional): the command run on every event.
//!
//! Owns: its keys and the default timeout of one run.
//!
//! Must not: check the program exists (`crate::hostcheck` does).

use std::time::Duration;

use toml::de::DeTable;

use super::values::Zero;
use super::walk::Checker;
use super::Notify;

pub(super) const KEYS: &[&str] = &["command", "timeout"];

/// `timeout`: one run of the command; a longer one is killed.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Checker<'_> {
    /// `[notify]`: `Some(None)` when not written; `None`: invalid (reported).
    pub(super) fn notify(&mut self, root: &DeTable<'_>) -> Option<Option<Notify>> {
        let Some(sec) = self.section(root, "notify", "notify") else {
            return (!root.contains_key("notify")).then_some(None);
        };
        self.unknown_keys(sec, KEYS);
        let command = self.command(sec, "command", "[\"/etc/bbwd/notify.sh\"]");
        let (timeout, _) = self.duration(sec, "timeout", DEFAULT_TIMEOUT, Zero::Refused);
        Some(Some(Notify {
            command: command?,
            timeout,
        }))
    }
}
