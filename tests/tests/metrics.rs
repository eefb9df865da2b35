//! Prometheus metrics (issue 10, part 1): `[metrics] listen` scraped while a single node, a
//! mirror-farm node and a pair run, every scrape checked by `promtool check metrics`; a crash
//! moves `bbwd_bitbucket_restarts_total`; idle connections that send nothing do not stall the
//! loop (status still answers, a fresh scrape is still answered); the textfile appears and
//! parses; a real Prometheus scrapes the endpoint and answers a query through its HTTP API.
//!
//! Needs Debian's `prometheus` (promtool, prometheus); the pair part also root, iproute2,
//! ipmi_sim and ipmitool (the pair lab). Under `CI` their absence fails the test.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bbwd_tests::pairlab::{self, Node, PairLab};
use bbwd_tests::pairnode::{set_up_node_with, wait_role};
use bbwd_tests::prom::{self, value};
use bbwd_tests::{count_events, free_port, sim_admin, wait_until, Daemon, Scenario};

const WAIT: Duration = Duration::from_secs(20);

/// Idle connections opened at once: three times the server's slots.
const IDLE_CONNECTIONS: usize = 12;

/// A scrape that must succeed, checked by promtool: the body.
fn scrape_checked(addr: SocketAddr) -> String {
    let (code, ctype, body) = prom::scrape(addr);
    assert_eq!(code, 200, "{body}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    if let Err(e) = prom::check(&body) {
        panic!("{e}\n--- scraped ---\n{body}");
    }
    body
}

/// A single node with `[metrics]` on a free loopback port and a textfile in its directory.
fn single_with_metrics(name: &str, extra: &str) -> (Scenario, SocketAddr) {
    // Restarts are not budgeted tightly: a test corrects the node twice.
    let sc = Scenario::new(name).bitbucket("max_restarts", "10");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let textfile = sc.dir.join("textfile/bbwd.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    let text = format!(
        "{}\n[metrics]\nlisten = \"{addr}\"\ntextfile = \"{}\"\n{extra}",
        sc.config_text(),
        textfile.display()
    );
    sc.write_config_text(&text);
    (sc, addr)
}

#[test]
#[ignore = "needs promtool (scripts/setup.sh: prometheus)"]
fn single_node_metrics_follow_a_crash_and_survive_idle_connections() {
    if !prom::available() {
        return;
    }
    let (sc, addr) = single_with_metrics("metrics-single", "");
    let mut d = Daemon::start(&sc);
    let st = d.wait_state(WAIT, "running");
    assert!(st["bitbucket"]["pid"].is_u64());

    let m = scrape_checked(addr);
    assert_eq!(value(&m, "bbwd_state{state=\"running\"}"), Some(1.0), "{m}");
    assert_eq!(value(&m, "bbwd_state{state=\"stopped\"}"), Some(0.0));
    assert_eq!(value(&m, "bbwd_role{role=\"none\"}"), Some(1.0));
    assert_eq!(value(&m, "bbwd_mode{mode=\"single\"}"), Some(1.0));
    assert_eq!(value(&m, "bbwd_bitbucket_http_status"), Some(200.0));
    assert_eq!(value(&m, "bbwd_bitbucket_restarts_total"), Some(0.0));
    assert_eq!(value(&m, "bbwd_watchdog_armed"), Some(0.0));
    assert!(
        value(&m, "bbwd_last_check_duration_seconds").is_some(),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &format!(
                "bbwd_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{m}"
    );
    assert!(!m.contains("bbwd_peer_alive") && !m.contains("bbwd_lb_reply"));

    // A crash: restarted at once; the counter and the events move.
    sim_admin(sc.port, "/_sim/crash");
    d.wait_for(WAIT, "running again after one restart", |s| {
        s["state"] == "running" && s["restarts"] == 1
    });
    wait_until(WAIT, "bbwd_bitbucket_restarts_total 1", || {
        value(&prom::scrape(addr).2, "bbwd_bitbucket_restarts_total") == Some(1.0)
    });
    let m = scrape_checked(addr);
    assert_eq!(
        value(&m, "bbwd_events_total{kind=\"crash\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(value(&m, "bbwd_events_total{kind=\"restart\"}"), Some(1.0));

    // A failing /status: failed checks are counted as the supervisor judges them.
    sim_admin(sc.port, "/_sim/status?code=500&state=ERROR");
    let st = d.wait_for(WAIT, "a failed check", |s| {
        count_events(s, "check_failed") >= 1
    });
    let failed = count_events(&st, "check_failed") as f64;
    wait_until(WAIT, "bbwd_check_failures_total to count it", || {
        value(&prom::scrape(addr).2, "bbwd_check_failures_total").is_some_and(|n| n >= failed)
    });
    d.wait_for(WAIT, "corrected and running", |s| {
        s["state"] == "running" && s["restarts"] == 2
    });

    // Idle connections that never send a request: the loop goes on (status answers, its pass
    // counter moves), and a fresh scrape is still answered.
    let (_, before) = sc.status_json();
    let passes_before = before["loop"]["passes"].as_u64().unwrap();
    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    d.wait_for(WAIT, "the loop to keep passing with idle scrapers", |s| {
        s["loop"]["passes"].as_u64().unwrap_or(0) > passes_before + 10
    });
    let m = scrape_checked(addr);
    assert_eq!(value(&m, "bbwd_state{state=\"running\"}"), Some(1.0), "{m}");
    // Requests other than GET /metrics get their status.
    let (code, body) = bbwd_tests::http_get(addr.port(), "/").unwrap();
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    drop(idle);

    // The textfile: there, complete, valid.
    let textfile = sc.dir.join("textfile/bbwd.prom");
    wait_until(WAIT, "the textfile", || textfile.exists());
    let t = std::fs::read_to_string(&textfile).unwrap();
    prom::check(&t).unwrap_or_else(|e| panic!("{e}\n--- textfile ---\n{t}"));
    assert_eq!(value(&t, "bbwd_mode{mode=\"single\"}"), Some(1.0), "{t}");

    // A clean stop leaves the final state in the textfile.
    let exit = d.stop();
    assert_eq!(exit.code(), Some(0), "{}", sc.diagnostics());
    let t = std::fs::read_to_string(&textfile).unwrap();
    assert_eq!(value(&t, "bbwd_state{state=\"stopped\"}"), Some(1.0), "{t}");
    let names: Vec<_> = std::fs::read_dir(textfile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["bbwd.prom"], "no temporary file left");
}

#[test]
#[ignore = "needs prometheus and promtool (scripts/setup.sh)"]
fn a_real_prometheus_scrapes_bbwd() {
    if !prom::available() {
        return;
    }
    let (sc, addr) = single_with_metrics("metrics-prometheus", "");
    let mut d = Daemon::start(&sc);
    d.wait_state(WAIT, "running");
    let server = prom::Server::start(sc.dir.path(), addr);
    server.wait_value("up{job=\"bbwd\"}", 1.0, Duration::from_secs(60));
    server.wait_value("bbwd_state{state=\"running\"}", 1.0, WAIT);
    server.wait_value("sum(bbwd_state)", 1.0, WAIT);
    // The scrape itself is what Prometheus measures: no sample was refused.
    server.wait_value("scrape_samples_scraped{job=\"bbwd\"} > bool 0", 1.0, WAIT);
    let r = server
        .query("scrape_samples_scraped{job=\"bbwd\"}")
        .unwrap();
    let scraped: f64 = r["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let samples = prom::scrape(addr)
        .2
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scraped as usize, samples, "Prometheus took every sample");
}

#[test]
#[ignore = "needs promtool (scripts/setup.sh: prometheus)"]
fn mirror_node_metrics_say_what_haproxy_is_told() {
    if !prom::available() {
        return;
    }
    let agent = free_port();
    let (sc, addr) = single_with_metrics(
        "metrics-mirror",
        &format!("\n[load_balancer]\nhaproxy_agent = \"127.0.0.1:{agent}\"\n"),
    );
    let mut d = Daemon::start(&sc);
    d.wait_for(WAIT, "running and `up` for HAProxy", |s| {
        s["state"] == "running" && s["load_balancer"]["state"] == "up"
    });
    // An agent check as HAProxy makes it: one connection, one line.
    let mut c = TcpStream::connect(("127.0.0.1", agent)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    std::io::Read::read_to_string(&mut c, &mut line).unwrap();
    assert!(line.starts_with("up"), "{line}");
    let m = scrape_checked(addr);
    assert_eq!(value(&m, "bbwd_mode{mode=\"mirror\"}"), Some(1.0), "{m}");
    assert_eq!(value(&m, "bbwd_lb_reply{reply=\"up\"}"), Some(1.0), "{m}");
    assert_eq!(value(&m, "bbwd_lb_reply{reply=\"drain\"}"), Some(0.0));
    assert!(value(&m, "bbwd_lb_agent_checks_total").is_some_and(|n| n >= 1.0));

    // Operator maintenance: HAProxy is told `drain`, and so are the metrics.
    let out = sc.bbwd(&["maintenance", "on", "--reason", "backup"]);
    assert!(out.status.success(), "{out:?}");
    wait_until(WAIT, "bbwd_lb_reply drain", || {
        value(&prom::scrape(addr).2, "bbwd_lb_reply{reply=\"drain\"}") == Some(1.0)
    });
    let m = scrape_checked(addr);
    assert_eq!(
        value(&m, "bbwd_state{state=\"maintenance\"}"),
        Some(1.0),
        "{m}"
    );
}

#[test]
#[ignore = "needs root, promtool, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn pair_metrics_show_the_peer_links_vip_and_a_takeover() {
    if !prom::available() || !pairlab::available() {
        return;
    }
    let lab = PairLab::up("metrics");
    let textfile = |n: Node| lab.dir().join(n.name()).join("bbwd.prom");
    for n in Node::BOTH {
        let extra = format!(
            "\n[metrics]\nlisten = \"127.0.0.1:9776\"\ntextfile = \"{}\"\n",
            textfile(n).display()
        );
        set_up_node_with(&lab, n, &extra);
    }
    // Scraped inside the node's namespace, where its loopback listener is.
    let scrape = |n: Node| -> String {
        let out = lab.exec_in(n, "curl -s -i --max-time 5 http://127.0.0.1:9776/metrics");
        let reply = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, _, body) = prom::parse_reply(&reply);
        assert_eq!(code, 200, "{reply}");
        prom::check(&body).unwrap_or_else(|e| panic!("{e}\n--- {} ---\n{body}", n.name()));
        body
    };
    lab.power_on(Node::N1);
    lab.power_on(Node::N2);
    wait_role(&lab, Node::N1, "active/running");
    wait_role(&lab, Node::N2, "standby/stopped");
    let m1 = scrape(Node::N1);
    assert_eq!(value(&m1, "bbwd_role{role=\"active\"}"), Some(1.0), "{m1}");
    assert_eq!(value(&m1, "bbwd_mode{mode=\"pair\"}"), Some(1.0));
    assert_eq!(value(&m1, "bbwd_vip_held"), Some(1.0));
    let m2 = scrape(Node::N2);
    assert_eq!(value(&m2, "bbwd_role{role=\"standby\"}"), Some(1.0), "{m2}");
    assert_eq!(value(&m2, "bbwd_state{state=\"stopped\"}"), Some(1.0));
    assert_eq!(value(&m2, "bbwd_vip_held"), Some(0.0));
    wait_until(WAIT, "n2 to see n1 alive on both links", || {
        let m = scrape(Node::N2);
        value(&m, "bbwd_peer_alive") == Some(1.0)
            && m.lines()
                .filter(|l| l.starts_with("bbwd_heartbeat_link_up{") && l.ends_with(" 1"))
                .count()
                == 2
    });
    let m2 = scrape(Node::N2);
    for reason in ["unauthenticated", "replayed", "wrong_link"] {
        assert!(
            value(
                &m2,
                &format!("bbwd_heartbeat_dropped_total{{reason=\"{reason}\"}}")
            )
            .is_some(),
            "{m2}"
        );
    }
    wait_until(WAIT, "n2 to know whether n1's BMC answers", || {
        value(&scrape(Node::N2), "bbwd_peer_bmc_reachable") == Some(1.0)
    });

    // n1 loses power: n2 fences it (confirmed) and takes over; its metrics say so.
    lab.power_off(Node::N1);
    wait_role(&lab, Node::N2, "active/running");
    let m2 = scrape(Node::N2);
    assert_eq!(value(&m2, "bbwd_role{role=\"active\"}"), Some(1.0), "{m2}");
    assert_eq!(value(&m2, "bbwd_peer_alive"), Some(0.0));
    assert_eq!(value(&m2, "bbwd_vip_held"), Some(1.0));
    assert_eq!(
        value(&m2, "bbwd_fence_attempts_total{result=\"confirmed\"}"),
        Some(1.0),
        "{m2}"
    );
    assert_eq!(
        value(&m2, "bbwd_last_takeover_seconds{step=\"peer_lost\"}"),
        Some(0.0)
    );
    let active = value(&m2, "bbwd_last_takeover_seconds{step=\"active\"}");
    assert!(active.is_some_and(|s| s > 0.0), "{m2}");
    // The textfile of the node that took over says the same, and parses.
    let t = std::fs::read_to_string(textfile(Node::N2)).unwrap();
    prom::check(&t).unwrap_or_else(|e| panic!("{e}\n{t}"));
    wait_until(WAIT, "n2's textfile to show it active", || {
        let t = std::fs::read_to_string(textfile(Node::N2)).unwrap_or_default();
        value(&t, "bbwd_role{role=\"active\"}") == Some(1.0)
    });
}

/// A `[metrics] listen` that cannot be bound stops bbwd at start, naming the key, before it
/// starts Bitbucket (as a taken agent-check port does). Needs nothing beyond bbwd.
#[test]
fn a_taken_metrics_port_stops_bbwd_at_start_before_bitbucket() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local_addr").port();
    let sc = Scenario::new("metrics-taken");
    let text = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        sc.config_text()
    );
    sc.write_config_text(&text);
    let mut d = Daemon::start(&sc);
    let exit = d
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("bbwd kept running\n{}", sc.diagnostics()));
    assert_eq!(exit.code(), Some(1), "{}", sc.diagnostics());
    let log = std::fs::read_to_string(sc.bbwd_log()).unwrap_or_default();
    assert!(
        log.contains("metrics.listen") && log.contains(&format!("127.0.0.1:{port}")),
        "{log}"
    );
    assert!(sc.sim_starts().is_empty(), "Bitbucket was started anyway");
}
