//! `[notify]` (optional): the command run on every event.
//!
//! Owns: its keys and the default timeout of one run.
//!
//! Must not: check the program exists (`crate::hostcheck` does).

use std::time::Duration;

use toml::de::DeTable;

use super::walk::{Checker, Zero};
use super::Notify;

pub(super) const NOTIFY_KEYS: &[&str] = &["command", "timeout"];

impl Checker<'_> {
    pub(super) fn notify(&mut self, root: &DeTable<'_>) -> Option<Option<Notify>> {
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
}
