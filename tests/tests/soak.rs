//! The pair fault soak (`soak` binary, `scripts/soak.sh`) end to end, short: three faults the
//! current pair mode survives (a Bitbucket crash on the active node, a power cycle of the
//! standby, another crash), with the real lab, BMCs and daemons. Asserts that the soak ran
//! every fault, found no violation, exited 0, and ended on the exact final line the issue
//! specifies; and that a seed replays the same plan.
//!
//! Needs root, iproute2, ipmi_sim, ipmitool and curl (scripts/setup.sh); under `CI` their
//! absence fails the test (`pairlab::available`), elsewhere it is reported and skipped. Runs
//! the debug binaries `cargo test` builds (the soak finds `bbwd` and `bbsim` next to itself).

use std::process::Command;

use bbwd_tests::pairlab;

fn soak_bin() -> &'static str {
    env!("CARGO_BIN_EXE_soak")
}

/// `soak: F faults, V violations, unserved U s, seed X` (U with one decimal) -> (F, V, U, X).
fn parse_final_line(line: &str) -> Option<(usize, usize, f64, u64)> {
    let rest = line.strip_prefix("soak: ")?;
    let (f, rest) = rest.split_once(" faults, ")?;
    let (v, rest) = rest.split_once(" violations, unserved ")?;
    let (u, x) = rest.split_once(" s, seed ")?;
    let decimals = u.split_once('.').map(|(_, d)| d.len());
    if decimals != Some(1) {
        return None;
    }
    Some((
        f.parse().ok()?,
        v.parse().ok()?,
        u.parse().ok()?,
        x.parse().ok()?,
    ))
}

#[test]
fn the_final_line_parser_takes_only_the_exact_format() {
    assert_eq!(
        parse_final_line("soak: 30 faults, 0 violations, unserved 1.5 s, seed 42"),
        Some((30, 0, 1.5, 42))
    );
    assert_eq!(
        parse_final_line("soak: 30 faults, 0 violations, unserved 1.50 s, seed 42"),
        None
    );
    assert_eq!(
        parse_final_line("soak: 30 faults, 0 violations, unserved 1 s, seed 42"),
        None
    );
}

#[test]
fn a_seed_replays_the_same_fault_plan() {
    let plan = |seed: &str| {
        let out = Command::new(soak_bin())
            .args(["200", "--seed", seed, "--plan"])
            .output()
            .expect("run soak --plan");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let a = plan("77");
    assert_eq!(a, plan("77"));
    assert_ne!(a, plan("78"));
    assert!(a.starts_with("soak: seed 77 (200 faults"), "{a}");
}

/// Runs `soak --scenario NAME --seed SEED`: its output, the output as context for a failed
/// assertion, and its final line parsed.
fn scenario(name: &str, seed: u64) -> (std::process::Output, String, (usize, usize, f64, u64)) {
    let out = Command::new(soak_bin())
        .args(["--scenario", name, "--seed", &seed.to_string()])
        .output()
        .expect("run the soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ctx = format!(
        "exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    let parsed = parse_final_line(last)
        .unwrap_or_else(|| panic!("final line {last:?} not in the format\n{ctx}"));
    (out, ctx, parsed)
}

#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn a_short_soak_of_survivable_faults_finds_no_violation() {
    if !pairlab::available() {
        return;
    }
    let (out, ctx, (faults, violations, _unserved, seed)) = scenario("survivable", 7);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ctx = || ctx.clone();
    assert_eq!(faults, 3, "{}", ctx());
    assert_eq!(violations, 0, "{}", ctx());
    assert_eq!(seed, 7, "{}", ctx());
    assert_eq!(out.status.code(), Some(0), "{}", ctx());
    assert!(
        stdout.contains("soak: seed 7 "),
        "the seed at the start\n{}",
        ctx()
    );
    for kind in ["| bb-crash | 2 | 0 |", "| power-cycle | 1 | 0 |"] {
        assert!(stdout.contains(kind), "table row {kind}\n{}", ctx());
    }
    assert!(!stdout.contains("HARNESS ERROR"), "{}", ctx());
}

/// Regression (the soak, seed 20261212 step 60): an active whose bbwd was paused past the
/// standby's detection, resumed just before the standby's fence delay ran out, fenced the
/// standby while being fenced: both nodes off, nobody served. Now one node serves throughout
/// (the active answers in time, or the standby fences it and takes over).
#[test]
#[ignore = "needs root, iproute2, ipmi_sim and ipmitool: the namespace pair lab"]
fn a_paused_active_resumed_at_the_standbys_fence_leaves_one_node_serving() {
    if !pairlab::available() {
        return;
    }
    let (out, ctx, (faults, violations, unserved, _)) = scenario("paused-active", 11);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ctx = || ctx.clone();
    assert_eq!(faults, 1, "{}", ctx());
    assert_eq!(violations, 0, "{}", ctx());
    assert_eq!(unserved, 0.0, "nobody served after the pause\n{}", ctx());
    assert!(!stdout.contains("REPAIR"), "{}", ctx());
    assert!(!stdout.contains("HARNESS ERROR"), "{}", ctx());
    assert_eq!(out.status.code(), Some(0), "{}", ctx());
}
