//! `model-check`: runs the search and prints the verdict; exit code 0 only without violations.

use std::process::ExitCode;
use std::time::Duration;

use bbwd_model::search::{self, Limits, Report};
use bbwd_model::world::{Config, Model, Mutant};

/// What the command line asked for.
struct Args {
    max_states: usize,
    max_depth: u32,
    faults: u8,
    horizon_ms: Option<u64>,
    mutant: Option<Mutant>,
    persistent_record: bool,
    allow_spin: bool,
    walks: u64,
    seed: u64,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            max_states: 1_200_000,
            max_depth: u32::MAX,
            faults: 2,
            horizon_ms: None,
            mutant: None,
            persistent_record: false,
            allow_spin: false,
            walks: 0,
            seed: 0x5eed_b0b0_cafe_f00d,
        }
    }
}

fn main() -> ExitCode {
    let a = match read_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let m = model(&a);
    let r = check(&m, &a);
    verdict(&r)
}

/// Reads the arguments; `Err` is the exit code when there is nothing to check (the mutants
/// listed, or an unknown argument). A missing value or bad number exits at once (2).
fn read_args() -> Result<Args, ExitCode> {
    let mut a = Args::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut val = |name: &str| -> String {
            args.next().unwrap_or_else(|| {
                eprintln!("model-check: {name} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--max-states" => a.max_states = parse(&val("--max-states")),
            "--max-depth" => a.max_depth = parse(&val("--max-depth")),
            "--faults" => a.faults = parse(&val("--faults")),
            "--horizon-ms" => a.horizon_ms = Some(parse(&val("--horizon-ms"))),
            // The storage record as the shell kept it before it was tied to the kernel boot.
            "--persistent-record" => a.persistent_record = true,
            "--allow-spin" => a.allow_spin = true,
            // Random walks after the breadth-first search (deep multi-fault scenarios).
            "--walks" => a.walks = parse(&val("--walks")),
            "--seed" => a.seed = parse(&val("--seed")),
            "--mutant" => a.mutant = Some(mutant(&val("--mutant"))),
            "--list-mutants" => {
                for m in Mutant::ALL {
                    println!("{:<26} {}", m.name(), m.about());
                }
                return Err(ExitCode::SUCCESS);
            }
            other => {
                eprintln!("model-check: unknown argument {other:?}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(a)
}

/// The mutant named `v`; an unknown name exits at once (2).
fn mutant(v: &str) -> Mutant {
    Mutant::parse(v).unwrap_or_else(|| {
        eprintln!("model-check: no mutant {v:?} (--list-mutants)");
        std::process::exit(2)
    })
}

/// The two-node model the arguments describe; re-introduces the mutant's defect in the core.
fn model(a: &Args) -> Model {
    bbwd_core::mutant::set(a.mutant.and_then(|m| m.core()));
    let mut cfg = Config::new(a.faults, a.mutant);
    cfg.record_survives_reboot = a.persistent_record;
    cfg.allow_spin = a.allow_spin;
    if let Some(h) = a.horizon_ms {
        cfg.horizon = Duration::from_millis(h);
    }
    Model::new(cfg)
}

/// The breadth-first search, then the random walks (unless a mutant's defect is already found),
/// their results added together.
fn check(m: &Model, a: &Args) -> Report {
    let lim = Limits {
        max_states: a.max_states,
        max_depth: a.max_depth,
        first: a.mutant.is_some(),
    };
    let mut r = search::run(m, &lim);
    let (walks, seed) = (a.walks, a.seed);
    if walks > 0 && !(lim.first && r.violation_count > 0) {
        eprintln!("model: breadth-first: {} states, {} violations; now {walks} random walks (seed {seed})", r.states, r.violation_count);
        let wr = search::walks(m, walks, seed, 20, lim.first);
        r.states += wr.states;
        r.depth = r.depth.max(wr.depth);
        r.complete = false;
        r.violation_count += wr.violation_count;
        r.violations.extend(wr.violations);
    }
    r
}

/// Prints the counterexamples and the verdict line; exit code 0 only without violations.
fn verdict(r: &Report) -> ExitCode {
    for t in &r.violations {
        println!("{t}");
    }
    println!(
        "model: {} states, depth {}, {}, {} violations",
        r.states,
        r.depth,
        if r.complete { "complete" } else { "bounded" },
        r.violation_count
    );
    if r.violation_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `s` as a number; a bad one exits at once (2).
fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("model-check: bad number {s:?}");
        std::process::exit(2)
    })
}
