//! `bbwd-platform`: everything in bbwd that touches the operating system.
//!
//! # What this crate owns
//! Spawning, adopting, signalling and reaping the supervised Bitbucket process (`process`),
//! short-lived helper commands such as `notify.command` and the `[hooks]` steps (`command`),
//! the non-blocking `/status` probe (`http`) and database connect check (`tcp`), the control socket
//! (`control`), signal delivery (`signals`), systemd notification (`sdnotify`), state files
//! (`fs`) and the clocks (`clock`), and the HAProxy agent-check server of a mirror-farm node
//! (`agentcheck`), the Prometheus scrape endpoint (`metrics_server`). The virtual IP: netlink add/remove/watch, gratuitous ARP / unsolicited NA
//! and the pre-add probe (`vip`).
//! Sessions to a BMC over IPMI (RMCP+ or `/dev/ipmi0`) on a worker thread (`bmc`, shared with
//! Redfish), for fencing and the BMC watchdog (`ipmi`); fencing over Redfish (HTTPS with a verified certificate, `redfish`), and
//! either behind one client (`fence_device`). The pair's other eyes on the network: reachability of the witness by
//! ICMP echo (`witness`) and the VIP interface's link state over netlink (`linkwatch`).
//!
//! # What it must not do
//! Decide anything. No module here knows what a failed check *means*: results go back to the
//! caller as values, and the agent's state machine decides. Nothing here blocks the caller's
//! event loop for longer than a system call: every operation that can wait on a peer is
//! non-blocking and exposes a file descriptor to poll plus a deadline.
//!
//! # Invariants
//! * No allocation on the steady-state paths (a monitoring probe, a database check, a
//!   keep-alive): buffers are sized once at construction.
//! * Every `unsafe` block carries a `SAFETY:` comment.

pub mod agentcheck;
pub mod bmc;
pub mod clock;
pub mod command;
pub mod control;
pub mod fence_device;
pub mod fs;
pub mod heartbeat;
pub mod http;
pub mod ipmi;
pub mod linkwatch;
pub mod logger;
pub mod metrics_server;
pub mod netlink;
pub mod poll;
pub mod process;
pub mod realtime;
pub mod redfish;
pub mod reexec;
pub mod sdnotify;
pub mod signals;
pub mod tcp;
#[cfg(test)]
mod testns;
pub mod vip;
pub mod witness;
