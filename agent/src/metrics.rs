//! Prometheus metrics (`[metrics]`): the names, HELP and TYPE of every metric, the daemon's
//! counters that only metrics need, and the rendering into the text exposition format (0.0.4).
//!
//! Conventions, after ClusterLabs' `ha_cluster_exporter`: an enumeration is one 0/1 gauge per
//! value, labelled (`bbwd_state{state="running"} 1`, every other state 0), so that a query needs
//! no knowledge of encodings and a missing series means "not reported", never "0". Counters end
//! in `_total`, durations are in seconds. Counters start at 0 with each daemon run (Prometheus'
//! `rate()` and `increase()` handle the reset).
//!
//! Owns: [`Counters`] (fed by the daemon where the events happen) and [`render`]. Must not:
//! gather the data (the daemon fills a [`Sample`]), decide anything, or allocate: rendering goes
//! through `fmt::Write` into the caller's fixed buffer, and every table here has a fixed capacity.
//!
//! # Invariants
//! * Every family rendered has one `# HELP` and one `# TYPE` line, and its samples follow them.
//! * Label values come from fixed vocabularies, socket addresses or the version string; they are
//!   escaped all the same (`\\`, `\"`, `\n`).
//! * The largest possible output (every event kind, [`MAX_LINKS`] links, a full takeover
//!   timeline, mirror and pair parts together) fits in `metrics_server::MAX_RESPONSE` (a test
//!   renders it).

use std::fmt::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// The SPEC's states (`bbwd status` `state`), in its order.
pub const STATES: [&str; 10] = [
    "starting",
    "running",
    "correcting",
    "holding",
    "failed",
    "maintenance",
    "stopped",
    "fencing",
    "taking_over",
    "releasing",
];
/// The SPEC's roles (`bbwd status` `role`).
pub const ROLES: [&str; 3] = ["active", "standby", "none"];
/// The SPEC's modes.
pub const MODES: [&str; 3] = ["single", "pair", "mirror"];
/// What HAProxy's agent check can be told, in one word (`mirror::Verdict::word`).
pub const LB_REPLIES: [&str; 4] = ["up", "drain", "down", "maint"];
/// Results of a fence attempt.
pub const FENCE_RESULTS: [&str; 2] = ["confirmed", "failed"];
/// Event kinds counted separately; more distinct kinds than this (there are about 70) are
/// counted under `kind="other"`.
pub const MAX_EVENT_KINDS: usize = 96;
/// Heartbeat links shown (the config allows at most this many).
pub const MAX_LINKS: usize = 8;
/// Heartbeat drop reasons shown (`heartbeat::Reject::ALL` has 11).
pub const MAX_DROP_REASONS: usize = 16;
/// Steps of a takeover timeline shown.
pub const MAX_STEPS: usize = 12;

/// Counters kept by the daemon for metrics only (the status report has no use for totals).
#[derive(Debug, Default)]
pub struct Counters {
    /// Checks the supervisor judged failed (its `consecutive_failures` went up).
    pub check_failures: u64,
    /// `restart` events: Bitbucket started again by a correction or after a crash.
    pub restarts: u64,
    /// Fence attempts by result: `fenced` and `fence_failed` events, without the power-on step
    /// of `action = "cycle"` (which the pair reports with the same kinds, `cycle: ...`).
    pub fence_confirmed: u64,
    pub fence_failed: u64,
    events: heapless::Vec<(&'static str, u64), MAX_EVENT_KINDS>,
    events_other: u64,
    /// The last check, from its start to the probe's (and database check's) outcome.
    pub last_check_duration: Option<Duration>,
}

impl Counters {
    /// Counts one recorded event (every event the daemon records passes here).
    pub fn event(&mut self, kind: &'static str, detail: &str) {
        match self.events.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => {
                if self.events.push((kind, 1)).is_err() {
                    self.events_other += 1;
                }
            }
        }
        let cycle_on = detail.starts_with("cycle:");
        if kind == crate::machine::EventKind::Restart.as_str() {
            self.restarts += 1;
        } else if kind == crate::pair::Kind::Fenced.as_str() && !cycle_on {
            self.fence_confirmed += 1;
        } else if kind == crate::pair::Kind::FenceFailed.as_str() && !cycle_on {
            self.fence_failed += 1;
        }
    }

    /// Events counted for `kind` so far.
    #[cfg(test)]
    pub fn events_of(&self, kind: &str) -> u64 {
        self.events
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

/// One heartbeat link.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub up: bool,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
}

/// Pair mode's part.
#[derive(Debug, Default)]
pub struct Pair {
    pub peer_alive: bool,
    pub links: heapless::Vec<Link, MAX_LINKS>,
    /// Dropped heartbeats by reason (every reason, zeros included).
    pub dropped: heapless::Vec<(&'static str, u64), MAX_DROP_REASONS>,
    pub vip_held: bool,
    /// The peer's BMC session is up; `None` until the first session attempt has finished.
    pub bmc_reachable: Option<bool>,
    /// The last takeover's timeline: step and wall-clock ms.
    pub takeover: heapless::Vec<(&'static str, u64), MAX_STEPS>,
}

/// Mirror mode's part: what HAProxy's agent check was last told.
#[derive(Debug, Clone, Copy)]
pub struct Lb {
    /// One of [`LB_REPLIES`].
    pub reply: &'static str,
    /// Agent-check connections answered since start.
    pub checks: u64,
}

/// Everything rendered, gathered by the daemon.
#[derive(Debug)]
pub struct Sample<'a> {
    pub version: &'static str,
    pub mode: &'static str,
    pub state: &'static str,
    pub role: &'static str,
    /// The last `/status` reply's HTTP status; `None` when the last check got no reply.
    pub http_status: Option<u16>,
    pub consecutive_failures: u32,
    pub watchdog_armed: bool,
    pub petting: bool,
    /// `None` without `[database]` or before its first check.
    pub database_reachable: Option<bool>,
    /// This daemon run's start, wall-clock ms since the Unix epoch.
    pub started_at_ms: u64,
    pub counters: &'a Counters,
    pub pair: Option<&'a Pair>,
    pub lb: Option<Lb>,
}

/// Writes `# HELP` and `# TYPE` of a family.
fn family(w: &mut dyn Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    // HELP text is ours: no backslash or newline to escape.
    write!(w, "# HELP {name} {help}\n# TYPE {name} {kind}\n")
}

/// A label value, escaped as the exposition format wants.
struct Escaped<'s>(&'s str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A takeover step (`fence started`) as a label value (`fence_started`).
struct Snake<'s>(&'s str);

impl fmt::Display for Snake<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            f.write_char(if c.is_ascii_alphanumeric() { c } else { '_' })?;
        }
        Ok(())
    }
}

/// One 0/1 gauge per value of an enumeration.
fn one_of(
    w: &mut dyn Write,
    name: &str,
    label: &str,
    values: &[&str],
    current: &str,
    help: &str,
) -> fmt::Result {
    family(w, name, "gauge", help)?;
    for v in values {
        writeln!(w, "{name}{{{label}=\"{v}\"}} {}", u8::from(*v == current))?;
    }
    Ok(())
}

fn gauge(w: &mut dyn Write, name: &str, value: impl fmt::Display, help: &str) -> fmt::Result {
    family(w, name, "gauge", help)?;
    writeln!(w, "{name} {value}")
}

fn counter(w: &mut dyn Write, name: &str, value: u64, help: &str) -> fmt::Result {
    family(w, name, "counter", help)?;
    writeln!(w, "{name} {value}")
}

/// Renders every metric of `s`. Fails only when `w` is full.
pub fn render(s: &Sample<'_>, w: &mut dyn Write) -> fmt::Result {
    render_identity(s, w)?;
    render_bitbucket(s, w)?;
    render_watchdog(s, w)?;
    if let Some(p) = s.pair {
        render_pair(p, s.counters, w)?;
    }
    render_mirror(s, w)
}

/// What this daemon is: version, start time, mode, state, role.
fn render_identity(s: &Sample<'_>, w: &mut dyn Write) -> fmt::Result {
    family(
        w,
        "bbwd_build_info",
        "gauge",
        "bbwd's version, as a label (always 1).",
    )?;
    writeln!(w, "bbwd_build_info{{version=\"{}\"}} 1", Escaped(s.version))?;
    gauge(
        w,
        "bbwd_start_time_seconds",
        format_args!("{:.3}", s.started_at_ms as f64 / 1000.0),
        "When this run of the daemon started, seconds since the Unix epoch.",
    )?;
    one_of(
        w,
        "bbwd_mode",
        "mode",
        &MODES,
        s.mode,
        "The node's topology (single, pair, mirror): 1 for this node's.",
    )?;
    one_of(
        w,
        "bbwd_state",
        "state",
        &STATES,
        s.state,
        "The node's state as bbwd status reports it: 1 for the current one, 0 for the others.",
    )?;
    one_of(
        w,
        "bbwd_role",
        "role",
        &ROLES,
        s.role,
        "The node's role (pair mode: active or standby; otherwise none): 1 for the current one.",
    )?;
    Ok(())
}

/// Bitbucket as the supervisor sees it: the last check, failures, restarts, events.
fn render_bitbucket(s: &Sample<'_>, w: &mut dyn Write) -> fmt::Result {
    let c = s.counters;
    gauge(
        w,
        "bbwd_bitbucket_http_status",
        s.http_status.unwrap_or(0),
        "HTTP status of Bitbucket's last /status reply; 0 when the last check got no reply \
         (refused, timeout, garbage) or none was made yet.",
    )?;
    gauge(
        w,
        "bbwd_bitbucket_consecutive_failures",
        s.consecutive_failures,
        "Failed checks in a row (reset by a healthy one).",
    )?;
    counter(
        w,
        "bbwd_bitbucket_restarts_total",
        c.restarts,
        "Bitbucket restarts (a correction or a crash) by this daemon run.",
    )?;
    counter(
        w,
        "bbwd_check_failures_total",
        c.check_failures,
        "Checks of Bitbucket's /status judged failed (the SPEC failure table).",
    )?;
    if let Some(d) = c.last_check_duration {
        gauge(
            w,
            "bbwd_last_check_duration_seconds",
            format_args!("{:.6}", d.as_secs_f64()),
            "How long the last check took (the /status probe, and the database check if any).",
        )?;
    }
    family(
        w,
        "bbwd_events_total",
        "counter",
        "Events recorded (the kinds of bbwd status' events), by kind.",
    )?;
    for (kind, n) in &c.events {
        writeln!(w, "bbwd_events_total{{kind=\"{}\"}} {n}", Escaped(kind))?;
    }
    if c.events_other > 0 {
        writeln!(w, "bbwd_events_total{{kind=\"other\"}} {}", c.events_other)?;
    }
    Ok(())
}

/// The watchdog, and the database check that shares its section of status.
fn render_watchdog(s: &Sample<'_>, w: &mut dyn Write) -> fmt::Result {
    gauge(
        w,
        "bbwd_watchdog_armed",
        u8::from(s.watchdog_armed),
        "1 when a hardware watchdog ([watchdog] device) is armed and petted by bbwd.",
    )?;
    gauge(
        w,
        "bbwd_watchdog_petting",
        u8::from(s.petting),
        "0 once the node decided it cannot correct itself (the watchdog, if armed, resets it).",
    )?;
    if let Some(up) = s.database_reachable {
        gauge(
            w,
            "bbwd_database_reachable",
            u8::from(up),
            "1 when the last [database] connect check succeeded.",
        )?;
    }
    Ok(())
}

/// Mirror mode: what HAProxy's agent check is told.
fn render_mirror(s: &Sample<'_>, w: &mut dyn Write) -> fmt::Result {
    if let Some(lb) = s.lb {
        one_of(
            w,
            "bbwd_lb_reply",
            "reply",
            &LB_REPLIES,
            lb.reply,
            "What HAProxy's agent check is told (up, drain, down, maint): 1 for the current reply.",
        )?;
        counter(
            w,
            "bbwd_lb_agent_checks_total",
            lb.checks,
            "HAProxy agent-check connections accepted.",
        )?;
    }
    Ok(())
}

fn render_pair(p: &Pair, c: &Counters, w: &mut dyn Write) -> fmt::Result {
    gauge(
        w,
        "bbwd_peer_alive",
        u8::from(p.peer_alive),
        "1 while the peer's heartbeats arrive (on any link).",
    )?;
    family(
        w,
        "bbwd_heartbeat_link_up",
        "gauge",
        "1 while a heartbeat link carries the peer's heartbeats both ways.",
    )?;
    for (i, l) in p.links.iter().enumerate() {
        write!(w, "bbwd_heartbeat_link_up{{link=\"{i}\"")?;
        if let Some(a) = l.local {
            write!(w, ",local=\"{a}\"")?;
        }
        if let Some(a) = l.peer {
            write!(w, ",peer=\"{a}\"")?;
        }
        writeln!(w, "}} {}", u8::from(l.up))?;
    }
    family(
        w,
        "bbwd_heartbeat_dropped_total",
        "counter",
        "Heartbeat packets dropped, by reason (unauthenticated, replayed, wrong_link...).",
    )?;
    for (reason, n) in &p.dropped {
        writeln!(
            w,
            "bbwd_heartbeat_dropped_total{{reason=\"{}\"}} {n}",
            Escaped(reason)
        )?;
    }
    gauge(
        w,
        "bbwd_vip_held",
        u8::from(p.vip_held),
        "1 while this node holds the virtual IP.",
    )?;
    family(
        w,
        "bbwd_fence_attempts_total",
        "counter",
        "Fence attempts on the peer's BMC, by result (confirmed off, or failed).",
    )?;
    for (result, n) in FENCE_RESULTS
        .iter()
        .zip([c.fence_confirmed, c.fence_failed])
    {
        writeln!(w, "bbwd_fence_attempts_total{{result=\"{result}\"}} {n}")?;
    }
    if let Some(up) = p.bmc_reachable {
        gauge(
            w,
            "bbwd_peer_bmc_reachable",
            u8::from(up),
            "1 while the session to the peer's BMC is up (fencing would work).",
        )?;
    }
    if let Some(&(_, first_ms)) = p.takeover.first() {
        family(
            w,
            "bbwd_last_takeover_seconds",
            "gauge",
            "The last takeover's steps, seconds after its first one (peer_lost, or fence_started).",
        )?;
        for (step, ms) in &p.takeover {
            writeln!(
                w,
                "bbwd_last_takeover_seconds{{step=\"{}\"}} {:.3}",
                Snake(step),
                ms.saturating_sub(first_ms) as f64 / 1000.0
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbwd_platform::metrics_server::{Body, MAX_RESPONSE};

    fn single(counters: &Counters) -> Sample<'_> {
        Sample {
            version: "0.1.0",
            mode: "single",
            state: "running",
            role: "none",
            http_status: Some(200),
            consecutive_failures: 0,
            watchdog_armed: false,
            petting: true,
            database_reachable: None,
            started_at_ms: 1_700_000_000_123,
            counters,
            pair: None,
            lb: None,
        }
    }

    fn text(s: &Sample<'_>) -> String {
        let mut out = String::new();
        render(s, &mut out).unwrap();
        out
    }

    #[test]
    fn one_gauge_per_state_and_role_with_exactly_one_set() {
        let c = Counters::default();
        let t = text(&single(&c));
        for st in STATES {
            let want = u8::from(st == "running");
            assert!(
                t.contains(&format!("bbwd_state{{state=\"{st}\"}} {want}\n")),
                "{t}"
            );
        }
        assert!(t.contains("bbwd_role{role=\"none\"} 1\n"));
        assert!(t.contains("bbwd_role{role=\"active\"} 0\n"));
        assert!(t.contains("bbwd_build_info{version=\"0.1.0\"} 1\n"));
        assert!(t.contains("bbwd_start_time_seconds 1700000000.123\n"));
        assert!(t.contains("bbwd_bitbucket_http_status 200\n"));
        // Not known yet: not shown.
        assert!(!t.contains("bbwd_last_check_duration_seconds"));
        assert!(!t.contains("bbwd_peer_alive"));
        assert!(!t.contains("bbwd_lb_reply"));
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let mut c = Counters::default();
        c.event("restart", "restart 1/1");
        c.last_check_duration = Some(Duration::from_millis(3));
        let mut p = Pair::default();
        p.links
            .push(Link {
                up: true,
                local: None,
                peer: None,
            })
            .unwrap();
        p.takeover.push(("peer lost", 1000)).unwrap();
        let mut s = single(&c);
        s.pair = Some(&p);
        s.lb = Some(Lb {
            reply: "up",
            checks: 3,
        });
        let t = text(&s);
        let mut typed: Vec<&str> = Vec::new();
        let mut helped: Vec<&str> = Vec::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!helped.contains(&name), "two HELP for {name}");
                helped.push(name);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!typed.contains(&name), "two TYPE for {name}");
                assert_eq!(helped.last(), Some(&name), "TYPE after its HELP");
                typed.push(name);
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(typed.last(), Some(&name), "sample {line} under its TYPE");
            }
        }
        assert_eq!(helped, typed);
    }

    #[test]
    fn counters_follow_events() {
        let mut c = Counters::default();
        c.event("restart", "restart 1/1 within 3600s: pid 7");
        c.event("crash", "exited");
        c.event("restart", "restart 2/2");
        c.event("fenced", "peer confirmed off: ...");
        c.event("fence_failed", "BMC unreachable");
        c.event("fenced", "cycle: the peer is powered on again");
        c.event("fence_failed", "cycle: powering the peer back on: timeout");
        assert_eq!(c.restarts, 2);
        assert_eq!((c.fence_confirmed, c.fence_failed), (1, 1));
        assert_eq!(c.events_of("restart"), 2);
        assert_eq!(c.events_of("fenced"), 2);
        let t = text(&single(&c));
        assert!(t.contains("bbwd_bitbucket_restarts_total 2\n"));
        assert!(t.contains("bbwd_events_total{kind=\"crash\"} 1\n"));
    }

    #[test]
    fn takeover_steps_are_seconds_after_the_first_with_snake_case_labels() {
        let c = Counters::default();
        let mut p = Pair::default();
        for (step, ms) in [
            ("peer lost", 10_000),
            ("fence started", 11_250),
            ("active", 42_500),
        ] {
            p.takeover.push((step, ms)).unwrap();
        }
        let mut s = single(&c);
        s.pair = Some(&p);
        let t = text(&s);
        assert!(
            t.contains("bbwd_last_takeover_seconds{step=\"peer_lost\"} 0.000\n"),
            "{t}"
        );
        assert!(t.contains("bbwd_last_takeover_seconds{step=\"fence_started\"} 1.250\n"));
        assert!(t.contains("bbwd_last_takeover_seconds{step=\"active\"} 32.500\n"));
        assert!(t.contains("bbwd_fence_attempts_total{result=\"confirmed\"} 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(Escaped("a\"b\\c\nd").to_string(), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn more_event_kinds_than_the_table_holds_go_to_other() {
        let mut c = Counters::default();
        let names: Vec<&'static str> = (0..MAX_EVENT_KINDS + 3)
            .map(|i| &*Box::leak(format!("kind_{i}").into_boxed_str()))
            .collect();
        for n in &names {
            c.event(n, "");
        }
        let t = text(&single(&c));
        assert!(t.contains("bbwd_events_total{kind=\"other\"} 3\n"));
    }

    /// The largest output there can be fits in the server's fixed response buffer, with room.
    #[test]
    fn the_largest_output_fits_the_response_buffer() {
        let mut c = Counters::default();
        let names: Vec<&'static str> = (0..MAX_EVENT_KINDS + 1)
            .map(|i| &*Box::leak(format!("vip_removed_behind_our_back_{i:03}").into_boxed_str()))
            .collect();
        for n in &names {
            for _ in 0..1000 {
                c.event(n, "");
            }
        }
        c.check_failures = u64::MAX;
        c.restarts = u64::MAX;
        c.last_check_duration = Some(Duration::from_secs(3600));
        let mut p = Pair::default();
        let addr: SocketAddr = "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535"
            .parse()
            .unwrap();
        for _ in 0..MAX_LINKS {
            p.links
                .push(Link {
                    up: true,
                    local: Some(addr),
                    peer: Some(addr),
                })
                .unwrap();
        }
        for _ in 0..MAX_DROP_REASONS {
            p.dropped.push(("unauthenticated", u64::MAX)).unwrap();
        }
        for _ in 0..MAX_STEPS {
            p.takeover.push(("bitbucket healthy", u64::MAX)).unwrap();
        }
        p.bmc_reachable = Some(true);
        let mut s = single(&c);
        s.database_reachable = Some(true);
        s.pair = Some(&p);
        s.lb = Some(Lb {
            reply: "maint",
            checks: u64::MAX,
        });
        let mut buf = vec![0u8; MAX_RESPONSE - 256];
        let mut body = Body::new(&mut buf);
        render(&s, &mut body).unwrap();
        assert!(!body.overflowed());
        // About 13.4 KiB: the server's 16 KiB leave room for new event kinds.
        assert!(body.len() < MAX_RESPONSE - 2048, "{} bytes", body.len());
    }
}
