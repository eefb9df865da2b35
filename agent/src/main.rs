//! `bbwd`: the command line. `cli` parses the arguments and runs the daemon or a client
//! command; every command ends in an `Exit` or a `cli::Error`, and `main` alone reports the
//! error and hands the exit code to the OS (the numbers are in `exit.rs`, the only place they
//! are written).

mod cli;
mod cluster;
mod config;
mod daemon;
mod events;
mod exit;
mod fencing;
mod hostcheck;
mod metrics;
mod mirror;
mod ocf;
mod status;

// The decisions live in the pure core crate; the agent names them as its own modules.
use bbwd_core::{heartbeat, machine, pair};

#[cfg(feature = "alloc-count")]
mod alloc_count;

fn main() -> std::process::ExitCode {
    let exit = match cli::run() {
        Ok(exit) => exit,
        Err(e) => {
            cli::report(&e);
            exit::Exit::of(&e)
        }
    };
    exit.into()
}
