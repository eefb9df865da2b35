//! Times from a hung bbwd (SIGSTOP) to the consequence, in the real-kernel guests of the VM
//! tests (`vm`; qemu under TCG, Debian's kernel), BENCHMARKS.md "Real kernel: SIGSTOP of bbwd to
//! the i6300esb reset, and to systemd's restart":
//!
//! * i6300esb: SIGSTOP of `bbwd run` (`[watchdog] device = "/dev/watchdog"`, timeout 10s) to
//!   qemu's QMP WATCHDOG event (the guest's reset), both as the host saw them;
//! * systemd: SIGSTOP of bbwd under `systemd/bbwd.service` (WatchdogSec lowered to 4s by a
//!   drop-in, RestartSec=2s as shipped) to the new bbwd active with a new MainPID (guest clock);
//! * the largest pet latency bbwd reported in the i6300esb guest (an emulated CPU: informative);
//! * mount hooks (`tests/tests/vm_hooks.rs`): `systemctl start bbwd` of a pair node whose peer is
//!   off to serving, and `systemctl stop bbwd`, guest clock; the test's own wall time.
//!
//! The guests are the tests' own: this runs `cargo test --test vm_watchdog` (the healthy/SIGSTOP
//! case), `--test vm_systemd` and `--test vm_hooks` `BENCH_VM_RUNS` times (default 5; about 50,
//! 45 and 40 s a run on 2 cores) with the debug build of bbwd, and collects the tests'
//! `vm-measure: KEY=VALUE` lines. A failed test fails the benchmark. Needs root and what
//! scripts/setup.sh installs; the images are cached in `$BBWD_VM_CACHE`.

use std::collections::BTreeMap;
use std::process::Command;

use super::{knob, require_root, say, Ctx, Summary, Table};

/// (cargo test arguments, what).
const TESTS: &[(&[&str], &str)] = &[
    (
        &["--test", "vm_watchdog", "i6300esb_healthy"],
        "vm_watchdog",
    ),
    (&["--test", "vm_systemd"], "vm_systemd"),
    (&["--test", "vm_hooks"], "vm_hooks"),
];

/// (key, divisor, unit) of the figures reported, in order.
const FIGURES: &[(&str, f64, &str)] = &[
    ("i6300esb_sigstop_to_watchdog_event_ms", 1000.0, "s"),
    ("systemd_sigstop_to_restart_ms", 1000.0, "s"),
    ("i6300esb_pet_latency_us_max", 1.0, "us"),
    ("hooks_start_to_serving_ms", 1000.0, "s"),
    ("hooks_stop_ms", 1000.0, "s"),
    ("hooks_test_total_ms", 1000.0, "s"),
];

pub fn run(ctx: &Ctx, _args: &[String]) -> String {
    require_root("the VM benchmark (qemu guests)");
    let runs: usize = knob("BENCH_VM_RUNS", 5);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let cargo_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.args(args)
            .current_dir(ctx.workspace())
            // The guests run the debug bbwd built beside the tests, not the shipped build
            // this process was told to measure.
            .env_remove("BBWD_BIN");
        cmd
    };
    say("vm", "building the debug bbwd and the test binaries");
    let built = cargo_cmd(&[
        "build",
        "--quiet",
        "-p",
        "bbwd",
        "-p",
        "bbwd-tests",
        "--bins",
    ])
    .status()
    .expect("run cargo build");
    assert!(built.success(), "cargo build failed");
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 1..=runs {
        for (args, what) in TESTS {
            say("vm", &format!("run {i}/{runs}: {what}"));
            let mut all = vec!["test", "--quiet", "-p", "bbwd-tests"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--", "--ignored", "--nocapture"]);
            let out = cargo_cmd(&all).output().expect("run cargo test");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "cargo test {args:?} failed:\n{text}");
            for (k, v) in measures(&text) {
                values.entry(k).or_default().push(v);
            }
        }
    }
    let mut t = Table::new(&["figure", "runs", "median", "range"]);
    for (key, div, unit) in FIGURES {
        match values
            .get(*key)
            .and_then(|v| Summary::of(v.iter().copied()))
        {
            Some(s) => t.row([
                key.to_string(),
                s.len().to_string(),
                format!("{:.2} {unit}", s.median() / div),
                format!("{:.2} - {:.2} {unit}", s.min() / div, s.max() / div),
            ]),
            None => t.row([*key, "no samples", "", ""]),
        };
    }
    t.render()
}

/// Every `KEY=NUMBER` on the `vm-measure:` lines of `text`.
fn measures(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("vm-measure:"))
        .flat_map(str::split_whitespace)
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_lines_are_read() {
        let text = "noise\nvm-measure: hooks_start_to_serving_ms=7150 hooks_stop_ms=1260 \
                    hooks_test_total_ms=40700\nvm-measure: i6300esb_pet_latency_us_max=418 \
                    (over 29 pets, TCG)\n";
        let m = measures(text);
        assert_eq!(
            m,
            vec![
                ("hooks_start_to_serving_ms".to_string(), 7150.0),
                ("hooks_stop_ms".to_string(), 1260.0),
                ("hooks_test_total_ms".to_string(), 40700.0),
                ("i6300esb_pet_latency_us_max".to_string(), 418.0),
            ]
        );
    }
}
