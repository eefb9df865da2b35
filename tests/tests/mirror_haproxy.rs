//! Mirror-farm nodes behind a real HAProxy (issue 5, part 1): two `bbwd run` daemons, each
//! supervising its own Bitbucket simulator and serving HAProxy's agent check, and one HAProxy in
//! front of both. Faults go to one node at a time; HAProxy's stats socket must show the node
//! taken out (DOWN after a crash, DRAIN during Bitbucket's MAINTENANCE, MAINT/DRAIN during
//! `bbwd maintenance on --maint` / `on`) and back in, while a client loop through HAProxy keeps
//! getting answers. Timings are printed, never asserted beyond generous bounds; the crash rounds
//! are measured many times over by `bench mirror` (`src/bench/mirror.rs`).
//!
//! Needs `haproxy` (scripts/setup.sh); with `CI` set a missing HAProxy fails the test.

use std::time::Duration;

use bbwd_tests::haproxy::{self, mirror_node, ClientLoop, Haproxy};
use bbwd_tests::{count_events, free_port, sim_admin, Daemon, Scenario, Value};

/// Generous bound for anything HAProxy or bbwd should do in well under a second.
const SOON: Duration = Duration::from_secs(15);
fn lb(status: &Value) -> (&str, &str) {
    (
        status["load_balancer"]["state"].as_str().unwrap_or(""),
        status["load_balancer"]["reply"].as_str().unwrap_or(""),
    )
}

/// `bbwd ARGS` on a node; panics unless it exits 0.
fn bbwd_ok(sc: &Scenario, args: &[&str]) {
    let out = sc.bbwd(args);
    assert!(
        out.status.success(),
        "bbwd {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs haproxy (scripts/setup.sh)"]
fn haproxy_takes_mirror_nodes_out_and_back_while_requests_keep_succeeding() {
    if !haproxy::available() {
        return;
    }
    // BBWD_MIRROR_BENCH_RUNS: how many crash rounds (default 1).
    let crash_rounds: usize = std::env::var("BBWD_MIRROR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let (a, a_agent) = mirror_node(Scenario::new("mirror-a"));
    let (b, b_agent) = mirror_node(Scenario::new("mirror-b"));
    let mut da = Daemon::start(&a);
    let mut db = Daemon::start(&b);
    for d in [&mut da, &mut db] {
        let st = d.wait_for(SOON, "running and answering `up` to HAProxy", |s| {
            s["state"] == "running" && lb(s).0 == "up"
        });
        assert_eq!(st["mode"], "mirror");
        assert_eq!(lb(&st).1, "up ready #RUNNING");
    }
    // The clock as the kernel reports it (this machine may or may not run NTP): unsynchronised
    // means WARNING and a `clock_unsynced` event on a mirror node, synchronised means neither.
    let (code, st) = a.status_json();
    assert!(st["clock"]["max_error_ms"].is_u64(), "{st:#}");
    if st["clock"]["synchronized"] == false {
        assert_eq!(code, 1, "an unsynchronised clock is a WARNING: {st:#}");
        assert_eq!(count_events(&st, "clock_unsynced"), 1, "{st:#}");
    } else {
        assert_eq!(st["clock"]["synchronized"], true, "{st:#}");
        assert_eq!(code, 0, "{st:#}");
        assert_eq!(count_events(&st, "clock_unsynced"), 0, "{st:#}");
    }

    let proxy =
        Haproxy::start_mirrors_up(a.dir.path(), [(a.port, a_agent), (b.port, b_agent)], SOON);
    let client = ClientLoop::start(
        proxy.port,
        "/status",
        Duration::from_millis(20),
        20_000,
        Duration::from_secs(300),
    );

    // 1. Bitbucket crashes on node a: bbwd restarts it at once and tells HAProxy `down` meanwhile.
    for round in 1..=crash_rounds {
        let start = std::time::Instant::now();
        sim_admin(a.port, "/_sim/crash");
        let (row, _) = proxy.wait_server("m1", SOON, "DOWN after the crash", |r| {
            r["status"].starts_with("DOWN")
        });
        let to_down = start.elapsed();
        assert!(
            row["last_agt"].starts_with("via agent : down"),
            "HAProxy took the node out through the agent check: {row:?}"
        );
        let (_, to_up) =
            proxy.wait_server("m1", SOON, "UP after the restart", |r| r["status"] == "UP");
        // down_to_up includes STARTING_FOR, the simulated Bitbucket start-up.
        println!(
            "bench: round {round} crash_to_down_ms={} down_to_up_ms={}",
            to_down.as_millis(),
            to_up.as_millis()
        );
    }
    let st = da.wait_for(SOON, "restarted and up", |s| lb(s).0 == "up");
    assert!(st["restarts"].as_u64().unwrap_or(0) >= 1, "{st:#}");

    // 2. Bitbucket's own MAINTENANCE on node b: drained (no new sessions), then back.
    let (code, _) = sim_admin(b.port, "/_sim/status?code=200&state=MAINTENANCE");
    assert_eq!(code, 200);
    let (row, _) = proxy.wait_server("m2", SOON, "DRAIN", |r| r["status"].starts_with("DRAIN"));
    assert_eq!(
        row["last_agt"], "via agent : up (Bitbucket MAINTENANCE)",
        "{row:?}"
    );
    let st = db.wait_for(SOON, "drain in status", |s| lb(s).0 == "drain");
    assert_eq!(lb(&st).1, "up drain #Bitbucket MAINTENANCE");
    assert_eq!(
        st["state"], "running",
        "MAINTENANCE is healthy (SPEC failure table)"
    );
    client.wait_more_ok(5, SOON);
    sim_admin(b.port, "/_sim/reset");
    proxy.wait_server("m2", SOON, "UP after MAINTENANCE", |r| r["status"] == "UP");

    // 3. The operator: `maintenance on --maint` takes node a out entirely, plain `on` drains it.
    bbwd_ok(
        &a,
        &["maintenance", "on", "--maint", "--reason", "disk swap"],
    );
    let (row, _) = proxy.wait_server("m1", SOON, "MAINT", |r| r["status"].starts_with("MAINT"));
    assert!(row["status"].starts_with("MAINT"), "{row:?}");
    let st = da.wait_for(SOON, "maint in status", |s| lb(s).0 == "maint");
    assert_eq!(lb(&st).1, "up maint #bbwd maintenance: disk swap");
    client.wait_more_ok(5, SOON);
    bbwd_ok(&a, &["maintenance", "off"]);
    proxy.wait_server("m1", SOON, "UP after maint", |r| r["status"] == "UP");
    bbwd_ok(&a, &["maintenance", "on", "--reason", "upgrade"]);
    let (row, _) = proxy.wait_server("m1", SOON, "DRAIN", |r| r["status"].starts_with("DRAIN"));
    assert_eq!(
        row["last_agt"],
        "via agent : up (bbwd maintenance: upgrade)"
    );
    client.wait_more_ok(5, SOON);
    bbwd_ok(&a, &["maintenance", "off"]);
    proxy.wait_server("m1", SOON, "UP after drain", |r| r["status"] == "UP");

    let report = client.finish();
    println!(
        "client through HAProxy: {} ok, {} failed in {:?}",
        report.ok,
        report.failures.len(),
        report.elapsed
    );
    assert!(report.ok >= 15, "the client loop hardly ran: {report:?}");
    assert!(
        report.failures.is_empty(),
        "requests through HAProxy failed: {:?}\n--- haproxy.log ---\n{}",
        report.failures,
        proxy.log()
    );
    // `show servers state` agrees: both servers operational (srv_op_state 2 = running) and
    // administratively ready (srv_admin_state 0).
    let state = proxy
        .command("show servers state mirrors")
        .expect("show servers state");
    for m in ["m1", "m2"] {
        let line = state
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(m))
            .unwrap_or_else(|| panic!("{m} missing from show servers state:\n{state}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((cols[5], cols[6]), ("2", "0"), "{m}: {line}");
    }
    drop(proxy);
    a.assert_never_two_sims();
    b.assert_never_two_sims();
}

#[test]
fn drain_and_maint_flags_are_refused_on_a_node_without_a_load_balancer() {
    let sc = Scenario::new("mirror-nolb");
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(SOON, "running");
    assert_eq!(st["mode"], "single");
    assert!(st["load_balancer"].is_null(), "{st:#}");
    // The clock is reported on every node, but only a mirror node warns about it.
    assert!(st["clock"]["synchronized"].is_boolean(), "{st:#}");
    assert_eq!(d.status_json().0, 0);
    assert_eq!(count_events(&st, "clock_unsynced"), 0);
    let out = sc.bbwd(&["maintenance", "on", "--maint"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mirror-farm node"),
        "{out:?}"
    );
    assert!(d.status_json().1["maintenance"].is_null());
}

#[test]
fn the_agent_check_answers_down_while_bitbucket_fails_to_start() {
    // No HAProxy needed: speak the protocol directly, as HAProxy does.
    let (sc, agent_port) = {
        let sc = Scenario::new("mirror-failstart").sim_args(&["--fail-start", "exit"]);
        let agent_port = free_port();
        let text = format!(
            "{}\n[load_balancer]\nhaproxy_agent = \"127.0.0.1:{agent_port}\"\n",
            sc.config_text()
        );
        sc.write_config_text(&text);
        (sc, agent_port)
    };
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(SOON, "failed");
    assert_eq!(lb(&st).0, "down");
    let reply = agent_line(agent_port);
    assert_eq!(
        reply,
        "down ready #failed: start_failed (manual intervention)\n"
    );
    assert_eq!(reply, format!("{}\n", lb(&st).1));
}

/// Connects like HAProxy's agent check and reads the line until the agent closes.
fn agent_line(port: u16) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the agent's line");
    out
}

#[test]
fn a_taken_agent_port_stops_bbwd_at_start_before_bitbucket() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local_addr").port();
    let sc = Scenario::new("mirror-taken");
    let text = format!(
        "{}\n[load_balancer]\nhaproxy_agent = \"127.0.0.1:{port}\"\n",
        sc.config_text()
    );
    sc.write_config_text(&text);
    let mut d = Daemon::start(&sc);
    let exit = d
        .wait_exit(SOON)
        .unwrap_or_else(|| panic!("bbwd kept running\n{}", sc.diagnostics()));
    assert_eq!(exit.code(), Some(1), "{}", sc.diagnostics());
    let log = std::fs::read_to_string(sc.bbwd_log()).unwrap_or_default();
    assert!(
        log.contains("load_balancer.haproxy_agent") && log.contains(&format!("127.0.0.1:{port}")),
        "{log}"
    );
    assert!(sc.sim_starts().is_empty(), "Bitbucket was started anyway");
}

#[test]
fn the_maintenance_mode_for_haproxy_survives_a_bbwd_restart() {
    let (sc, agent_port) = mirror_node(Scenario::new("mirror-persist"));
    let mut d = Daemon::start(&sc);
    d.wait_for(SOON, "up", |s| lb(s).0 == "up");
    bbwd_ok(
        &sc,
        &["maintenance", "on", "--maint", "--reason", "rack move"],
    );
    assert_eq!(
        agent_line(agent_port),
        "up maint #bbwd maintenance: rack move\n"
    );
    // bbwd dies (Bitbucket keeps running); the next one re-adopts it and still says maint.
    d.kill9();
    let mut d = Daemon::start(&sc);
    d.wait_for(SOON, "maint after the restart", |s| {
        lb(s).1 == "up maint #bbwd maintenance: rack move"
    });
    // Switching to drain while maintenance is on is persisted as well.
    bbwd_ok(
        &sc,
        &["maintenance", "on", "--drain", "--reason", "rack move"],
    );
    assert_eq!(
        agent_line(agent_port),
        "up drain #bbwd maintenance: rack move\n"
    );
    d.kill9();
    let mut d = Daemon::start(&sc);
    d.wait_for(SOON, "drain after the second restart", |s| {
        lb(s).1 == "up drain #bbwd maintenance: rack move"
    });
    bbwd_ok(&sc, &["maintenance", "off"]);
    d.wait_for(SOON, "up after maintenance", |s| {
        lb(s).1 == "up ready #RUNNING"
    });
    assert_eq!(agent_line(agent_port), "up ready #RUNNING\n");
    sc.assert_never_two_sims();
}
