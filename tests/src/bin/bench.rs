//! `bench`: the benchmarks behind BENCHMARKS.md (`bbwd_tests::bench`, one module each).
//!
//! ```text
//! bench --list            each benchmark: what it measures, its knobs, how long it takes
//! bench NAME [ARGS...]    one benchmark
//! bench all               every benchmark in turn, with its defaults
//! ```
//!
//! Usually started as `scripts/bench.sh NAME`, which becomes root, installs what is missing
//! (scripts/setup.sh) and builds what the benchmarks measure: the shipped bbwd (static musl,
//! `scripts/lib/release.sh`), the glibc release build, the alloc-count build and this crate's
//! binaries. `cargo run --release -p bbwd-tests --bin bench -- NAME` works once those exist.
//!
//! Progress goes to stderr; each report (Markdown) to stdout and to `target/bench-NAME.md`.
//! Exit status, decided here only: 0 every benchmark ran, 1 one failed (its panic message says
//! why; under `all` the others still run), 64 a bad command line.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use bbwd_tests::bench::{find, Bench, Ctx, BENCHES};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = args.first() else {
        return usage();
    };
    let (benches, rest, in_all): (Vec<&Bench>, &[String], bool) = match first.as_str() {
        "--list" | "-l" | "list" => {
            list();
            return ExitCode::SUCCESS;
        }
        "--help" | "-h" => return usage(),
        "all" if args.len() == 1 => (BENCHES.iter().collect(), &[], true),
        name => match find(name) {
            Some(b) => (vec![b], &args[1..], false),
            None => {
                eprintln!("bench: no benchmark called {name:?}");
                return usage();
            }
        },
    };
    let ctx = Ctx::from_exe(in_all);
    // The harness (pairnode, Scenario) runs `$BBWD_BIN` else the bbwd next to this binary: make
    // that the shipped build, which most benchmarks measure (the others name theirs). Set
    // before any thread exists.
    if std::env::var_os("BBWD_BIN").is_none() && ctx.shipped_default().is_file() {
        std::env::set_var("BBWD_BIN", ctx.shipped_default());
    }
    let mut failed = Vec::new();
    for b in benches {
        eprintln!("== bench {}: {}", b.name, b.what);
        match catch_unwind(AssertUnwindSafe(|| (b.run)(&ctx, rest))) {
            Ok(report) => {
                println!("{report}");
                match ctx.write_report(b.name, &report) {
                    Ok(path) => eprintln!("bench {}: report in {}", b.name, path.display()),
                    Err(e) => eprintln!("bench {}: report not written: {e}", b.name),
                }
            }
            // The panic hook has printed why.
            Err(_) => failed.push(b.name),
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench: failed: {}", failed.join(", "));
        ExitCode::from(1)
    }
}

fn list() {
    for b in BENCHES {
        println!("{:<11} {}", b.name, b.what);
        println!("{:<11} knobs: {}; about {}", "", b.knobs, b.takes);
    }
    println!(
        "{:<11} every benchmark above, in this order, with its defaults",
        "all"
    );
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench --list | bench NAME [ARGS...] | bench all\n\
         (scripts/bench.sh NAME builds what the benchmarks measure, then runs this)"
    );
    ExitCode::from(64)
}
