//! The caller's handle on one BMC's worker: submit an operation with a deadline, poll the fd,
//! collect the result; or, in the CLI only, wait for it.
//!
//! Owns: the request and completion channels, the operation in flight and its deadline, the
//! worker's thread handle (a dead worker is replaced at the next submit). Must not: block the
//! caller's loop (only [`BmcClient::call`] and [`BmcClient::close`] wait, and say so), or talk
//! to the BMC itself.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wake::EventFd;
use super::worker::{spawn, Request, Shared};
use super::{Completion, Health, OpId, Protocol, Settings, SubmitError};
use crate::ipmi::{Error, Failure, Op, Reply};

/// The caller's handle on one BMC: submit operations, poll [`fd`](Self::fd), collect results.
/// `P` says where the BMC is and how to speak to it (`ipmi::Target`, `redfish::Endpoint`).
pub struct BmcClient<P> {
    target: P,
    name: String,
    settings: Settings,
    tx: mpsc::Sender<Request>,
    rx: mpsc::Receiver<Completion>,
    wake: Arc<EventFd>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    in_flight: Option<(OpId, Op, Instant)>,
    next_id: u64,
}

impl<P: Protocol> BmcClient<P> {
    /// Starts the worker for `target`, named `name` in errors and logs. The protocol's own
    /// `start` checks first what can be checked without the network.
    pub(crate) fn spawn(target: P, name: String, settings: Settings) -> Result<Self, Error> {
        let fail = |failure| Error {
            bmc: name.clone(),
            op: "start",
            failure,
        };
        let wake = Arc::new(
            EventFd::new().map_err(|e| fail(Failure::Unreachable(format!("eventfd: {e}"))))?,
        );
        let shared = Arc::new(Shared::new());
        let (tx, rx, thread) = spawn(&target, &name, settings, &shared, &wake)
            .map_err(|e| fail(Failure::Unreachable(format!("cannot start a thread: {e}"))))?;
        Ok(BmcClient {
            target,
            name,
            settings,
            tx,
            rx,
            wake,
            shared,
            thread: Some(thread),
            in_flight: None,
            next_id: 1,
        })
    }

    /// Where the BMC is, as the client was started for it.
    pub(crate) fn target(&self) -> &P {
        &self.target
    }

    /// `BMC host:port` or `Redfish https://host:port`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Readable when a result (or a health change) is ready: register it in the poll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.0.as_fd()
    }

    /// The in-flight operation's deadline (the loop must wake for it).
    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.map(|(_, _, d)| d)
    }

    /// Whether an operation is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The keep-alive's view of the session.
    pub fn health(&self) -> Health {
        self.shared
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// Starts `op`, to finish within `timeout`. One operation at a time.
    pub fn submit(&mut self, op: Op, now: Instant, timeout: Duration) -> Result<OpId, SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        let id = OpId(self.next_id);
        self.next_id += 1;
        let deadline = now + timeout;
        let req = Request::Run { id, op, deadline };
        if let Err(mpsc::SendError(req)) = self.tx.send(req) {
            // The worker is gone (it never should be): start a new one and hand it over.
            self.respawn();
            if self.tx.send(req).is_err() {
                log::error!(
                    "{}: the {} worker cannot be started",
                    self.name,
                    P::PROFILE.protocol
                );
            }
        }
        self.in_flight = Some((id, op, deadline));
        Ok(id)
    }

    /// The in-flight operation's outcome, if it finished or its deadline passed (then
    /// `timeout`). Never blocks.
    pub fn try_result(&mut self, now: Instant) -> Option<Completion> {
        self.wake.drain();
        let (want, op, deadline) = self.in_flight?;
        // Others are late results of operations already reported as timed out.
        while let Ok(c) = self.rx.try_recv() {
            if c.id == want {
                self.in_flight = None;
                return Some(c);
            }
        }
        if now >= deadline {
            self.in_flight = None;
            return Some(Completion {
                id: want,
                op,
                result: Err(Error {
                    bmc: self.name.clone(),
                    op: P::op_name(op),
                    failure: Failure::Timeout,
                }),
                elapsed: now.saturating_duration_since(deadline),
            });
        }
        None
    }

    /// Runs `op` and waits for it (the CLI and tests; never the daemon's loop).
    pub fn call(&mut self, op: Op, timeout: Duration) -> Result<Reply, Error> {
        if self.submit(op, Instant::now(), timeout).is_err() {
            return Err(Error {
                bmc: self.name.clone(),
                op: P::op_name(op),
                failure: Failure::Protocol("another operation is in flight".into()),
            });
        }
        loop {
            if let Some(c) = self.try_result(Instant::now()) {
                return c.result;
            }
            let left = self
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let mut pfd = libc::pollfd {
                fd: self.wake.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd on our own eventfd, for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }

    /// Stops the worker, closing the session if the BMC allows it; waits at most `wait`.
    pub fn close(mut self, wait: Duration) {
        let _ = self.tx.send(Request::Shutdown);
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.shared.exited.lock().map(|e| *e).unwrap_or(true) {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn respawn(&mut self) {
        if let Ok((tx, rx, thread)) = spawn(
            &self.target,
            &self.name,
            self.settings,
            &self.shared,
            &self.wake,
        ) {
            self.tx = tx;
            self.rx = rx;
            self.thread = Some(thread);
        }
    }
}

impl<P> Drop for BmcClient<P> {
    fn drop(&mut self) {
        // Do not wait: the worker closes the session and exits on its own.
        let _ = self.tx.send(Request::Shutdown);
    }
}
