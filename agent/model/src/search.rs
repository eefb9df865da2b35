//! The search: breadth-first by fault count, then by depth, over fingerprints.
//!
//! Owns the visited table (64-bit fingerprints, each with its parent and the choice that led to
//! it) and the frontier (full states, one queue per number of faults used: every state with k
//! faults is explored before any with k + 1, so a bounded run is complete for every budget below
//! the one it stopped in). Traces are rebuilt by replaying the recorded choices from the start.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::time::Instant;

use crate::world::{fingerprint, is_fault, Choice, Model, Outcome, World};

/// How the search ended.
pub struct Report {
    pub states: usize,
    pub depth: u32,
    pub complete: bool,
    /// Counterexamples found (each a full trace), shortest first.
    pub violations: Vec<String>,
    pub violation_count: usize,
}

pub struct Limits {
    pub max_states: usize,
    pub max_depth: u32,
    /// Stop at the first violation.
    pub first: bool,
}

struct Rec {
    parent: u32,
    choice: u16,
    depth: u32,
}

/// The search's tables: the record of every state seen, the frontier by fault count, and the
/// violations found.
struct Search {
    recs: Vec<Rec>,
    seen: HashMap<u64, u32>,
    levels: Vec<VecDeque<(u32, World)>>,
    complete: bool,
    max_depth: u32,
    /// The broken states' ids, and what each broke.
    bad: Vec<u32>,
    bad_what: Vec<String>,
}

/// Breadth-first search by fault count, then depth, until the frontier is empty or a limit is
/// reached.
pub fn run(m: &Model, lim: &Limits) -> Report {
    let start = Instant::now();
    let mut s = Search::new(m);
    let mut last_report = Instant::now();
    while let Some(level) = s.levels.iter().position(|q| !q.is_empty()) {
        let (id, w) = s.levels[level].pop_front().unwrap();
        if s.recs[id as usize].depth >= lim.max_depth {
            s.complete = false;
            continue;
        }
        if s.expand(m, lim, id, &w).is_break() {
            break;
        }
        if last_report.elapsed().as_secs() >= 5 {
            last_report = Instant::now();
            s.progress(start, level);
        }
    }
    if s.complete && s.levels.iter().any(|q| !q.is_empty()) {
        s.complete = false;
    }
    s.report(m)
}

impl Search {
    /// The cold start, alone in the frontier at fault level 0.
    fn new(m: &Model) -> Search {
        let mut s = Search {
            recs: Vec::new(),
            seen: HashMap::new(),
            levels: Vec::new(),
            complete: true,
            max_depth: 0,
            bad: Vec::new(),
            bad_what: Vec::new(),
        };
        let w0 = m.initial();
        s.seen.insert(fingerprint(&w0), 0);
        s.recs.push(Rec {
            parent: u32::MAX,
            choice: 0,
            depth: 0,
        });
        s.levels
            .resize_with(m.cfg.faults as usize + 1, VecDeque::new);
        s.levels[0].push_back((0, w0));
        s
    }

    /// Records every successor of state `id` (`w`) not seen before and queues it at its fault
    /// level, unless it breaks an invariant (then it is kept as a violation, not explored).
    /// Break: the search stops (the state bound, or the first violation under `lim.first`).
    fn expand(&mut self, m: &Model, lim: &Limits, id: u32, w: &World) -> ControlFlow<()> {
        let depth = self.recs[id as usize].depth;
        for (ci, c) in m.choices(w).iter().enumerate() {
            let (nw, v) = match m.apply(w, *c, &mut None) {
                Outcome::Ok(nw) => (nw, None),
                Outcome::Bad(nw, v) => (nw, Some(v)),
            };
            let f = fingerprint(&nw);
            if self.seen.contains_key(&f) {
                continue;
            }
            if self.seen.len() >= lim.max_states {
                self.complete = false;
                return ControlFlow::Break(());
            }
            let nid = self.recs.len() as u32;
            self.seen.insert(f, nid);
            self.recs.push(Rec {
                parent: id,
                choice: ci as u16,
                depth: depth + 1,
            });
            self.max_depth = self.max_depth.max(depth + 1);
            if let Some(v) = v {
                self.bad.push(nid);
                self.bad_what.push(v.what);
                if lim.first {
                    return ControlFlow::Break(());
                }
                continue; // a broken state is not explored further
            }
            let fl = nw.faults as usize;
            self.levels[fl].push_back((nid, nw));
        }
        ControlFlow::Continue(())
    }

    /// The periodic progress line on stderr (not part of the verdict).
    fn progress(&self, start: Instant, level: usize) {
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "model: {} states, depth {}, fault level {}, frontier {}, {:.0} states/s, {} violations",
            self.seen.len(),
            self.max_depth,
            level,
            self.levels.iter().map(|q| q.len()).sum::<usize>(),
            self.seen.len() as f64 / secs,
            self.bad.len()
        );
    }

    /// The verdict: the counts, and the traces of at most three violations of distinct kinds,
    /// shortest first.
    fn report(self, m: &Model) -> Report {
        let mut violations = Vec::new();
        let mut order: Vec<usize> = (0..self.bad.len()).collect();
        order.sort_by_key(|&i| self.recs[self.bad[i] as usize].depth);
        let mut kinds: Vec<String> = Vec::new();
        for i in order {
            let key: String = self.bad_what[i].chars().take(40).collect();
            if kinds.contains(&key) || kinds.len() >= 3 {
                continue;
            }
            kinds.push(key);
            violations.push(trace(m, &self.recs, self.bad[i], &self.bad_what[i]));
        }
        Report {
            states: self.seen.len(),
            depth: self.max_depth,
            complete: self.complete,
            violation_count: self.bad.len(),
            violations,
        }
    }
}

/// Replays the choices leading to `id` and prints them with both nodes after each step.
fn trace(m: &Model, recs: &[Rec], id: u32, what: &str) -> String {
    let mut path = Vec::new();
    let mut i = id;
    while recs[i as usize].parent != u32::MAX {
        path.push(recs[i as usize].choice);
        i = recs[i as usize].parent;
    }
    path.reverse();
    replay(m, &path, what)
}

/// Random walks (the deep complement of the breadth-first search): each walk starts from the
/// cold start and picks among the enabled choices at random, a fault only with probability
/// `1/fault_odds` at each step (the budget is the model's), until the horizon. Reaches the
/// multi-fault scenarios a breadth-first search of the same size cannot (a failover, then a
/// restart, then a race), and prints the first counterexample as the search does. Seeded:
/// the same seed walks the same paths.
pub fn walks(m: &Model, walks: u64, seed: u64, fault_odds: u64, first: bool) -> Report {
    let start = Instant::now();
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut max_depth = 0u32;
    let mut violations = Vec::new();
    let mut count = 0usize;
    let mut last_report = Instant::now();
    'walks: for _ in 0..walks {
        let mut w = m.initial();
        let mut path: Vec<u16> = Vec::new();
        for depth in 0..2000u32 {
            let choices = m.choices(&w);
            if choices.is_empty() {
                break;
            }
            let faults: Vec<usize> = (0..choices.len())
                .filter(|&i| is_fault(choices[i]))
                .collect();
            let calm: Vec<usize> = (0..choices.len())
                .filter(|&i| !is_fault(choices[i]))
                .collect();
            let pick = if !faults.is_empty() && (calm.is_empty() || next() % fault_odds == 0) {
                faults[(next() % faults.len() as u64) as usize]
            } else if !calm.is_empty() {
                calm[(next() % calm.len() as u64) as usize]
            } else {
                break;
            };
            path.push(pick as u16);
            let (nw, v) = match m.apply(&w, choices[pick], &mut None) {
                Outcome::Ok(nw) => (nw, None),
                Outcome::Bad(nw, v) => (nw, Some(v)),
            };
            seen.insert(fingerprint(&nw));
            max_depth = max_depth.max(depth + 1);
            if let Some(v) = v {
                count += 1;
                if violations.len() < 3 {
                    violations.push(replay(m, &path, &v.what));
                }
                if first {
                    break 'walks;
                }
                break;
            }
            w = nw;
        }
        if last_report.elapsed().as_secs() >= 5 {
            last_report = Instant::now();
            eprintln!(
                "model (walks): {} states, depth {}, {:.0} states/s, {} violations",
                seen.len(),
                max_depth,
                seen.len() as f64 / start.elapsed().as_secs_f64(),
                count
            );
        }
    }
    Report {
        states: seen.len(),
        depth: max_depth,
        complete: false,
        violation_count: count,
        violations,
    }
}

/// Prints the trace of `path` (choice indices from the cold start).
fn replay(m: &Model, path: &[u16], what: &str) -> String {
    let mut w = m.initial();
    let mut out = String::new();
    out.push_str(&format!(
        "VIOLATION: {what}\n0. cold start (t=0)\n{}",
        m.describe(&w)
    ));
    for (k, ci) in path.iter().enumerate() {
        let c: Choice = m.choices(&w)[*ci as usize];
        let label = m.label(&w, c);
        w = match m.apply(&w, c, &mut None) {
            Outcome::Ok(nw) | Outcome::Bad(nw, _) => nw,
        };
        out.push_str(&format!(
            "{}. [t={:?} faults={}] {}\n{}",
            k + 1,
            w.now,
            w.faults,
            label,
            m.describe(&w)
        ));
    }
    out
}
