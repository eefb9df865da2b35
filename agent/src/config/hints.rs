//! Names nobody knows, and "did you mean": an unknown key gets the section it belongs in
//! ("`peer_timeout` belongs in [cluster]"), else the closest known key of its own section, else
//! the list of keys that section knows; an unknown section gets the closest known one.
//!
//! Owns: the table of every section and its keys ([`SECTIONS`]), the names of the top-level
//! tables ([`TOP_LEVEL`]), the unknown-key and unknown-section problems and their wording, and
//! the distance that decides what counts as a typo.
//!
//! Must not: decide what a section knows (each section's file lists its `KEYS`), or accept a
//! name because it is close to a known one: a hint never stands in for the key.

use toml::de::DeTable;

use super::walk::{Checker, Sec};
use super::{
    bitbucket, cluster, database, fencing, hooks, load_balancer, metrics, node, notify, vip,
    watchdog,
};

/// Every section with its keys, for "did you mean" and "belongs in [x]" hints.
const SECTIONS: &[(&str, &[&str])] = &[
    ("node", node::KEYS),
    ("bitbucket", bitbucket::KEYS),
    ("database", database::KEYS),
    ("watchdog", watchdog::KEYS),
    ("watchdog.ipmi", watchdog::IPMI_KEYS),
    ("notify", notify::KEYS),
    ("cluster", cluster::KEYS),
    ("vip", vip::KEYS),
    ("fencing", fencing::KEYS),
    ("hooks", hooks::KEYS),
    ("load_balancer", load_balancer::KEYS),
    ("metrics", metrics::KEYS),
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

impl Checker<'_> {
    /// Reports every key of `sec` not in `known`, with a hint where one helps.
    pub(super) fn unknown_keys(&mut self, sec: Sec<'_, '_>, known: &[&str]) {
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
            let message = format!("{what}{hint}");
            self.report(sec.key(name), Some(key.span().start), message);
        }
    }

    /// Reports every top-level name that is not a section: an unknown table, or a key written
    /// before any section header.
    pub(super) fn top_level_unknowns(&mut self, root: &DeTable<'_>) {
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

/// `[a] or [b]`: the sections that have `key`.
fn sections_with_key(key: &str) -> String {
    let homes: Vec<String> = SECTIONS
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(s, _)| format!("[{s}]"))
        .collect();
    homes.join(" or ")
}

/// The candidate nearest to `word` by edit distance, if near enough to be a typo.
pub(super) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
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
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
