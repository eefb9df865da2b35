//! `bbwd-watchdog`: the watchdogs that reset the node (or restart bbwd) when bbwd hangs or the
//! node can no longer correct itself, and the policy that decides when to pet them.
//!
//! Owns: the petting policy (`policy`, pure) and the keep-alive pacing of each watchdog
//! (`systemd`). Must not: decide anything about Bitbucket (the agent's state machine does and
//! tells the policy through `policy::Inputs`).
//!
//! Keep-alives are sent from the main loop itself, at the end of a pass, never from a helper
//! thread: a hung loop must stop them.

pub mod policy;
pub mod systemd;
