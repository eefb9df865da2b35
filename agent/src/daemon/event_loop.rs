//! The daemon's loop: one pass registers every fd, waits in `poll(2)` until the earliest
//! deadline, turns readiness into node inputs (the process, the `/status` probe, the database
//! and port checks, notifications, control clients, pair mode's I/O), and ends with the
//! keep-alives, so a pass that hangs anywhere stops them. Also the loop's own pace.
//!
//! Must not decide anything: the node decides; this file only reads the world.

#[allow(unused_imports)]
use super::*;

/// Where each source's fd sits in this pass's poll set (`None`: not registered this pass).
struct Tokens {
    signals: Option<Token>,
    pidfd: Option<Token>,
    output: Option<Token>,
    probe: Option<Token>,
    db: Option<Token>,
    free: Option<Token>,
    notify: Option<Token>,
    /// Pair mode's fds (`crate::cluster::Cluster::register`).
    cluster: Option<crate::cluster::Tokens>,
}

impl Core {
    /// Runs passes until the node has exited or a re-exec is due; then returns (`Err` only if
    /// `poll(2)` itself failed).
    pub(super) fn main_loop(
        &mut self,
        control: &mut ControlServer,
        signals: &mut Signals,
    ) -> Result<(), Error> {
        let mut set = PollSet::new();
        while !self.exit && self.reexec_at.is_none_or(|t| clock::now() < t) {
            let now = clock::now();
            let tokens = self.register(&mut set, control, signals);
            let now = self.wait(&mut set, now, control)?;
            #[cfg(feature = "alloc-count")]
            let (allocs_before, events_before, checks_before) = (
                crate::alloc_count::allocations(),
                self.events_recorded,
                self.checks_begun,
            );
            if set.ready(tokens.signals).any() {
                self.service_signals(now, signals);
            }
            self.service_io(now, &set, &tokens);
            #[cfg_attr(not(feature = "alloc-count"), allow(unused_variables))]
            let served = self.service_control(now, control);
            self.tick(now, &set, &tokens);
            #[cfg(feature = "alloc-count")]
            self.bench.pass(
                crate::alloc_count::allocations() - allocs_before,
                self.checks_begun - checks_before,
                served || self.events_recorded != events_before,
            );
            let end = self.end_pass(now);
            // End of the pass: the keep-alives go last, so a pass that hangs anywhere stops them.
            self.keep_alive(now, end);
        }
        if self.reexec_at.is_none() {
            info!("Bitbucket stopped; bbwd exits");
        }
        #[cfg(feature = "alloc-count")]
        info!("{}", self.bench.report());
        Ok(())
    }

    /// Clears the poll set and registers every fd this pass waits on.
    fn register(&self, set: &mut PollSet, control: &ControlServer, signals: &Signals) -> Tokens {
        set.clear();
        let signals = set.add(signals.fd(), Want::Read);
        let pidfd = self
            .proc
            .as_ref()
            .and_then(|p| p.pidfd())
            .and_then(|fd| set.add(fd, Want::Read));
        let output = self
            .proc
            .as_ref()
            .and_then(|p| p.output_fd())
            .and_then(|fd| set.add(fd, Want::Read));
        let probe = self.probe.interest().and_then(|(fd, i)| {
            set.add(
                fd,
                match i {
                    Interest::Readable => Want::Read,
                    Interest::Writable => Want::Write,
                },
            )
        });
        let db = self.db.fd().and_then(|fd| set.add(fd, Want::Write));
        let free = self.free.fd().and_then(|fd| set.add(fd, Want::Write));
        if let Some(fd) = bbwd_platform::logger::poll_fd() {
            let _ = set.add(fd, Want::Write);
        }
        let notify = self
            .notify
            .as_ref()
            .and_then(|n| n.fd())
            .and_then(|fd| set.add(fd, Want::Read));
        control.poll_items(&mut |item| {
            let _ = set.add(
                item.fd,
                if item.writable {
                    Want::Write
                } else {
                    Want::Read
                },
            );
        });
        if let Some(lb) = &self.lb {
            lb.server.poll_items(&mut |fd, i| {
                let want = match i {
                    agentcheck::Interest::Read => Want::Read,
                    agentcheck::Interest::Write => Want::Write,
                };
                let _ = set.add(fd, want);
            });
        }
        let cluster = self.cluster.as_ref().map(|c| c.register(set));
        // Last: should the set ever be full, a scrape waits (its server is serviced every
        // pass anyway), never a heartbeat.
        self.exporter.poll_items(&mut |fd, want| {
            let _ = set.add(fd, want);
        });
        Tokens {
            signals,
            pidfd,
            output,
            probe,
            db,
            free,
            notify,
            cluster,
        }
    }

    /// Waits in `poll(2)` until the earliest deadline; records how late it woke and returns
    /// the time it did.
    fn wait(
        &mut self,
        set: &mut PollSet,
        now: Instant,
        control: &ControlServer,
    ) -> Result<Instant, Error> {
        let deadline = self.next_deadline(now, control);
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        let planned_at = now;
        set.wait(timeout).map_err(Error::Loop)?;

        let now = clock::now();
        if let Some(d) = deadline {
            // Late against the moment it was to wake (a deadline already due when the wait
            // began means "at once", not "late by its age").
            self.pace_late(now.saturating_duration_since(d.max(planned_at)));
        }
        Ok(now)
    }

    /// Reads every signal received: shutdown goes to the node, SIGHUP reopens the event log.
    fn service_signals(&mut self, now: Instant, signals: &mut Signals) {
        while let Some(sig) = signals.read() {
            match sig {
                Received::Shutdown => {
                    self.sd.stopping();
                    // Pair mode: the node releases in order (VIP, Bitbucket, hooks) first; the
                    // supervisor shuts down when that is done.
                    self.feed_node(now, node::Input::Shutdown);
                }
                Received::Reopen => {
                    if let Some(l) = &mut self.event_log {
                        if let Err(e) = l.reopen() {
                            warn!("{e}");
                        }
                    }
                }
                Received::Ignored(n) => {
                    warn!("signal {n} received and ignored: bbwd stops on SIGTERM/SIGINT only")
                }
            }
        }
    }

    /// Turns what is ready or due into inputs: the process, the probe and database check (and
    /// their `Checked`), the port check, the notify queue.
    fn service_io(&mut self, now: Instant, set: &PollSet, t: &Tokens) {
        self.service_process(now, set.ready(t.pidfd).any(), set.ready(t.output).any());
        if set.ready(t.probe).any() || self.probe.deadline().is_some_and(|d| now >= d) {
            if let Some(o) = self.probe.advance(now) {
                self.check.probe = Some(o);
            }
        }
        if set.ready(t.db).any() || self.db.deadline().is_some_and(|d| now >= d) {
            if let Some(r) = self.db.advance(now) {
                self.check.db = Some(r.is_ok());
            }
        }
        self.finish_check(now);
        if set.ready(t.free).any() || self.free.deadline().is_some_and(|d| now >= d) {
            if let Some(r) = self.free.advance(now) {
                self.free_checked(now, r.is_ok());
            }
        }
        if set.ready(t.notify).any()
            || self
                .notify
                .as_ref()
                .and_then(|n| n.deadline())
                .is_some_and(|d| now >= d)
        {
            self.service_notify(now);
        }
    }

    /// Serves the control clients; returns whether a request was answered this pass (the
    /// allocation benchmark, feature alloc-count, counts such passes apart from idle ones).
    fn service_control(&mut self, now: Instant, control: &mut ControlServer) -> bool {
        let mut served = false;
        control.service(now, &mut |req| {
            served = true;
            self.handle(now, req)
        });
        served
    }

    /// Ticks the node, services pair mode's I/O and applies what it decided, then the pending
    /// inputs, mirror mode and the metrics exporter.
    fn tick(&mut self, now: Instant, set: &PollSet, t: &Tokens) {
        self.feed_node(now, node::Input::Tick);
        if let (Some(c), Some(tokens)) = (&mut self.cluster, &t.cluster) {
            let mut acts = Vec::new();
            c.service(now, set, tokens, &mut self.node, &mut acts);
            self.apply(now, acts);
        }
        self.drain_pending(now);
        self.service_mirror(now);
        self.service_exporter(now);
    }

    /// Flushes the log and records the pass's length; returns when the pass ended.
    fn end_pass(&mut self, now: Instant) -> Instant {
        bbwd_platform::logger::flush();
        let end = clock::now();
        self.pace.passes += 1;
        self.pace.pass_max_ms = self
            .pace
            .pass_max_ms
            .max(end.saturating_duration_since(now).as_millis() as u64);
        end
    }

    /// Pets the hardware watchdog, then systemd's, each if its policy allows and it is due.
    fn keep_alive(&mut self, now: Instant, end: Instant) {
        let pass_in_time = self.pet_hardware(now, end);
        let inputs = policy::Inputs {
            due: true,
            pass_in_time,
            node_can_correct: self.node_can_correct,
            self_fence: self.node.self_fenced(),
        };
        if policy::systemd(inputs) == policy::Decision::Pet {
            if let Some(w) = &mut self.sd_watchdog {
                w.pet_if_due(&self.sd, clock::now());
            }
        }
    }

    /// The earliest moment anything needs the loop.
    pub(super) fn next_deadline(&self, now: Instant, control: &ControlServer) -> Option<Instant> {
        let group = (self.leader_exited && self.proc.is_some()).then(|| now + GROUP_POLL);
        [
            self.node.next_deadline(),
            self.probe.deadline(),
            self.db.deadline(),
            self.notify.as_ref().and_then(|n| n.deadline()),
            control.deadline(),
            self.sd_watchdog.as_ref().map(|w| w.next_due()),
            self.hw.as_ref().and_then(|h| h.pacer.next_due()),
            self.lb.as_ref().and_then(|l| l.server.deadline()),
            self.exporter.deadline(),
            self.free.deadline(),
            Some(self.clock_watch.next_read()),
            self.cluster.as_ref().and_then(|c| c.deadline()),
            self.reexec_at,
            group,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Learns of the leader's exit (pidfd) and of the group being gone; drains its output.
    pub(super) fn service_process(&mut self, now: Instant, pid_ready: bool, out_ready: bool) {
        let Some(p) = &mut self.proc else { return };
        let mut oome = false;
        if out_ready {
            let mentions = &mut self.pace.oome_mentions;
            p.drain_output(&mut |line: &[u8]| {
                match bbwd_core::output::classify(line) {
                    bbwd_core::output::Line::Oome => oome = true,
                    bbwd_core::output::Line::Mention => *mentions += 1,
                    bbwd_core::output::Line::Other => {}
                }
                info!(target: "bitbucket", "{}", String::from_utf8_lossy(line).trim_end());
            });
        }
        let exit = if pid_ready {
            p.try_collect_exit()
        } else {
            None
        };
        let gone = (self.leader_exited || exit.is_some()) && !p.group_alive();
        if oome {
            self.feed(now, Input::OomeLine);
        }
        if let Some(kind) = exit {
            self.leader_exited = true;
            self.feed(now, Input::Exited { kind });
        }
        if gone {
            if let Some(p) = self.proc.take() {
                if self.sd.enabled() {
                    let _ = self.sd.remove_fd(&output_fd_name(p.pid()));
                }
            }
            self.leader_exited = false;
            if let Err(e) = process::remove_pidfile(&self.paths.pidfile) {
                error!("{e}");
            }
            self.feed(now, Input::Gone);
        }
    }

    pub(super) fn begin_check(&mut self, now: Instant) {
        self.checks_begun += 1;
        self.check_started = Some(now);
        self.check = CheckSlot {
            active: true,
            probe: None,
            db: None,
        };
        if let Err(outcome) =
            self.probe
                .start(&self.target, now, self.cfg.bitbucket.monitor_timeout)
        {
            self.check.probe = Some(outcome);
        }
        if let Some(db) = &self.cfg.database {
            if let Some(r) = self.db.start(db.resolved, now, db.timeout) {
                self.check.db = Some(r.is_ok());
            }
        }
        self.finish_check(now);
    }

    /// `CheckFree`: a TCP connect to `status_url`'s address. Accepted = something listens there
    /// (a Bitbucket that escaped its process group, or a foreign one); refused or no answer
    /// within `monitor_timeout` = free.
    pub(super) fn begin_free_check(&mut self, now: Instant) {
        self.free_active = true;
        if let Some(r) = self
            .free
            .start(self.target.addr, now, self.cfg.bitbucket.monitor_timeout)
        {
            self.free_checked(now, r.is_ok());
        }
    }

    pub(super) fn free_checked(&mut self, now: Instant, connected: bool) {
        if !std::mem::take(&mut self.free_active) {
            return;
        }
        let occupied = connected.then(|| {
            machine::detail(&format!(
                "something accepts connections on {} (bitbucket.status_url) while no process of ours runs",
                self.target.addr
            ))
        });
        self.push_input(Input::FreeChecked { occupied });
        self.drain_pending(now);
    }

    /// Records how late the loop woke up; a stall is an event.
    pub(super) fn pace_late(&mut self, late: Duration) {
        let ms = late.as_millis() as u64;
        if ms > self.pace.late_max_ms {
            self.pace.late_max_ms = ms;
        }
        if late >= LOOP_STALL {
            self.record(
                EventKind::LoopStall,
                &machine::detail(&format!(
                    "the event loop woke {ms} ms after its deadline (bbwd was stopped or starved)"
                )),
            );
        }
    }

    /// Delivers `Checked` once the probe and (if configured) the database check are done.
    pub(super) fn finish_check(&mut self, now: Instant) {
        if !self.check.active {
            return;
        }
        let db_needed = self.cfg.database.is_some();
        if let Some(probe) = self.check.probe {
            if !db_needed || self.check.db.is_some() {
                let db_up = if db_needed { self.check.db } else { None };
                self.check = CheckSlot::default();
                if let Some(t) = self.check_started.take() {
                    self.exporter.counters.last_check_duration =
                        Some(now.saturating_duration_since(t));
                }
                self.push_input(Input::Checked { probe, db_up });
            }
        }
    }

    pub(super) fn service_notify(&mut self, now: Instant) {
        let Some(q) = &mut self.notify else { return };
        if let Some(outcome) = q.service(now) {
            match outcome {
                Outcome::Success => {}
                Outcome::Failed(code) => warn!("notify.command exited with status {code}"),
                Outcome::Signaled(sig) => warn!("notify.command killed by signal {sig}"),
                Outcome::TimedOut => warn!("notify.command exceeded notify.timeout and was killed"),
                Outcome::SpawnFailed(e) => warn!("notify.command: {e}"),
            }
        }
    }

    /// At exit: lets queued notifications (`shutdown`, `stopped`) run, for at most
    /// `NOTIFY_FLUSH_LIMIT`, so the last events reach the operator too.
    pub(super) fn flush_notify(&mut self) {
        let until = clock::now() + NOTIFY_FLUSH_LIMIT;
        let mut set = PollSet::new();
        loop {
            let now = clock::now();
            let Some(q) = &mut self.notify else { return };
            if q.is_empty() || now >= until {
                if !q.is_empty() {
                    warn!("exiting with {} notification(s) not delivered", q.len());
                }
                return;
            }
            set.clear();
            let _ = q.fd().and_then(|fd| set.add(fd, Want::Read));
            let wake = q.deadline().map_or(until, |d| d.min(until));
            let _ = set.wait(Some(wake.saturating_duration_since(now)));
            self.service_notify(clock::now());
        }
    }
}
