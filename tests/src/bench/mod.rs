//! The benchmarks behind BENCHMARKS.md: one module per benchmark, run by `src/bin/bench.rs`
//! (`scripts/bench.sh NAME` builds what they measure, then runs it).
//!
//! Owns: the list of benchmarks ([`BENCHES`]), what they share (which builds of bbwd they
//! measure, [`Ctx`]; the Markdown [`Table`]; `/proc` readings; knobs from the environment) and,
//! in [`stats`], the one place medians and percentiles are computed. Each benchmark reuses the
//! harness the end-to-end tests use (`Scenario` and `Daemon`, `ipmisim`, `testbmc`, `sushy`,
//! `haproxy`, `pairlab`, `pairnode`) and returns its report as Markdown: the tables
//! BENCHMARKS.md quotes.
//!
//! Figures are reported, never asserted: the machines are shared and noisy. A benchmark fails
//! (panics, with the harness's diagnostics) only when what it measures did not happen, e.g. the
//! node was not off after `bbwd fence off`. Unwinding drops the harness's objects, which stop
//! what they started.
//!
//! Must not: end processes it did not start, or write outside its own directories under the
//! system temp dir and `target/bench-NAME.md` (the watchdog benchmark's pet-latency run arms
//! `BENCH_WATCHDOG_DEVICE` when that device exists: the script it replaces did the same).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::{toml_str, Scenario};

pub mod failover;
pub mod fence;
pub mod footprint;
pub mod keepalived;
pub mod metrics;
pub mod mirror;
pub mod redfish;
pub mod rss;
pub mod stats;
pub mod vip;
pub mod vm;
pub mod watchdog;

pub use stats::Summary;

/// One benchmark.
pub struct Bench {
    pub name: &'static str,
    /// One line: what it measures.
    pub what: &'static str,
    /// Its knobs: arguments and environment variables, with their defaults.
    pub knobs: &'static str,
    /// Roughly how long a run with the defaults takes.
    pub takes: &'static str,
    /// Runs it: `args` are the words after its name. Returns the report (Markdown).
    pub run: fn(&Ctx, &[String]) -> String,
}

/// Every benchmark, in the order `bench all` runs them (the cheap ones first).
pub const BENCHES: &[Bench] = &[
    Bench {
        name: "footprint",
        what: "single node: RSS, allocations per monitoring cycle, binary size, CPU per hour \
               (glibc release build and its alloc-count twin)",
        knobs: "BENCH_CPU_SECONDS (120), BENCH_ALLOC_SECONDS (20)",
        takes: "2.5 min",
        run: footprint::run,
    },
    Bench {
        name: "metrics",
        what: "cost of a Prometheus scrape of `bbwd run` (alloc-count build)",
        knobs: "BENCH_SCRAPES (2000)",
        takes: "20 s",
        run: metrics::run,
    },
    Bench {
        name: "watchdog",
        what: "memory cost of `[watchdog] realtime = true`; pet latency when a watchdog device \
               is free (root)",
        knobs: "BENCH_SECONDS (20) per run, BENCH_WATCHDOG_DEVICE (/dev/watchdog)",
        takes: "1 min",
        run: watchdog::run,
    },
    Bench {
        name: "fence",
        what: "`bbwd fence off` against fence_ipmilan and ipmitool on one ipmi_sim (suite 3), \
               and over suites 3/17/auto against the test BMC",
        knobs: "[RUNS] (7)",
        takes: "2 min",
        run: fence::run,
    },
    Bench {
        name: "redfish",
        what: "`bbwd fence off|status` against sushy-tools' Redfish emulator over TLS",
        knobs: "BENCH_RUNS (7)",
        takes: "1.5 min",
        run: redfish::run,
    },
    Bench {
        name: "vip",
        what: "VIP move: netlink add + first GARP / NA on the wire, against ip + arping (root)",
        knobs: "BENCH_VIP_RUNS (30), BENCH_VIP_GAP_MS (100)",
        takes: "30 s",
        run: vip::run,
    },
    Bench {
        name: "mirror",
        what: "mirror farm: Bitbucket crash to HAProxy taking the node out and back in",
        knobs: "BENCH_MIRROR_RUNS (20)",
        takes: "1 min",
        run: mirror::run,
    },
    Bench {
        name: "keepalived",
        what: "failover baseline: keepalived (VRRPv2 at 1 s, VRRPv3 at 0.2 s) on the pair lab \
               (root)",
        knobs: "BENCH_KA_RUNS (10)",
        takes: "4 min",
        run: keepalived::run,
    },
    Bench {
        name: "failover",
        what: "pair-mode failover of bbwd (peer_timeout 1s and 600ms) on the pair lab, split \
               into phases, pair RSS; then keepalived on the same lab (root)",
        knobs: "BENCH_FAILOVER_RUNS (7), BENCH_FAILOVER_KEEPALIVED (1; 0 skips keepalived)",
        takes: "6 min",
        run: failover::run,
    },
    Bench {
        name: "rss",
        what: "RSS of `bbwd run` under a Bitbucket crash and restart every 2 s",
        knobs: "[SECONDS] (3600)",
        takes: "1 h",
        run: rss::run,
    },
    Bench {
        name: "vm",
        what: "qemu guests: SIGSTOP of bbwd to the i6300esb reset and to systemd's restart, \
               mount hooks under the shipped unit (root)",
        knobs: "BENCH_VM_RUNS (5)",
        takes: "2.5 min a run",
        run: vm::run,
    },
];

/// The benchmark called `name`.
pub fn find(name: &str) -> Option<&'static Bench> {
    BENCHES.iter().find(|b| b.name == name)
}

// ---------------------------------------------------------------------------------------------
// What every benchmark is given

/// Where the builds are, and how the benchmark was started.
pub struct Ctx {
    /// The workspace's `target/`.
    pub target: PathBuf,
    /// Started by `bench all`: a benchmark that would run another one as well (failover runs
    /// keepalived) leaves that to `all`.
    pub in_all: bool,
}

impl Ctx {
    /// `target/` is two levels above the running `bench` (`target/release/bench`).
    pub fn from_exe(in_all: bool) -> Ctx {
        let profile = crate::target_profile_dir();
        let target = profile.parent().map(Path::to_path_buf).unwrap_or(profile);
        Ctx { target, in_all }
    }

    /// The bbwd that ships (`scripts/lib/release.sh`: the release profile, static, musl):
    /// `$BBWD_BIN`, else `target/ARCH-unknown-linux-musl/release/bbwd`.
    pub fn shipped_bbwd(&self) -> PathBuf {
        let path = std::env::var_os("BBWD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.shipped_default());
        need_file(&path, "the shipped bbwd (static musl release build)")
    }

    /// Where `scripts/lib/release.sh` puts the shipped build.
    pub fn shipped_default(&self) -> PathBuf {
        self.target
            .join(format!("{}-unknown-linux-musl", std::env::consts::ARCH))
            .join("release/bbwd")
    }

    /// `target/release/bbwd`: the release profile linked dynamically against glibc (`cargo
    /// build --release -p bbwd`), what the footprint and mirror figures were first taken on.
    pub fn glibc_bbwd(&self) -> PathBuf {
        need_file(
            &self.target.join("release/bbwd"),
            "the glibc release bbwd (cargo build --release -p bbwd)",
        )
    }

    /// The release build with `--features alloc-count` (a counting global allocator that
    /// reports `alloc-count: ...` at exit): `$BBWD_ALLOC_COUNT_BIN`, else
    /// `target/alloc-count/release/bbwd` (its own target directory, so that it never replaces
    /// the plain `target/release/bbwd`).
    pub fn alloc_count_bbwd(&self) -> PathBuf {
        let path = std::env::var_os("BBWD_ALLOC_COUNT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.target.join("alloc-count/release/bbwd"));
        need_file(
            &path,
            "the alloc-count bbwd (cargo build --release -p bbwd --features alloc-count \
             --target-dir target/alloc-count)",
        )
    }

    /// The workspace root: the directory above this crate's (`tests/`), wherever `target/` is.
    pub fn workspace(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .to_path_buf()
    }

    /// Writes `report` to `target/bench-NAME.md`; returns the path.
    pub fn write_report(&self, name: &str, report: &str) -> std::io::Result<PathBuf> {
        let path = self.target.join(format!("bench-{name}.md"));
        fs::write(&path, report)?;
        Ok(path)
    }
}

fn need_file(path: &Path, what: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{what} not found at {}: `scripts/bench.sh NAME` builds it",
        path.display()
    );
    path.to_path_buf()
}

/// A knob from the environment: `default` when unset; a value that does not parse fails the
/// benchmark.
pub fn knob<T: FromStr>(env: &str, default: T) -> T {
    match std::env::var(env) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{env}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The positional argument `i`, parsed: `default` when absent.
pub fn arg<T: FromStr>(args: &[String], i: usize, what: &str, default: T) -> T {
    match args.get(i) {
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{what}: {v:?} is not a valid value")),
        None => default,
    }
}

/// Fails the benchmark unless it runs as root.
pub fn require_root(what: &str) {
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "{what} needs root: run `scripts/bench.sh NAME`");
}

/// Fails the benchmark naming the tools missing from `PATH` (and `/usr/sbin`, `/sbin`).
pub fn require_tools(tools: &[&str]) {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !dirs
                .iter()
                .map(PathBuf::as_path)
                .chain([Path::new("/usr/sbin"), Path::new("/sbin")])
                .any(|d| d.join(t).is_file())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: scripts/setup.sh installs them (scripts/bench.sh runs it)"
    );
}

/// Progress on stderr (reports go to stdout).
pub fn say(bench: &str, what: &str) {
    eprintln!("bench {bench}: {what}");
}

pub fn sleep(d: Duration) {
    std::thread::sleep(d);
}

// ---------------------------------------------------------------------------------------------
// Reports

/// A Markdown table, rendered as the scripts printed theirs (`| a | b |`, `|---|---|`).
pub struct Table {
    text: String,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        let mut t = Table {
            text: String::new(),
        };
        t.row(header.iter().map(|h| h.to_string()));
        let _ = writeln!(t.text, "|{}", "---|".repeat(header.len()));
        t
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Table {
        self.text.push('|');
        for cell in cells {
            let _ = write!(self.text, " {} |", cell.as_ref());
        }
        self.text.push('\n');
        self
    }

    pub fn render(&self) -> String {
        self.text.clone()
    }
}

/// `v` with `decimals` places.
pub fn fixed(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

// ---------------------------------------------------------------------------------------------
// Readings from /proc

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, `VmLck`), KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, field)
}

/// `Pss` of `/proc/PID/smaps_rollup`, KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&text, "Pss")
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// utime + stime of `pid` (fields 14 and 15 of `/proc/PID/stat`), clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ')' of comm: the state is field 3, so utime (14) is the 12th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let mut words = rest.split_whitespace().skip(11);
    let mut next = || {
        words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0)
    };
    next() + next()
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf(3) reads a constant of the system; no memory is involved.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

// ---------------------------------------------------------------------------------------------
// The single-node daemon the footprint benchmarks run

/// Writes the config the single-node benchmarks run `bbwd run` with (the minimal one, as an
/// operator's first config: no notify command, bbwd's defaults for what is not named): node
/// `name`, the scenario's simulator checked every `interval` with `timeout`, then
/// `bitbucket_extra` (`key = value` lines of `[bitbucket]`) and `sections` (whole sections,
/// e.g. `[watchdog]`, `[metrics]`).
pub fn single_node_config(
    sc: &Scenario,
    name: &str,
    interval: &str,
    timeout: &str,
    bitbucket_extra: &str,
    sections: &str,
) -> PathBuf {
    let dir = sc.dir.path().display().to_string();
    let command: Vec<String> = sc.sim_command().iter().map(|a| toml_str(a)).collect();
    let text = format!(
        "[node]\nname = {}\nstate_dir = {}\ncontrol_socket = {}\n\n\
         [bitbucket]\nstatus_url = {}\ncommand = [{}]\nmonitor_interval = {}\n\
         monitor_timeout = {}\n{bitbucket_extra}\n{sections}",
        toml_str(name),
        toml_str(&format!("{dir}/state")),
        toml_str(&format!("{dir}/control.sock")),
        toml_str(&sc.status_url()),
        command.join(", "),
        toml_str(interval),
        toml_str(timeout),
    );
    sc.write_config_text(&text)
}

/// How long a single-node `bbwd run` may take to report `running`.
pub const STARTUP: Duration = Duration::from_secs(20);

/// The `alloc-count: ...` line an alloc-count build writes to its log at exit.
pub fn alloc_count_line(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find_map(|l| l.find("alloc-count: ").map(|at| l[at..].to_string()))
        .unwrap_or_else(|| panic!("no alloc-count line in {}:\n{text}", log.display()))
}

/// `key=N` in an `alloc-count:` line.
pub fn alloc_count_field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_the_scripts_printed_them() {
        let mut t = Table::new(&["figure", "value"]);
        t.row(["a", "1"]).row(["b".to_string(), "2".to_string()]);
        assert_eq!(
            t.render(),
            "| figure | value |\n|---|---|\n| a | 1 |\n| b | 2 |\n"
        );
    }

    #[test]
    fn proc_fields_and_alloc_count_lines_are_read() {
        let status = "Name:\tbbwd\nVmHWM:\t    2932 kB\nVmRSS:\t    2928 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(2928));
        assert_eq!(kib_field(status, "VmHWM"), Some(2932));
        assert_eq!(kib_field(status, "VmLck"), None);
        let line =
            "alloc-count: steady_passes=599 steady_checks=200 steady_allocs=0 other_passes=5";
        assert_eq!(alloc_count_field(line, "steady_checks"), 200);
        assert_eq!(alloc_count_field(line, "steady_allocs"), 0);
        // Our own process has utime/stime fields.
        let _ = cpu_ticks(std::process::id());
        assert!(clk_tck() >= 1);
    }

    #[test]
    fn every_benchmark_has_a_unique_name() {
        for (i, b) in BENCHES.iter().enumerate() {
            assert!(
                BENCHES[i + 1..].iter().all(|o| o.name != b.name),
                "{}",
                b.name
            );
            assert!(find(b.name).is_some());
            assert_ne!(b.name, "all");
        }
    }
}
