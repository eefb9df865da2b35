//! The worker thread: runs submitted operations against their deadlines, keeps the session
//! alive, reconnects with backoff, and turns every failure (a panic included) into a
//! [`Failure`].
//!
//! Owns: the [`Protocol::Session`], the retry policy (once, on a fresh session, for failures a
//! fresh session may cure), the shared [`Health`]. Must not: block the caller (it runs on its
//! own thread), or reuse a session after any error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wake::EventFd;
use super::{guarded, Completion, Health, OpId, Protocol, Settings, BACKOFF_MAX, BACKOFF_MIN};
use crate::ipmi::{Error, Failure, Op, Reply};

pub(super) enum Request {
    Run { id: OpId, op: Op, deadline: Instant },
    Shutdown,
}

/// What the caller and the worker both see.
pub(super) struct Shared {
    pub(super) health: Mutex<Health>,
    /// Set by the worker as its very last act.
    pub(super) exited: Mutex<bool>,
}

impl Shared {
    pub(super) fn new() -> Shared {
        Shared {
            health: Mutex::new(Health::default()),
            exited: Mutex::new(false),
        }
    }
}

struct Worker<P: Protocol> {
    target: P,
    name: String,
    settings: Settings,
    session: Option<P::Session>,
    /// When the session was last used (successfully).
    last_used: Instant,
    /// Background reconnects: not before this, and the wait after the next failure.
    next_connect: Instant,
    backoff: Duration,
    shared: Arc<Shared>,
    wake: Arc<EventFd>,
}

impl<P: Protocol> Worker<P> {
    fn main(mut self, rx: mpsc::Receiver<Request>, tx: mpsc::Sender<Completion>) {
        loop {
            let wait = self.idle_wait(Instant::now());
            let req = match wait {
                Some(w) => rx.recv_timeout(w),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match req {
                Ok(Request::Run { id, op, deadline }) => {
                    let started = Instant::now();
                    let result = self.run(op, deadline).map_err(|failure| Error {
                        bmc: self.name.clone(),
                        op: P::op_name(op),
                        failure,
                    });
                    self.note(&result);
                    let done = Completion {
                        id,
                        op,
                        result,
                        elapsed: started.elapsed(),
                    };
                    if tx.send(done).is_err() {
                        break;
                    }
                    self.wake.signal();
                }
                Ok(Request::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.keepalive(),
            }
        }
        if let Some(mut s) = self.session.take() {
            let (target, t) = (&self.target, self.settings.reply_timeout);
            let _ = guarded(&P::PROFILE, || {
                target.close(&mut s, t);
                Ok(())
            });
        }
        if let Ok(mut e) = self.shared.exited.lock() {
            *e = true;
        }
        self.wake.signal();
    }

    /// How long to wait for a request before background work is due.
    fn idle_wait(&self, now: Instant) -> Option<Duration> {
        let every = self.settings.keepalive?;
        let due = if self.session.is_some() {
            self.last_used + every
        } else {
            self.next_connect
        };
        Some(due.saturating_duration_since(now))
    }

    fn keepalive(&mut self) {
        let reconnect = self.session.is_none();
        let deadline =
            Instant::now() + self.settings.reply_timeout * P::PROFILE.keepalive_reply_timeouts;
        let op = self.settings.keepalive_op;
        let result = self.attempt(op, deadline).map_err(|failure| Error {
            bmc: self.name.clone(),
            op: if reconnect {
                P::PROFILE.reconnect_op
            } else {
                "keep-alive"
            },
            failure,
        });
        match &result {
            Ok(_) => self.backoff = BACKOFF_MIN,
            Err(_) => {
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
        if self.note(&result) {
            self.wake.signal();
        }
    }

    /// Records an outcome in the shared health; returns whether `up` changed.
    fn note(&self, result: &Result<Reply, Error>) -> bool {
        let Ok(mut h) = self.shared.health.lock() else {
            return false;
        };
        let was = h.up;
        match result {
            Ok(_) => {
                h.up = true;
                h.ok += 1;
                h.last_error = None;
            }
            Err(e) => {
                h.up = self.session.is_some();
                h.failed += 1;
                h.last_error = Some(e.clone());
            }
        }
        was != h.up
    }

    /// One submitted operation: on the open session, then once more on a fresh one if that
    /// may help and time remains.
    fn run(&mut self, op: Op, deadline: Instant) -> Result<Reply, Failure> {
        let had_session = self.session.is_some();
        match self.attempt(op, deadline) {
            Err(f) if had_session && !f.is_final() => {
                let room = self.settings.reply_timeout.min(P::PROFILE.retry_room_cap);
                if Instant::now() + room < deadline {
                    log::info!(
                        "{}: {}: {f}; retrying once on a fresh {}",
                        self.name,
                        P::op_name(op),
                        P::PROFILE.session
                    );
                    match self.attempt(op, deadline) {
                        // The BMC went silent: the first failure says it best.
                        Err(Failure::Unreachable(_)) => Err(f),
                        other => other,
                    }
                } else {
                    Err(f)
                }
            }
            other => other,
        }
    }

    /// Opens a session if needed, then runs `op`. Any failure drops the session.
    fn attempt(&mut self, op: Op, deadline: Instant) -> Result<Reply, Failure> {
        if Instant::now() >= deadline {
            return Err(Failure::Timeout);
        }
        let (target, t) = (&self.target, self.settings.reply_timeout);
        if self.session.is_none() {
            let session = guarded(&P::PROFILE, || target.open(t, deadline))?;
            if let Ok(mut h) = self.shared.health.lock() {
                h.sessions_opened += 1;
            }
            self.session = Some(session);
            if P::PROFILE.deadline_after_open && Instant::now() >= deadline {
                // The session stays: it is fine, only this operation ran out of time.
                return Err(Failure::Timeout);
            }
        }
        let Some(session) = self.session.as_mut() else {
            return Err(Failure::Protocol(format!("no {}", P::PROFILE.session)));
        };
        match guarded(&P::PROFILE, || target.run(session, op, t, deadline)) {
            Ok(r) => {
                self.last_used = Instant::now();
                Ok(r)
            }
            Err(f) => {
                // Never trust this session again: a late reply would be read as the answer
                // to the next request. Dropping it closes its socket.
                self.session = None;
                Err(f)
            }
        }
    }
}

pub(super) type Spawned = (
    mpsc::Sender<Request>,
    mpsc::Receiver<Completion>,
    JoinHandle<()>,
);

/// Starts a worker for `target` on a thread of its own.
pub(super) fn spawn<P: Protocol>(
    target: &P,
    name: &str,
    settings: Settings,
    shared: &Arc<Shared>,
    wake: &Arc<EventFd>,
) -> std::io::Result<Spawned> {
    let (req_tx, req_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let now = Instant::now();
    let worker = Worker {
        target: target.clone(),
        name: name.to_string(),
        settings,
        session: None,
        last_used: now,
        next_connect: now,
        backoff: BACKOFF_MIN,
        shared: shared.clone(),
        wake: wake.clone(),
    };
    let mut builder = std::thread::Builder::new().name(P::PROFILE.thread_name.into());
    if let Some(bytes) = P::PROFILE.stack_bytes {
        builder = builder.stack_size(bytes);
    }
    let thread = builder.spawn(move || {
        // Panics inside conversations are caught per operation; this is the last net.
        let _ = catch_unwind(AssertUnwindSafe(|| worker.main(req_rx, done_tx)));
    })?;
    Ok((req_tx, done_rx, thread))
}
