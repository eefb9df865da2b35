//! Recording fakes of the platform traits (tests only), after youki's `syscall/test.rs`: every
//! operation is appended to one shared log in the order the shell made it, and the answers
//! (results, failures, datagrams, hook outcomes, the record file) are scripted in [`World`].
//!
//! Queries without effects (`name`, `fd`, `deadline`, `health`, `address`) are not recorded.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bbwd_platform::command::{SequenceMode, SequenceOutcome};
use bbwd_platform::fs;
use bbwd_platform::heartbeat::{Received, RecvError, SendError};
use bbwd_platform::ipmi::{self, Health, Op, Reply, SubmitError};
use bbwd_platform::vip::{Added, Cause, ProbeOutcome, Removed, VipError, VipOp};

use super::io::{Bmc, HeartbeatIo, HookRun, HookRunner, Platform, RecordStore, VipOps};

/// The fake VIP's address.
pub const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
/// The fake BMC's name.
pub const BMC: &str = "BMC peer-bmc:623";

/// One operation the shell made, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    BmcSubmit {
        op: Op,
        timeout: Duration,
    },
    BmcTryResult,
    BmcClose,
    VipHeld,
    VipAdd,
    VipRemove,
    VipAnnounce,
    VipStartProbe {
        window: Duration,
    },
    VipAdvanceProbe,
    VipCancelProbe,
    Send {
        link: usize,
        bytes: Vec<u8>,
    },
    Recv,
    HooksStart {
        phase: &'static str,
        steps: Vec<Vec<String>>,
        mode: SequenceMode,
    },
    HooksService,
    RecordRead,
    RecordWrite(Vec<u8>),
    RecordRemove,
}

/// The scripted world behind every fake, and the log of calls.
#[derive(Debug, Default)]
pub struct World {
    pub calls: Vec<Call>,
    /// `submit` refuses with this.
    pub submit_error: Option<SubmitError>,
    /// What `try_result` answers next (taken; `None`: still running).
    pub bmc_result: Option<Result<Reply, ipmi::Error>>,
    pub bmc_health: Health,
    /// What `warning` answers (an unverified Redfish certificate).
    pub bmc_warning: Option<&'static str>,
    /// The VIP is on the interface (`add` and `remove` change it).
    pub vip_held: bool,
    /// VIP operations that fail.
    pub vip_fail: Vec<VipOp>,
    /// What `advance_probe` answers next (taken; `None`: still listening).
    pub probe: Option<ProbeOutcome>,
    /// Datagrams `recv` hands out: (link, bytes).
    pub inbox: VecDeque<(usize, Vec<u8>)>,
    /// What the running hooks' `service` answers next (taken; `None`: still running).
    pub hooks_outcome: Option<SequenceOutcome>,
    pub boot_id: Option<u128>,
    /// The storage record file.
    pub record: Option<Vec<u8>>,
    /// Record operations that fail: "read", "write", "remove".
    pub record_fail: Vec<&'static str>,
}

/// A handle on the shared world.
pub type Shared = Rc<RefCell<World>>;

impl World {
    fn call(&mut self, c: Call) {
        self.calls.push(c);
    }

    fn vip(&mut self, op: VipOp) -> Result<(), VipError> {
        if self.vip_fail.contains(&op) {
            return Err(VipError {
                op,
                address: VIP,
                interface: "eth0".into(),
                cause: Cause::NoReply,
            });
        }
        Ok(())
    }

    fn record(&mut self, op: &'static str) -> Result<(), fs::Error> {
        if self.record_fail.contains(&op) {
            return Err(fs::Error::Io {
                path: PathBuf::from("/state/storage"),
                op,
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            });
        }
        Ok(())
    }
}

/// The fakes as a [`Platform`].
pub struct Fake;

impl Platform for Fake {
    type Bmc = FakeBmc;
    type Vip = FakeVip;
    type Links = FakeLinks;
    type Hooks = FakeHooks;
    type Storage = FakeStorage;
}

pub struct FakeBmc(pub Shared);

impl Bmc for FakeBmc {
    fn name(&self) -> &str {
        BMC
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn health(&self) -> Health {
        self.0.borrow().bmc_health.clone()
    }
    fn submit(&mut self, op: Op, _now: Instant, timeout: Duration) -> Result<(), SubmitError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::BmcSubmit { op, timeout });
        w.submit_error.map_or(Ok(()), Err)
    }
    fn try_result(&mut self, _now: Instant) -> Option<Result<Reply, ipmi::Error>> {
        let mut w = self.0.borrow_mut();
        w.call(Call::BmcTryResult);
        w.bmc_result.take()
    }
    fn close(self, _wait: Duration) {
        self.0.borrow_mut().call(Call::BmcClose);
    }
    fn warning(&self) -> Option<&'static str> {
        self.0.borrow().bmc_warning
    }
}

pub struct FakeVip(pub Shared);

impl fmt::Display for FakeVip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VIP}/24 on eth0")
    }
}

impl VipOps for FakeVip {
    fn address(&self) -> IpAddr {
        VIP
    }
    fn prefix_len(&self) -> u8 {
        24
    }
    fn interface(&self) -> &str {
        "eth0"
    }
    fn held(&mut self) -> Result<bool, VipError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::VipHeld);
        w.vip(VipOp::Lookup).map(|()| w.vip_held)
    }
    fn add(&mut self) -> Result<Added, VipError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::VipAdd);
        w.vip(VipOp::Add)?;
        let was = std::mem::replace(&mut w.vip_held, true);
        Ok(if was {
            Added::AlreadyHeld
        } else {
            Added::Added
        })
    }
    fn remove(&mut self) -> Result<Removed, VipError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::VipRemove);
        w.vip(VipOp::Remove)?;
        let was = std::mem::replace(&mut w.vip_held, false);
        Ok(if was {
            Removed::Removed
        } else {
            Removed::AlreadyGone
        })
    }
    fn send_announcement(&mut self) -> Result<(), VipError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::VipAnnounce);
        w.vip(VipOp::Announce)
    }
    fn start_probe(&mut self, _now: Instant, window: Duration) -> Result<(), VipError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::VipStartProbe { window });
        w.vip(VipOp::Probe)
    }
    fn advance_probe(&mut self, _now: Instant) -> Option<Result<ProbeOutcome, VipError>> {
        let mut w = self.0.borrow_mut();
        w.call(Call::VipAdvanceProbe);
        w.probe.take().map(Ok)
    }
    fn cancel_probe(&mut self) {
        self.0.borrow_mut().call(Call::VipCancelProbe);
    }
    fn probe_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn probe_deadline(&self) -> Option<Instant> {
        None
    }
}

/// `n` heartbeat links.
pub struct FakeLinks(pub Shared, pub usize);

impl HeartbeatIo for FakeLinks {
    fn len(&self) -> usize {
        self.1
    }
    fn fd(&self, _link: usize) -> Option<BorrowedFd<'_>> {
        None
    }
    fn local_addr(&self, _link: usize) -> Option<SocketAddr> {
        None
    }
    fn peer_addr(&self, _link: usize) -> Option<SocketAddr> {
        None
    }
    fn send(&mut self, link: usize, bytes: &[u8]) -> Result<(), SendError> {
        self.0.borrow_mut().call(Call::Send {
            link,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<Received>, RecvError> {
        let mut w = self.0.borrow_mut();
        w.call(Call::Recv);
        Ok(w.inbox.pop_front().map(|(link, bytes)| {
            let len = bytes.len().min(buf.len());
            buf[..len].copy_from_slice(&bytes[..len]);
            Received {
                link,
                len,
                from: SocketAddr::from(([192, 0, 2, 2], 5405)),
            }
        }))
    }
}

pub struct FakeHooks(pub Shared);

impl HookRunner for FakeHooks {
    type Run = FakeRun;
    fn start(
        &mut self,
        phase: &'static str,
        _node: &str,
        steps: Vec<Vec<String>>,
        _step_limit: Duration,
        mode: SequenceMode,
        _now: Instant,
    ) -> FakeRun {
        self.0
            .borrow_mut()
            .call(Call::HooksStart { phase, steps, mode });
        FakeRun(self.0.clone())
    }
}

pub struct FakeRun(pub Shared);

impl HookRun for FakeRun {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn service(&mut self, _now: Instant) -> Option<SequenceOutcome> {
        let mut w = self.0.borrow_mut();
        w.call(Call::HooksService);
        w.hooks_outcome.take()
    }
}

pub struct FakeStorage(pub Shared);

impl RecordStore for FakeStorage {
    fn path(&self) -> &Path {
        Path::new("/state/storage")
    }
    fn boot_id(&self) -> Option<u128> {
        self.0.borrow().boot_id
    }
    fn read(&mut self) -> Result<Option<Vec<u8>>, fs::Error> {
        let mut w = self.0.borrow_mut();
        w.call(Call::RecordRead);
        w.record("read")?;
        Ok(w.record.clone())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), fs::Error> {
        let mut w = self.0.borrow_mut();
        w.call(Call::RecordWrite(bytes.to_vec()));
        w.record("write")?;
        w.record = Some(bytes.to_vec());
        Ok(())
    }
    fn remove(&mut self) -> Result<(), fs::Error> {
        let mut w = self.0.borrow_mut();
        w.call(Call::RecordRemove);
        w.record("remove")?;
        w.record = None;
        Ok(())
    }
}
