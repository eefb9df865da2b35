//! The platform surface pair mode's shell uses, behind narrow traits: the peer's BMC, the VIP,
//! the heartbeat links, the `[hooks]` runner and the storage record. Each trait has the real
//! implementation here (a thin forward to `bbwd_platform`, nothing added) and a recording fake
//! in `fake.rs` (tests only).
//!
//! Owns no decision and no state of its own: every method is the platform call of the same
//! name. What the shell makes of the answers is in `mod.rs`.
//!
//! [`Cluster`](super::Cluster) is generic over a [`Platform`] (the five types together) rather
//! than holding `Box<dyn ...>`: the daemon builds exactly one instantiation ([`Real`]), which
//! compiles to the same direct calls as before the traits existed, `close(self)` can consume
//! the BMC client, and the fakes cost the production binary nothing.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bbwd_platform::command::{Sequence, SequenceMode, SequenceOutcome};
use bbwd_platform::fence_device::FenceDevices;
use bbwd_platform::fs;
use bbwd_platform::heartbeat::{Links, Received, RecvError, SendError};
use bbwd_platform::ipmi::{self, Health, Op, Reply, SubmitError};
use bbwd_platform::vip::{Added, ProbeOutcome, Removed, Vip, VipError};

/// The types one [`Cluster`](super::Cluster) drives.
pub trait Platform {
    type Bmc: Bmc;
    type Vip: VipOps;
    type Links: HeartbeatIo;
    type Hooks: HookRunner;
    type Storage: RecordStore;
}

/// The real platform: IPMI or Redfish over the network, netlink and raw sockets, UDP, child processes,
/// files in `state_dir`.
pub struct Real;

impl Platform for Real {
    type Bmc = FenceDevices;
    type Vip = Vip;
    type Links = Links;
    type Hooks = Spawner;
    type Storage = StorageFile;
}

/// The peer's BMC: one operation at a time, polled for its result.
pub trait Bmc {
    /// `BMC host:port`, for messages.
    fn name(&self) -> &str;
    /// Readable when a result (or a health change) is there.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    fn deadline(&self) -> Option<Instant>;
    fn health(&self) -> Health;
    fn submit(&mut self, op: Op, now: Instant, timeout: Duration) -> Result<(), SubmitError>;
    /// The outstanding operation's result (a timeout once its deadline passed), if any.
    fn try_result(&mut self, now: Instant) -> Option<Result<Reply, ipmi::Error>>;
    fn close(self, wait: Duration);
    /// A weakness of the device's configuration for `bbwd status` (an unverified certificate).
    fn warning(&self) -> Option<&'static str> {
        None
    }
    /// Each fence device's name and health, in the order they are tried (`[[fencing.device]]`).
    fn each(&self) -> Vec<(String, Health)> {
        vec![(self.name().to_string(), self.health())]
    }
}

impl Bmc for FenceDevices {
    fn name(&self) -> &str {
        FenceDevices::name(self)
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(FenceDevices::fd(self))
    }
    fn deadline(&self) -> Option<Instant> {
        FenceDevices::deadline(self)
    }
    fn health(&self) -> Health {
        FenceDevices::health(self)
    }
    fn submit(&mut self, op: Op, now: Instant, timeout: Duration) -> Result<(), SubmitError> {
        FenceDevices::submit(self, op, now, timeout)
    }
    fn try_result(&mut self, now: Instant) -> Option<Result<Reply, ipmi::Error>> {
        FenceDevices::try_result(self, now).map(|c| c.result)
    }
    fn close(self, wait: Duration) {
        FenceDevices::close(self, wait)
    }
    fn warning(&self) -> Option<&'static str> {
        FenceDevices::warning(self)
    }
    fn each(&self) -> Vec<(String, Health)> {
        FenceDevices::each(self)
            .into_iter()
            .map(|(n, h)| (n.to_string(), h))
            .collect()
    }
}

/// The virtual IP on one interface: look, probe, add, announce, remove.
pub trait VipOps: Display {
    fn address(&self) -> IpAddr;
    fn prefix_len(&self) -> u8;
    fn interface(&self) -> &str;
    fn held(&mut self) -> Result<bool, VipError>;
    fn add(&mut self) -> Result<Added, VipError>;
    fn remove(&mut self) -> Result<Removed, VipError>;
    fn send_announcement(&mut self) -> Result<(), VipError>;
    fn start_probe(&mut self, now: Instant, window: Duration) -> Result<(), VipError>;
    fn advance_probe(&mut self, now: Instant) -> Option<Result<ProbeOutcome, VipError>>;
    fn cancel_probe(&mut self);
    fn probe_fd(&self) -> Option<BorrowedFd<'_>>;
    fn probe_deadline(&self) -> Option<Instant>;
}

impl VipOps for Vip {
    fn address(&self) -> IpAddr {
        Vip::address(self)
    }
    fn prefix_len(&self) -> u8 {
        Vip::prefix_len(self)
    }
    fn interface(&self) -> &str {
        Vip::interface(self)
    }
    fn held(&mut self) -> Result<bool, VipError> {
        Vip::held(self)
    }
    fn add(&mut self) -> Result<Added, VipError> {
        Vip::add(self)
    }
    fn remove(&mut self) -> Result<Removed, VipError> {
        Vip::remove(self)
    }
    fn send_announcement(&mut self) -> Result<(), VipError> {
        Vip::send_announcement(self)
    }
    fn start_probe(&mut self, now: Instant, window: Duration) -> Result<(), VipError> {
        Vip::start_probe(self, now, window)
    }
    fn advance_probe(&mut self, now: Instant) -> Option<Result<ProbeOutcome, VipError>> {
        Vip::advance_probe(self, now)
    }
    fn cancel_probe(&mut self) {
        Vip::cancel_probe(self)
    }
    fn probe_fd(&self) -> Option<BorrowedFd<'_>> {
        Vip::probe_fd(self)
    }
    fn probe_deadline(&self) -> Option<Instant> {
        Vip::probe_deadline(self)
    }
}

/// The heartbeat links: datagrams out on link i, in from any link.
pub trait HeartbeatIo {
    fn len(&self) -> usize;
    fn fd(&self, link: usize) -> Option<BorrowedFd<'_>>;
    fn local_addr(&self, link: usize) -> Option<SocketAddr>;
    fn peer_addr(&self, link: usize) -> Option<SocketAddr>;
    fn send(&mut self, link: usize, bytes: &[u8]) -> Result<(), SendError>;
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, RecvError>;
}

impl HeartbeatIo for Links {
    fn len(&self) -> usize {
        Links::len(self)
    }
    fn fd(&self, link: usize) -> Option<BorrowedFd<'_>> {
        Links::fd(self, link)
    }
    fn local_addr(&self, link: usize) -> Option<SocketAddr> {
        Links::local_addr(self, link)
    }
    fn peer_addr(&self, link: usize) -> Option<SocketAddr> {
        Links::peer_addr(self, link)
    }
    fn send(&mut self, link: usize, bytes: &[u8]) -> Result<(), SendError> {
        Links::send(self, link, bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, RecvError> {
        Links::recv(self, buf)
    }
}

/// Starts a `[hooks]` phase's commands.
pub trait HookRunner {
    type Run: HookRun;
    /// Starts `steps` in order (`phase` e.g. "before_start" and `node` reach the commands),
    /// each within `step_limit`.
    fn start(
        &mut self,
        phase: &'static str,
        node: &str,
        steps: Vec<Vec<String>>,
        step_limit: Duration,
        mode: SequenceMode,
        now: Instant,
    ) -> Self::Run;
}

/// One running `[hooks]` phase, polled until it is done.
pub trait HookRun {
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    fn deadline(&self) -> Option<Instant>;
    /// The outcome once every step ran (reported once).
    fn service(&mut self, now: Instant) -> Option<SequenceOutcome>;
}

/// Runs hooks as child processes ([`Sequence`]).
pub struct Spawner;

impl HookRunner for Spawner {
    type Run = Sequence;
    fn start(
        &mut self,
        phase: &'static str,
        node: &str,
        steps: Vec<Vec<String>>,
        step_limit: Duration,
        mode: SequenceMode,
        now: Instant,
    ) -> Sequence {
        let mut seq = Sequence::new(phase, node, steps, step_limit, mode);
        seq.start(now);
        seq
    }
}

impl HookRun for Sequence {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Sequence::fd(self)
    }
    fn deadline(&self) -> Option<Instant> {
        Sequence::deadline(self)
    }
    fn service(&mut self, now: Instant) -> Option<SequenceOutcome> {
        Sequence::service(self, now)
    }
}

/// The storage record (`state_dir/storage`) and the kernel boot id it is tied to.
pub trait RecordStore {
    /// The record's path, for messages.
    fn path(&self) -> &Path;
    /// This kernel boot's id.
    fn boot_id(&self) -> Option<u128>;
    /// The record's bytes; `None` when there is none.
    fn read(&mut self) -> Result<Option<Vec<u8>>, fs::Error>;
    /// Replaces the record atomically.
    fn write(&mut self, bytes: &[u8]) -> Result<(), fs::Error>;
    /// Removes the record; missing is fine.
    fn remove(&mut self) -> Result<(), fs::Error>;
}

/// The record as a file (mode 0640, written atomically).
pub struct StorageFile(pub PathBuf);

impl RecordStore for StorageFile {
    fn path(&self) -> &Path {
        &self.0
    }
    fn boot_id(&self) -> Option<u128> {
        bbwd_platform::process::boot_id()
    }
    fn read(&mut self) -> Result<Option<Vec<u8>>, fs::Error> {
        fs::read_optional(&self.0)
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), fs::Error> {
        fs::write_atomic(&self.0, bytes, 0o640)
    }
    fn remove(&mut self) -> Result<(), fs::Error> {
        fs::remove_optional(&self.0)
    }
}
