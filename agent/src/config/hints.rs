//! "Did you mean": an unknown key gets the section it belongs in ("`peer_timeout` belongs in
//! [cluster]"), else the closest known key of its own section, else the list of keys that
//! section knows; an unknown section gets the closest known one.
//!
//! Owns: the table of every section and its keys ([`SECTIONS`]), the names of the top-level
//! tables ([`TOP_LEVEL`]), and the distance that decides what counts as a typo.
//!
//! Must not: decide what a section knows (each section's file lists its keys), or report:
//! these functions only word hints; the walk reports them where the name is written.

use super::bitbucket::BITBUCKET_KEYS;
use super::cluster::CLUSTER_KEYS;
use super::database::DATABASE_KEYS;
use super::fencing::FENCING_KEYS;
use super::hooks::HOOKS_KEYS;
use super::load_balancer::LOAD_BALANCER_KEYS;
use super::metrics::METRICS_KEYS;
use super::node::NODE_KEYS;
use super::notify::NOTIFY_KEYS;
use super::vip::VIP_KEYS;
use super::watchdog::{WATCHDOG_IPMI_KEYS, WATCHDOG_KEYS};

/// Every section with its keys, for "did you mean" and "belongs in [x]" hints.
pub(super) const SECTIONS: &[(&str, &[&str])] = &[
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
pub(super) const TOP_LEVEL: &[&str] = &[
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

/// A hint for an unknown key: the sections that have it, or the closest known key of the same
/// section, or the list of keys the section knows.
pub(super) fn key_hint(name: &str, section: &str, known: &[&str]) -> String {
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
pub(super) fn sections_with_key(key: &str) -> String {
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
