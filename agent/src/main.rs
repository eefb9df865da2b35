//! `bbwd`: the command line and the daemon's entry point.

#![allow(dead_code)]

mod config;
mod machine;

fn main() {
    let _ = config::DEFAULT_PATH;
}
