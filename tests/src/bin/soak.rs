//! `soak`: the pair fault soak (`scripts/soak.sh`). Injects N random faults into the namespace
//! pair lab (`bbwd_tests::pairlab`, a real ipmi_sim BMC per node, two real `bbwd run`), one at a
//! time and sometimes two overlapping, each followed by its heal and a quiet period, while a
//! sampler checks every 50 ms that no two nodes hold the VIP or run Bitbucket, and after each
//! quiet period that exactly one node serves.
//!
//! ```text
//! soak N [--seed X]                  N random faults drawn from seed X (default: from the clock)
//! soak --scenario agent-restart      fail over to n2, then SIGKILL bbwd on n2 and start it again
//! soak --scenario survivable         Bitbucket crash, power cycle of the standby, crash again
//! soak --scenario paused-active      SIGSTOP bbwd on the active until just before the standby's
//!                                    fence delay runs out, then SIGCONT
//! soak N [--seed X] --plan           print the fault plan and exit (no lab, no root)
//! ```
//!
//! # A cycle
//! ```text
//!  ready ──► inject ──► hold ──► heal ──► operator ──► quiet 6 s ──► serve check ──► (repair)
//!  (both on,   (a 2nd fault may be       (power a fenced       (one node holds the VIP and
//!   roles       injected and healed       node on, start a      answers the client through it;
//!   settled)    inside the hold)          missing bbwd, reset   else count unserved time until
//!                                         a failed node)        it does, at most 60 s, then
//!                                                               repair: power both off and on)
//! ```
//! The quiet period (6 s) covers the slowest recovery the faults call for: detection
//! (`peer_timeout` 1 s), the fence delay of the node not holding the service (2 s), the fence
//! itself (ipmi_sim acts at its 1 s tick), Bitbucket's start and first healthy check (200 ms
//! monitor) and the VIP with its gratuitous ARPs: about 4.5 s, plus margin for a busy machine.
//!
//! # Counting
//! * V: violation episodes: runs of consecutive 50 ms samples that saw the VIP on two nodes or
//!   a Bitbucket simulator running on two. Each is printed when seen, with the fault sequence,
//!   both nodes' `bbwd status` and their logs' tails, and attributed to the kinds of the step in
//!   progress (or just finished).
//! * U: seconds after a quiet period until exactly one node served.
//! * availability per kind: the share of client GETs through the VIP (every 20 ms, the lab's
//!   probe) answered 200 during that kind's cycles, from injection to the serve check.
//!
//! Last line: `soak: F faults, V violations, unserved U s, seed X`; exit 0 only when V = 0
//! (1 otherwise; 2 when the harness itself gave up). Ctrl-C stops at the next 100 ms slice and
//! the lab tears itself down (its Drop).
//!
//! Must not: act outside the lab's namespaces and processes (see `bbwd_tests::soak`).

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bbwd_tests::pairlab::{self, InvariantSampler, Node, PairLab, VIP};
use bbwd_tests::pairnode::SIM_PORT;
use bbwd_tests::soak::{
    self, bbwd_pids, ensure_on, inject, operator_reset, plan, power, role_state, start_bbwd,
    status, wait_node_power, Fault, Injected, Kind, Role, Step,
};

/// The invariant sampler's period (the issue's 50 ms).
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// After the last heal, before the serve check (see the module doc).
const QUIET: Duration = Duration::from_secs(6);
/// How long the serve check waits for one node to serve before repairing the lab.
const SERVE_BOUND: Duration = Duration::from_secs(60);
/// How long "ready" waits for one active and one standby before going on anyway.
const READY_BOUND: Duration = Duration::from_secs(30);
/// Slice of every wait: violations are reported and Ctrl-C honoured this often.
const SLICE: Duration = Duration::from_millis(100);
/// How many recent faults a violation report lists.
const HISTORY_SHOWN: usize = 6;
/// Lines of each node's bbwd.log in a violation report.
const LOG_TAIL: usize = 12;
/// A table of the results so far every this many steps (a long run can be read before it ends).
const PROGRESS_EVERY: usize = 50;
/// Harness failures (a panic inside a cycle) tolerated before the soak gives up.
const MAX_HARNESS_ERRORS: usize = 5;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// The panic payload that unwinds a cycle on Ctrl-C.
struct Interrupted;

#[derive(Default, Clone)]
struct KindStats {
    faults: usize,
    violations: usize,
    unserved: f64,
    probes: usize,
    answered: usize,
}

struct Soak<'l> {
    lab: &'l PairLab,
    sampler: InvariantSampler,
    started: Instant,
    /// Every fault injected so far, as printed (`#12 bbwd-kill n2 (active hold 0.3s)`).
    history: Vec<String>,
    /// Kinds of the step in progress (violations are attributed to them).
    current: Vec<Kind>,
    phase: &'static str,
    violations: usize,
    unserved: f64,
    stats: BTreeMap<Kind, KindStats>,
    cycle_times: Vec<f64>,
    repairs: usize,
    /// Client probes over all cycles, and those answered 200.
    probes: usize,
    answered: usize,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}\nusage: soak N [--seed X] [--plan] | soak --scenario agent-restart|survivable|paused-active");
            std::process::exit(64);
        }
    };
    let steps = match args.scenario.as_deref() {
        None => plan(args.seed, args.faults),
        Some("agent-restart") => scenario_agent_restart(),
        Some("survivable") => scenario_survivable(),
        Some("paused-active") => scenario_paused_active(),
        Some(other) => {
            eprintln!(
                "soak: unknown scenario {other:?} (agent-restart, survivable, paused-active)"
            );
            std::process::exit(64);
        }
    };
    let total: usize = steps.iter().map(|s| s.faults.len()).sum();
    say(&format!(
        "soak: seed {} ({total} faults in {} steps{})",
        args.seed,
        steps.len(),
        args.scenario
            .as_deref()
            .map(|s| format!(", scenario {s}"))
            .unwrap_or_default()
    ));
    if args.plan_only {
        for (i, step) in steps.iter().enumerate() {
            let faults: Vec<String> = step.faults.iter().map(Fault::to_string).collect();
            say(&format!(
                "step {}: {}",
                i + 1,
                faults.join(" + overlapped by ")
            ));
        }
        return;
    }
    if !pairlab::available() {
        std::process::exit(2);
    }
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Interrupted>().is_none() {
            default_hook(info);
        }
    }));
    let code = run(&steps, args.seed);
    std::process::exit(code);
}

struct Args {
    faults: usize,
    seed: u64,
    scenario: Option<String>,
    plan_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut faults = None;
    let mut seed = None;
    let mut scenario = None;
    let mut plan_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => {
                let v = it.next().ok_or("--seed needs a value")?;
                seed = Some(v.parse::<u64>().map_err(|e| format!("--seed {v}: {e}"))?);
            }
            "--scenario" => scenario = Some(it.next().ok_or("--scenario needs a name")?),
            "--plan" => plan_only = true,
            n if faults.is_none() && !n.starts_with('-') => {
                faults = Some(n.parse::<usize>().map_err(|e| format!("N {n}: {e}"))?);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if faults.is_none() && scenario.is_none() {
        return Err("N (the number of faults) or --scenario is needed".into());
    }
    let seed = seed.unwrap_or_else(|| {
        let t = bbwd_tests::now_since_epoch();
        soak::SplitMix64::new(t.as_nanos() as u64 ^ u64::from(std::process::id())).next_u64()
            % 1_000_000_000
    });
    Ok(Args {
        faults: faults.unwrap_or(0),
        seed,
        scenario,
        plan_only,
    })
}

/// The agent-restart bug: n1 loses power, n2 takes over; n1 comes back as standby; then bbwd on
/// n2 (now active) is SIGKILLed and started again 0.3 s later, its Bitbucket left running.
fn scenario_agent_restart() -> Vec<Step> {
    vec![
        Step {
            faults: vec![Fault {
                kind: Kind::PowerOff,
                role: Role::Active,
                link: None,
                hold: Duration::from_secs(4),
            }],
        },
        Step {
            faults: vec![Fault {
                kind: Kind::BbwdKill,
                role: Role::Active,
                link: None,
                hold: Duration::from_millis(300),
            }],
        },
    ]
}

/// The mutual fence the soak found (seed 20261212, step 60): bbwd on the active is stopped
/// (SIGSTOP) for 11.9 s. The standby loses it after `peer_timeout` (1 s) and waits its fence
/// delay (`fencing.timeout` + `peer_timeout` = 11 s): the active resumes just before that runs
/// out. A resumed active that timed the standby out at once fenced it while being fenced, and
/// both nodes went off (unserved until the operator came).
fn scenario_paused_active() -> Vec<Step> {
    vec![Step {
        faults: vec![Fault {
            kind: Kind::BbwdStop,
            role: Role::Active,
            link: None,
            hold: Duration::from_millis(11_900),
        }],
    }]
}

/// Faults the current code survives (the root integration test's soak).
fn scenario_survivable() -> Vec<Step> {
    let f = |kind, role, hold_ms| Step {
        faults: vec![Fault {
            kind,
            role,
            link: None,
            hold: Duration::from_millis(hold_ms),
        }],
    };
    vec![
        f(Kind::BbCrash, Role::Active, 1000),
        f(Kind::PowerCycle, Role::Standby, 0),
        f(Kind::BbCrash, Role::Active, 1000),
    ]
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(steps: &[Step], seed: u64) -> i32 {
    let lab = PairLab::up("soak");
    for n in Node::BOTH {
        soak::set_up_soak_node(&lab, n);
    }
    if let Err(e) = soak::add_witness(&lab) {
        say(&format!("soak: cannot set up the witness: {e}"));
        return 2;
    }
    let sampler = lab.sample_invariants_every(VIP, SAMPLE_EVERY);
    let mut s = Soak {
        lab: &lab,
        sampler,
        started: Instant::now(),
        history: Vec::new(),
        current: Vec::new(),
        phase: "start",
        violations: 0,
        unserved: 0.0,
        stats: BTreeMap::new(),
        cycle_times: Vec::new(),
        repairs: 0,
        probes: 0,
        answered: 0,
    };
    say(&format!(
        "soak: lab {} up; sampling every {SAMPLE_EVERY:?}; quiet period {QUIET:?}",
        lab.prefix
    ));
    let mut harness_errors = 0;
    let mut aborted = false;
    let cold = panic::catch_unwind(AssertUnwindSafe(|| s.cold_start()));
    if let Err(p) = cold {
        if p.downcast_ref::<Interrupted>().is_some() {
            aborted = true;
        } else {
            harness_errors += 1;
        }
    }
    let mut done_faults = 0;
    for (i, step) in steps.iter().enumerate() {
        if aborted {
            break;
        }
        let result = panic::catch_unwind(AssertUnwindSafe(|| s.cycle(i + 1, step)));
        match result {
            Ok(()) => {
                done_faults += step.faults.len();
                if (i + 1) % PROGRESS_EVERY == 0 && i + 1 < steps.len() {
                    s.table(done_faults);
                }
            }
            Err(p) if p.downcast_ref::<Interrupted>().is_some() => {
                say("soak: interrupted");
                aborted = true;
            }
            Err(p) => {
                done_faults += step.faults.len();
                harness_errors += 1;
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                say(&format!(
                    "soak: HARNESS ERROR in step {} ({harness_errors}/{MAX_HARNESS_ERRORS}): {}",
                    i + 1,
                    what.lines().next().unwrap_or("")
                ));
                if harness_errors >= MAX_HARNESS_ERRORS {
                    aborted = true;
                    break;
                }
                let _ = panic::catch_unwind(AssertUnwindSafe(|| s.repair("harness error")));
            }
        }
    }
    // Episodes seen in the very last slice.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| s.tick()));
    // Faults injected (an interrupted step's count too, as in the table).
    s.summary(s.history.len(), seed, harness_errors);
    let violations = s.violations;
    drop(s);
    drop(lab);
    if violations > 0 {
        1
    } else if aborted {
        2
    } else {
        0
    }
}

impl Soak<'_> {
    fn t(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn log(&self, line: &str) {
        say(&format!("[t+{:8.1}s] {line}", self.t()));
    }

    /// Reports new violation episodes; unwinds on Ctrl-C.
    fn tick(&mut self) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            panic::panic_any(Interrupted);
        }
        for v in self.sampler.take_new_episodes() {
            self.violations += 1;
            for k in self.current.clone() {
                self.stats.entry(k).or_default().violations += 1;
            }
            self.report_violation(&v);
        }
    }

    /// Sleeps `d` in slices, reporting violations as they come.
    fn sleep(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            self.tick();
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep(SLICE.min(end - now));
        }
    }

    fn report_violation(&self, v: &pairlab::Violation) {
        let when =
            self.started.elapsed().as_secs_f64() - v.at.elapsed().as_secs_f64().min(self.t());
        let names = |ns: &[usize]| -> Vec<&str> {
            ns.iter()
                .map(|n| if *n == 1 { "n1" } else { "n2" })
                .collect()
        };
        let running: Vec<String> = v
            .running
            .iter()
            .map(|(pid, n)| format!("n{n} (bbsim pid {pid})"))
            .collect();
        let mut text = format!(
            "VIOLATION {} at t+{when:.2}s (unix {:.2}): VIP held by {:?}, Bitbucket running on {running:?}\n",
            self.violations,
            bbwd_tests::now_since_epoch().as_secs_f64() - v.at.elapsed().as_secs_f64(),
            names(&v.holders),
        );
        text.push_str(&format!("  phase: {}\n  last faults:\n", self.phase));
        let from = self.history.len().saturating_sub(HISTORY_SHOWN);
        for h in &self.history[from..] {
            text.push_str(&format!("    {h}\n"));
        }
        text.push_str(&self.nodes_report());
        self.log(text.trim_end());
    }

    /// Both nodes' `bbwd status` role/state and the tail of their logs.
    fn nodes_report(&self) -> String {
        let mut text = String::new();
        for n in Node::BOTH {
            text.push_str(&format!("  {}: {}\n", n.name(), role_state(self.lab, n)));
        }
        for n in Node::BOTH {
            let log = std::fs::read_to_string(self.lab.dir().join(n.name()).join("bbwd.log"))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL);
            text.push_str(&format!(
                "  --- {} bbwd.log (last {LOG_TAIL} lines)\n",
                n.name()
            ));
            for l in &lines[from..] {
                text.push_str(&format!("    {l}\n"));
            }
        }
        text
    }

    fn cold_start(&mut self) {
        self.phase = "cold start";
        for n in Node::BOTH {
            if let Err(e) = ensure_on(self.lab, n) {
                self.log(&format!("cold start: {e}"));
            }
            self.sleep(Duration::from_millis(500));
        }
        self.ready();
        let (a, b) = (
            role_state(self.lab, Node::N1),
            role_state(self.lab, Node::N2),
        );
        self.log(&format!("cold start done: n1 {a}, n2 {b}"));
    }

    /// The node a role names now: the node whose bbwd says active, else the VIP holder, else n1.
    fn resolve(&self, role: Role) -> Node {
        let active = Node::BOTH
            .into_iter()
            .find(|n| role_state(self.lab, *n).starts_with("active/"))
            .or_else(|| self.lab.vip_holder(VIP).first().copied())
            .unwrap_or(Node::N1);
        match role {
            Role::Active => active,
            Role::Standby => active.peer(),
        }
    }

    /// Plays the operator: powers on a node that is off (fenced), starts bbwd where it is
    /// missing (systemd's Restart=always), resets a node in `failed`.
    fn operator(&mut self) {
        for n in Node::BOTH {
            if !self.lab.node_on(n) && !wait_node_power(self.lab, n, true, Duration::ZERO) {
                self.log(&format!("operator: {} is off: power on", n.name()));
                if let Err(e) = ensure_on(self.lab, n) {
                    self.log(&format!("operator: {e}"));
                }
                continue;
            }
            if bbwd_pids(self.lab, n).is_empty() {
                // A node that just booted starts bbwd itself within moments.
                self.sleep(Duration::from_millis(500));
                if self.lab.node_on(n) && bbwd_pids(self.lab, n).is_empty() {
                    self.log(&format!("operator: no bbwd on {}: start it", n.name()));
                    if let Err(e) = start_bbwd(self.lab, n) {
                        self.log(&format!("operator: {e}"));
                    }
                }
            }
            if status(self.lab, n)["state"] == "failed" {
                self.log(&format!("operator: {} is failed: bbwd reset", n.name()));
                if let Err(e) = operator_reset(self.lab, n) {
                    self.log(&format!("operator: {e}"));
                }
            }
        }
    }

    /// Waits (bounded) for one `active/running` and one `standby/stopped`.
    fn ready(&mut self) {
        self.phase = "ready";
        let deadline = Instant::now() + READY_BOUND;
        let mut last = String::new();
        while Instant::now() < deadline {
            let a = role_state(self.lab, Node::N1);
            let b = role_state(self.lab, Node::N2);
            let mut roles = [a.as_str(), b.as_str()];
            roles.sort();
            if roles == ["active/running", "standby/stopped"] {
                return;
            }
            last = format!("n1 {a}, n2 {b}");
            self.sleep(Duration::from_millis(250));
        }
        self.log(&format!(
            "not settled after {READY_BOUND:?} ({last}): going on"
        ));
    }

    fn cycle(&mut self, index: usize, step: &Step) {
        self.operator();
        self.ready();
        let began = Instant::now();
        let probe = self
            .lab
            .probe(VIP, SIM_PORT, 1_000_000, Duration::from_secs(600));
        self.current = step.faults.iter().map(|f| f.kind).collect();
        for k in &self.current {
            self.stats.entry(*k).or_default().faults += 1;
        }

        let first = self.inject(index, &step.faults[0]);
        self.phase = "hold";
        if let Some(second) = step.faults.get(1) {
            let lead = (step.faults[0].hold / 2).min(Duration::from_secs(1));
            self.sleep(lead);
            let inj = self.inject(index, second);
            self.sleep(second.hold);
            self.heal(&inj);
            self.sleep(step.faults[0].hold.saturating_sub(lead));
        } else {
            self.sleep(step.faults[0].hold);
        }
        self.heal(&first);
        self.phase = "operator";
        self.operator();
        self.phase = "quiet";
        self.sleep(QUIET);

        self.phase = "serve check";
        let unserved = self.serve_check(index);
        let attempts = probe.finish();
        let answered = attempts.iter().filter(|a| a.ok()).count();
        self.probes += attempts.len();
        self.answered += answered;
        for k in self.current.clone() {
            let st = self.stats.entry(k).or_default();
            st.unserved += unserved;
            st.probes += attempts.len();
            st.answered += answered;
        }
        let secs = began.elapsed().as_secs_f64();
        self.cycle_times.push(secs);
        self.log(&format!(
            "step {index} done in {secs:.1}s: client answered {answered}/{} ({:.1}%){}",
            attempts.len(),
            100.0 * answered as f64 / attempts.len().max(1) as f64,
            if unserved > 0.0 {
                format!(", UNSERVED {unserved:.1}s")
            } else {
                String::new()
            }
        ));
    }

    fn inject(&mut self, index: usize, fault: &Fault) -> Injected {
        self.phase = "inject";
        let node = self.resolve(fault.role);
        let (inj, err) = match inject(self.lab, fault, node) {
            Ok(inj) => (inj, None),
            Err((inj, e)) => (inj, Some(e)),
        };
        let line = format!("#{} {}", self.history.len() + 1, inj.describe());
        self.history.push(line.clone());
        self.log(&format!(
            "step {index}: {line}{}",
            err.map(|e| format!(" [injection failed: {e}]"))
                .unwrap_or_default()
        ));
        inj
    }

    fn heal(&mut self, inj: &Injected) {
        self.phase = "heal";
        if let Err(e) = inj.heal(self.lab) {
            self.log(&format!("heal of {} failed: {e}", inj.describe()));
        }
    }

    /// Seconds without exactly one node serving after the quiet period (0 when one serves at
    /// once). Repairs the lab when none serves within [`SERVE_BOUND`], or when a violation is
    /// still going on after it (two Bitbucket or two VIPs while one node serves is not
    /// "unserved", but it does not end by itself).
    fn serve_check(&mut self, index: usize) -> f64 {
        let start = Instant::now();
        let mut unserved = Duration::ZERO;
        let mut repaired = false;
        loop {
            self.tick();
            let looked = Instant::now();
            // As the sampler counts: a powered-off node's namespace keeps the addresses of its
            // last life, but its links are cut and its next boot flushes them. A node fenced
            // after the operator's round (a fence late in the cycle) would otherwise count as a
            // second holder until the repair.
            let holders: Vec<Node> = self
                .lab
                .vip_holder(VIP)
                .into_iter()
                .filter(|n| self.lab.node_on(*n))
                .collect();
            let serving = match holders.as_slice() {
                [one] => self.lab.client_get(VIP, SIM_PORT).ok_from(*one),
                _ => false,
            };
            if serving && !self.sampler.in_violation() {
                break;
            }
            if start.elapsed() > SERVE_BOUND {
                if repaired {
                    self.log(&format!(
                        "still not settled {SERVE_BOUND:?} after the repair: going on"
                    ));
                    break;
                }
                let why = format!(
                    "{} {SERVE_BOUND:?} after step {index}'s quiet period (VIP on {holders:?}); last fault {}",
                    if serving { "violation still going on" } else { "not served" },
                    self.history.last().cloned().unwrap_or_default()
                );
                let r = Instant::now();
                self.repair(&why);
                if !serving {
                    unserved += r.elapsed();
                }
                repaired = true;
                continue;
            }
            std::thread::sleep(Duration::from_millis(100));
            if !serving {
                unserved += looked.elapsed();
            }
        }
        let unserved = unserved.as_secs_f64();
        if unserved > 0.0 {
            self.unserved += unserved;
            self.log(&format!(
                "UNSERVED {unserved:.1}s after the quiet period; preceding fault {}",
                self.history.last().cloned().unwrap_or_default()
            ));
        }
        unserved
    }

    /// Brings the lab back to a known state: both nodes off, then n1 and n2 on.
    fn repair(&mut self, why: &str) {
        self.repairs += 1;
        self.phase = "repair";
        self.log(&format!(
            "REPAIR: {why}: power both nodes off and on\n{}",
            self.nodes_report().trim_end()
        ));
        for n in Node::BOTH {
            let _ = power(self.lab, n, "off");
        }
        for n in Node::BOTH {
            if !wait_node_power(self.lab, n, false, soak::POWER_TIMEOUT) {
                self.log(&format!("repair: {} did not power off", n.name()));
            }
        }
        for n in Node::BOTH {
            if let Err(e) = ensure_on(self.lab, n) {
                self.log(&format!("repair: {e}"));
            }
            self.sleep(Duration::from_millis(500));
        }
        self.phase = "after repair";
    }

    fn summary(&self, faults: usize, seed: u64, harness_errors: usize) {
        self.table(faults);
        let n = self.cycle_times.len().max(1) as f64;
        let mean = self.cycle_times.iter().sum::<f64>() / n;
        say(&format!(
            "\nsoak: {} steps, cycle mean {mean:.1}s, {} repairs, {harness_errors} harness errors, {} samples ({} sampler errors), {:.0} s in all",
            self.cycle_times.len(),
            self.repairs,
            self.sampler.samples(),
            self.sampler.errors(),
            self.t()
        ));
        say(&format!(
            "soak: {faults} faults, {} violations, unserved {:.1} s, seed {seed}",
            self.violations, self.unserved
        ));
    }

    /// The per-kind table (Markdown, for BENCHMARKS.md).
    fn table(&self, faults: usize) {
        say("");
        say("| kind | faults | violations | unserved s | availability % |");
        say("|---|---:|---:|---:|---:|");
        for k in Kind::ALL {
            let st = self.stats.get(&k).cloned().unwrap_or_default();
            if st.faults == 0 {
                continue;
            }
            say(&format!(
                "| {} | {} | {} | {:.1} | {:.2} |",
                k.name(),
                st.faults,
                st.violations,
                st.unserved,
                100.0 * st.answered as f64 / st.probes.max(1) as f64
            ));
        }
        // The total counts each cycle once (an overlapped step counts for both its kinds
        // above).
        say(&format!(
            "| **all** | {faults} | {} | {:.1} | {:.2} |",
            self.violations,
            self.unserved,
            100.0 * self.answered as f64 / self.probes.max(1) as f64
        ));
    }
}
