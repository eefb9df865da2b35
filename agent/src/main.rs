//! `bbwd`: the command line. Parses arguments, dispatches to the daemon or to a client command,
//! and decides every exit code in one place (`main`).
//!
//! Exit codes: `run` 0 after a clean stop, 2 for an invalid config, 1 for any other failure;
//! `check-config` 0 valid / 2 invalid; `status` 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN;
//! operator commands 0 done / 1 refused or failed / 2 bad usage or config.

mod cli;
mod cluster;
mod config;
mod daemon;
mod events;
mod fence;
mod hostcheck;
mod metrics;
mod mirror;
mod ocf;
mod status;

// The decisions live in the pure core crate; the agent names them as its own modules.
use bbwd_core::{heartbeat, machine, pair};

#[cfg(feature = "alloc-count")]
mod alloc_count;

fn main() {
    std::process::exit(cli::main());
}
