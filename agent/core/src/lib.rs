//! `bbwd-core`: every decision bbwd makes, as pure state machines.
//!
//! Owns: the single-node supervisor ([`machine`]), the cold-standby pair ([`pair`]), the
//! heartbeat codec and peer tracker ([`heartbeat`]), the timing rules the pair's safety argument
//! needs ([`timing`]), and the vocabulary they share with the platform ([`probe`]).
//!
//! Must not: do I/O, read a clock, spawn, sleep, or depend on a crate that does. Time is an
//! argument (`now`), platform results come back as inputs, and what must happen is returned as
//! actions. That is what lets the model checker drive two real nodes through every interleaving.

#![forbid(unsafe_code)]

pub mod fence;
pub mod heartbeat;
pub mod machine;
pub mod mutant;
pub mod node;
pub mod output;
pub mod pair;
pub mod probe;
pub mod severity;
pub mod status_url;
pub mod timing;
