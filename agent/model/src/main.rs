//! `model-check`: runs the search and prints the verdict; exit code 0 only without violations.

use std::process::ExitCode;
use std::time::Duration;

use bbwd_model::search::{self, Limits};
use bbwd_model::world::{Config, Model, Mutant};

fn main() -> ExitCode {
    let mut max_states = 1_200_000usize;
    let mut max_depth = u32::MAX;
    let mut faults = 2u8;
    let mut horizon_ms: Option<u64> = None;
    let mut mutant = None;
    let mut persistent_record = false;
    let mut allow_spin = false;
    let mut walks: u64 = 0;
    let mut seed: u64 = 0x5eed_b0b0_cafe_f00d;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| -> String {
            args.next().unwrap_or_else(|| {
                eprintln!("model-check: {name} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--max-states" => max_states = parse(&val("--max-states")),
            "--max-depth" => max_depth = parse(&val("--max-depth")),
            "--faults" => faults = parse(&val("--faults")),
            "--horizon-ms" => horizon_ms = Some(parse(&val("--horizon-ms"))),
            // The storage record as the shell kept it before it was tied to the kernel boot.
            "--persistent-record" => persistent_record = true,
            "--allow-spin" => allow_spin = true,
            // Random walks after the breadth-first search (deep multi-fault scenarios).
            "--walks" => walks = parse(&val("--walks")),
            "--seed" => seed = parse(&val("--seed")),
            "--mutant" => {
                let v = val("--mutant");
                mutant = Some(Mutant::parse(&v).unwrap_or_else(|| {
                    eprintln!("model-check: no mutant {v:?} (--list-mutants)");
                    std::process::exit(2)
                }))
            }
            "--list-mutants" => {
                for m in Mutant::ALL {
                    println!("{:<26} {}", m.name(), m.about());
                }
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("model-check: unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    bbwd_core::mutant::set(mutant.and_then(|m| m.core()));
    let mut cfg = Config::new(faults, mutant);
    cfg.record_survives_reboot = persistent_record;
    cfg.allow_spin = allow_spin;
    if let Some(h) = horizon_ms {
        cfg.horizon = Duration::from_millis(h);
    }
    let m = Model::new(cfg);
    let lim = Limits {
        max_states,
        max_depth,
        first: mutant.is_some(),
    };
    let mut r = search::run(&m, &lim);
    if walks > 0 && !(lim.first && r.violation_count > 0) {
        eprintln!("model: breadth-first: {} states, {} violations; now {walks} random walks (seed {seed})", r.states, r.violation_count);
        let wr = search::walks(&m, walks, seed, 20, lim.first);
        r.states += wr.states;
        r.depth = r.depth.max(wr.depth);
        r.complete = false;
        r.violation_count += wr.violation_count;
        r.violations.extend(wr.violations);
    }
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

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("model-check: bad number {s:?}");
        std::process::exit(2)
    })
}
