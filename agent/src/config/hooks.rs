//! `[hooks]` (optional): extra ordered steps around a start and a stop, e.g. DRBD promote and
//! mount.
//!
//! Owns: its two keys, each a list of commands.
//!
//! Must not: check the programs exist (`crate::hostcheck` does).

use toml::de::DeTable;

use super::walk::Checker;
use super::Hooks;

pub(super) const KEYS: &[&str] = &["before_start", "after_stop"];

impl Checker<'_> {
    /// `[hooks]`: no hooks when not written. A wrong command is reported and left out.
    pub(super) fn hooks(&mut self, root: &DeTable<'_>) -> Hooks {
        let Some(sec) = self.section(root, "hooks", "hooks") else {
            return Hooks::default();
        };
        self.unknown_keys(sec, KEYS);
        Hooks {
            before_start: self.argv_list(sec, "before_start"),
            after_stop: self.argv_list(sec, "after_stop"),
        }
    }
}
