//! The whole file: defaults, SPEC's example, the shipped example, several problems at once and
//! their order, syntax errors, `load`, and damaged files that must never panic.

use super::*;

#[test]
fn empty_config_is_a_single_node_with_documented_defaults() {
    let c = ok("");
    assert_eq!(c.mode(), Mode::Single);
    assert_eq!(c.node.name, host_name());
    assert_eq!(c.node.state_dir, Path::new("/var/lib/bbwd"));
    assert_eq!(c.node.control_socket, Path::new("/run/bbwd/control.sock"));
    let b = &c.bitbucket;
    assert_eq!(b.status_url, "http://127.0.0.1:7990/status");
    assert_eq!(
        b.command,
        ["/opt/atlassian/bitbucket/bin/start-bitbucket.sh", "-fg"]
    );
    assert_eq!(b.user, None);
    assert!(b.environment.is_empty());
    assert_eq!(b.monitor_interval, Duration::from_secs(15));
    assert_eq!(b.monitor_timeout, Duration::from_secs(30));
    assert_eq!(b.startup_timeout, Duration::from_secs(600));
    assert_eq!(b.failures_before_action, 2);
    assert_eq!(b.stop_timeout, Duration::from_secs(120));
    assert_eq!(b.kill_timeout, Duration::from_secs(10));
    assert_eq!(b.max_restarts, 1);
    assert_eq!(b.restart_window, Duration::from_secs(3600));
    assert!(b.capture_output);
    assert_eq!(c.database, None);
    assert_eq!(
        c.watchdog,
        Watchdog {
            device: WatchdogDevice::None,
            timeout: Duration::from_secs(60),
            action: WatchdogAction::Reset,
            realtime: false,
            ipmi: None,
        }
    );
    assert_eq!(c.notify, None);
    assert_eq!(c.cluster, None);
    assert_eq!(c.vip, None);
    assert_eq!(c.fencing, None);
    assert_eq!(c.hooks, Hooks::default());
    assert_eq!(c.load_balancer, None);
}

#[test]
fn empty_sections_are_the_same_as_absent_ones() {
    let with_sections = ok("[node]\n[bitbucket]\n[watchdog]\n[hooks]\n");
    assert_eq!(with_sections, ok(""));
}

#[test]
fn minimal_config_with_a_name() {
    let c = ok("[node]\nname = \"bb1\"\n");
    assert_eq!(c.node.name, "bb1");
    assert_eq!(c.bitbucket.monitor_interval, Duration::from_secs(15));
}

#[test]
fn spec_example_as_a_pair_with_the_bmc_watchdog() {
    let dir = TempDir::new("spec-pair");
    let text = without_load_balancer(&spec_example(&dir, "ipmi"));
    let c = ok(&text);
    assert_eq!(c.mode(), Mode::Pair);
    assert_eq!(c.node.name, "bb1");
    assert_eq!(c.bitbucket.user.as_deref(), Some("atlbitbucket"));
    assert_eq!(
        c.bitbucket
            .environment
            .get("BITBUCKET_HOME")
            .map(String::as_str),
        Some("/var/atlassian/application-data/bitbucket")
    );
    assert_eq!(c.bitbucket.restart_window, Duration::from_secs(3600));
    let db = c.database.as_ref().unwrap();
    assert_eq!(db.address, "127.0.0.1:5432");
    assert_eq!(db.resolved, "127.0.0.1:5432".parse().unwrap());
    assert_eq!(db.timeout, Duration::from_secs(5));
    assert_eq!(c.watchdog.device, WatchdogDevice::Ipmi);
    assert_eq!(c.watchdog.action, WatchdogAction::Reset);
    let own = c.watchdog.ipmi.as_ref().unwrap();
    assert_eq!(
        (own.host.as_str(), own.port, own.username.as_str()),
        ("10.0.1.1", 623, "watchdog")
    );
    assert_eq!(own.password_file, dir.path().join("own-bmc.pass"));
    let notify = c.notify.as_ref().unwrap();
    assert_eq!(notify.command, ["/etc/bbwd/notify.sh"]);
    assert_eq!(notify.timeout, Duration::from_secs(30));
    spec_cluster(c.cluster.as_ref().unwrap(), &dir);
    let vip = c.vip.as_ref().unwrap();
    assert_eq!(
        (vip.address, vip.prefix_len),
        ("10.0.0.50".parse().unwrap(), 24)
    );
    assert_eq!((vip.interface.as_str(), vip.garp_count), ("eth0", 3));
    assert_eq!(vip.garp_interval, Duration::from_millis(200));
    let f = c.fencing.as_ref().unwrap();
    assert_eq!(f.method, "ipmi");
    assert_eq!(
        (f.lan.host.as_str(), f.lan.port, f.lan.username.as_str()),
        ("10.0.1.2", 623, "fence")
    );
    assert_eq!(f.lan.password_file, dir.path().join("peer-bmc.pass"));
    assert_eq!(
        (f.cipher_suite, f.action, f.timeout),
        (3, FenceAction::Off, Duration::from_secs(10))
    );
    assert_eq!(c.hooks.before_start.len(), 2);
    assert_eq!(
        c.hooks.before_start[0],
        ["/sbin/drbdadm", "primary", "bitbucket"]
    );
    assert_eq!(
        c.hooks.after_stop[1],
        ["/sbin/drbdadm", "secondary", "bitbucket"]
    );
    assert_eq!(c.load_balancer, None);
    assert_eq!(
        c.metrics,
        Some(Metrics {
            listen: Some("127.0.0.1:9776".parse().unwrap()),
            textfile: Some(PathBuf::from("/var/lib/prometheus/node-exporter/bbwd.prom")),
        })
    );
}

/// The `[cluster]` of SPEC's example, secret files in `dir`.
fn spec_cluster(cl: &Cluster, dir: &TempDir) {
    assert_eq!(cl.peer, "bb2");
    assert_eq!(
        cl.listen,
        [
            "10.0.0.1:5405".parse().unwrap(),
            "192.168.100.1:5405".parse().unwrap()
        ]
    );
    assert_eq!(
        cl.peer_addresses,
        [
            "10.0.0.2:5405".parse().unwrap(),
            "192.168.100.2:5405".parse().unwrap()
        ]
    );
    assert_eq!(cl.key_file, dir.path().join("cluster.key"));
    assert_eq!(cl.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(cl.peer_timeout, Duration::from_secs(1));
    assert!(cl.preferred_active);
    assert_eq!(cl.witness, Some("10.0.0.254".parse().unwrap()));
    assert_eq!(cl.boot_wait, Duration::from_secs(30));
    assert_eq!(cl.fence_delay, Duration::from_secs(11));
}

/// As written, SPEC's block mixes what cannot go together (it lists every key): exactly
/// those two contradictions are reported, on their lines, and nothing else.
#[test]
fn spec_example_verbatim_reports_only_its_two_contradictions() {
    let dir = TempDir::new("spec-verbatim");
    let text = spec_example(&dir, "/dev/watchdog");
    let found = problems(&text);
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.starts_with(needle))
            .map(|i| i + 1)
    };
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].key, "watchdog.ipmi");
    assert_eq!(found[0].line, line_of("[watchdog.ipmi]"));
    assert!(found[0]
        .message
        .contains("only used with device = \"ipmi\""));
    assert_eq!(found[1].key, "load_balancer");
    assert_eq!(found[1].line, line_of("[load_balancer]"));
    assert!(found[1].message.contains(&format!(
        "[cluster] (line {})",
        line_of("[cluster]").unwrap()
    )));
}

#[test]
fn mirror_farm_node() {
    let c = ok("[node]\nname = \"m1\"\n[load_balancer]\nhaproxy_agent = \"0.0.0.0:7777\"\n");
    assert_eq!(c.mode(), Mode::Mirror);
    assert_eq!(
        c.load_balancer.unwrap().haproxy_agent,
        "0.0.0.0:7777".parse().unwrap()
    );
}

#[test]
fn ipv6_vip_heartbeat_and_status_url() {
    let dir = TempDir::new("ipv6");
    let text = format!(
        "[node]\nname = \"bb1\"\n[bitbucket]\nstatus_url = \"http://[::1]:7990/status\"\n\
         [cluster]\npeer = \"bb2\"\nlisten = [\"[fd00::1]:5405\"]\npeer_addresses = [\"[fd00::2]:5405\"]\n\
         key_file = \"{}\"\n[vip]\naddress = \"fd00::50/64\"\ninterface = \"eth0\"\n\
         [fencing]\nhost = \"fd00:1::2\"\nusername = \"fence\"\npassword_file = \"{}\"\n",
        dir.secret("k", 0o600),
        dir.secret("p", 0o400)
    );
    let c = ok(&text);
    assert_eq!(c.vip.as_ref().unwrap().prefix_len, 64);
    assert!(c.vip.as_ref().unwrap().address.is_ipv6());
    assert_eq!(
        c.cluster.as_ref().unwrap().listen[0],
        "[fd00::1]:5405".parse().unwrap()
    );
    // Defaults of the pair sections.
    let cl = c.cluster.unwrap();
    assert!(!cl.preferred_active);
    assert_eq!(
        (cl.heartbeat_interval, cl.peer_timeout),
        (Duration::from_millis(200), Duration::from_secs(1))
    );
    let f = c.fencing.unwrap();
    assert_eq!(
        (f.method.as_str(), f.lan.port, f.cipher_suite, f.action),
        ("ipmi", 623, 3, FenceAction::Off)
    );
    assert_eq!(f.timeout, Duration::from_secs(10));
}

#[test]
fn shipped_example_parses_as_a_single_node() {
    let c = ok(EXAMPLE);
    assert_eq!(c.mode(), Mode::Single);
    assert_eq!(c.node.name, host_name());
    assert_eq!(
        c.watchdog.device,
        WatchdogDevice::Device(PathBuf::from("/dev/watchdog"))
    );
    assert_eq!(c.bitbucket.user.as_deref(), Some("atlbitbucket"));
}

/// Every switched-off line (`#key = ...`, `#[section]`) of the example, switched on: all its
/// keys are known and well-formed. What remains are only the problems of switching on
/// everything at once on a machine that is not a configured node.
#[test]
fn shipped_example_with_everything_switched_on_has_only_expected_problems() {
    let enabled: String = EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[') => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        enabled.contains("\n[cluster]\n") && enabled.contains("\nhaproxy_agent ="),
        "{enabled}"
    );
    let found = problems(&enabled);
    for p in &found {
        let expected = match p.key.as_str() {
            // Secret files that do not exist here.
            "watchdog.ipmi.password_file" | "cluster.key_file" | "fencing.password_file" => {
                p.message.contains("No such file")
            }
            // No DNS in a test sandbox (and no db.example.com anywhere).
            "database.address" => p.message.contains("cannot resolve"),
            "watchdog.ipmi" => p.message.contains("only used with device = \"ipmi\""),
            "load_balancer" => p.message.contains("cannot both be set"),
            // The Redfish keys, documented beside the example's method = "ipmi".
            "fencing.system"
            | "fencing.ca_file"
            | "fencing.tls_fingerprint"
            | "fencing.insecure" => p.message.contains("needs method = \"redfish\""),
            _ => false,
        };
        assert!(expected, "unexpected problem in the example: {p}");
    }
    // The node-name line is switched on too: it must be valid.
    assert!(!found.iter().any(|p| p.key.starts_with("node")));
}

#[test]
fn all_problems_reported_together_in_file_order() {
    let text = "\
[node]
name = \"bb1\"
[bitbucket]
monitor_intervall = \"15s\"
stop_timeout = \"2 minutes\"
failures_before_action = 0
command = []
[watchdog]
device = \"watchdog\"
[vip]
address = \"10.0.0.50\"
interface = \"eth0\"
[frob]
";
    let found = problems(text);
    let got: Vec<(&str, Option<usize>)> = found.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("bitbucket.monitor_intervall", Some(4)),
            ("bitbucket.stop_timeout", Some(5)),
            ("bitbucket.failures_before_action", Some(6)),
            ("bitbucket.command", Some(7)),
            ("watchdog.device", Some(9)),
            ("vip", Some(10)),
            ("vip.address", Some(11)),
            ("frob", Some(13)),
        ]
    );
    let shown = Problems {
        path: PathBuf::from(ORIGIN),
        problems: found,
    }
    .to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 8);
    assert!(
        lines.iter().all(|l| l.starts_with("/etc/bbwd/bbwd.toml: ")),
        "{shown}"
    );
    assert_eq!(
        lines[0],
        "/etc/bbwd/bbwd.toml: bitbucket.monitor_intervall (line 4): unknown key `monitor_intervall` in [bitbucket]; \
         did you mean `monitor_interval`?"
    );
}

#[test]
fn syntax_errors_are_reported_with_their_line_and_the_rest_still_checked() {
    let text = "[node]\nname = bb1\n[bitbucket]\nmax_restarts = \"x\"\n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!((found[0].key.as_str(), found[0].line), ("", Some(2)));
    assert!(
        found[0].message.starts_with("TOML syntax error: "),
        "{}",
        found[0].message
    );
    assert!(found[0]
        .to_string()
        .starts_with("line 2: TOML syntax error"));
    assert_eq!(
        (found[1].key.as_str(), found[1].line),
        ("bitbucket.max_restarts", Some(4))
    );
}

#[test]
fn problem_display_forms() {
    let p = |key: &str, line| Problem {
        key: key.to_string(),
        line,
        message: "m".to_string(),
    };
    assert_eq!(p("a.b", Some(3)).to_string(), "a.b (line 3): m");
    assert_eq!(p("a.b", None).to_string(), "a.b: m");
    assert_eq!(p("", Some(3)).to_string(), "line 3: m");
    assert_eq!(p("", None).to_string(), "m");
}

#[test]
fn load_reads_the_file_and_names_it_in_problems() {
    let dir = TempDir::new("load");
    let path = dir.path().join("bbwd.toml");
    std::fs::write(&path, "[node]\nname = \"bb7\"\n").unwrap();
    assert_eq!(load(&path).unwrap().node.name, "bb7");
    std::fs::write(&path, "[node]\nnmae = \"bb7\"\n").unwrap();
    let err = load(&path).unwrap_err();
    assert_eq!(err.path, path);
    assert!(
        err.to_string()
            .starts_with(&format!("{}: node.nmae (line 2): ", path.display())),
        "{err}"
    );
    std::fs::write(&path, b"[node]\nname = \"\xff\"\n").unwrap();
    assert!(load(&path).unwrap_err().to_string().contains("not UTF-8"));
    let missing = dir.path().join("nope.toml");
    let err = load(&missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no such file (create it, or point -c PATH or $BBWD_CONFIG at the right one)",
            missing.display()
        )
    );
}

/// Parser robustness: thousands of damaged variants of a complete config (bytes deleted,
/// duplicated, replaced by TOML's own punctuation) are reported on, never a panic, and every
/// problem carries a line within the file.
#[test]
fn damaged_configs_never_panic() {
    let dir = TempDir::new("damaged");
    // No [database]: a damaged address could send a test to the name service.
    let base = without_load_balancer(&spec_example(&dir, "ipmi"))
            .replace("[database]                     # optional\naddress = \"127.0.0.1:5432\"   # TCP connect check\ntimeout = \"5s\"\n", "");
    assert!(!base.contains("[database]"));
    ok(&base);
    const ALPHABET: &[u8] = b"[]{}=\"',.#\n 0123456789smh:/-_abcxyz";
    let mut rng = bbwd_testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    let lines = base.lines().count() + 2;
    for _ in 0..3000 {
        let mut bytes = base.clone().into_bytes();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, bytes[at]),
                _ => bytes[at] = ALPHABET[(next() as usize) % ALPHABET.len()],
            }
        }
        let text = String::from_utf8(bytes).expect("ASCII in, ASCII out");
        if let Err(problems) = parse(&text, Path::new(ORIGIN)) {
            assert!(!problems.problems.is_empty());
            for p in &problems.problems {
                assert!(
                    p.line.is_none_or(|l| (1..=lines).contains(&l)),
                    "{p:?} in\n{text}"
                );
            }
        }
    }
}
