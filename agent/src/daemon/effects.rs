//! Carrying out the node's actions: supervisor actions here (spawn, signal, checks, events,
//! petting), pair actions through the cluster (`crate::cluster`); the inputs they produce fed
//! back until none is left; recording events (ring, log, notify); persisting what must survive
//! a restart; re-executing in place.
//!
//! Must not decide anything: every "what now?" is the node's.

#[allow(unused_imports)]
use super::*;

impl Core {
    /// Runs the binary now installed in place of this process (same PID): Bitbucket keeps
    /// running and is re-adopted from the pid file, the VIP and the storage record stay, and the
    /// new run resumes the role from them. Returns only on failure.
    pub(super) fn reexec(&mut self) -> std::io::Error {
        let binary = match bbwd_platform::reexec::binary() {
            Ok(b) => b,
            Err(e) => return e,
        };
        let v = self.node.machine().view();
        info!(
            "re-executing {} (was {}): Bitbucket pid {:?}, role {}, state {}",
            binary.display(),
            env!("CARGO_PKG_VERSION"),
            v.pid,
            self.node.role().map_or("none", |r| r.as_str()),
            v.state.as_str()
        );
        self.sd.reloading();
        let output = self
            .proc
            .as_ref()
            .and_then(|p| p.output_fd().map(|fd| (fd, p.pid())));
        bbwd_platform::reexec::exec(&binary, output)
    }

    /// Feeds a supervisor input and everything that follows from it.
    pub(super) fn feed(&mut self, now: Instant, input: Input) {
        self.feed_node(now, node::Input::Sup(input));
    }

    /// Feeds a node input and everything that follows from it.
    pub(super) fn feed_node(&mut self, now: Instant, input: node::Input) {
        let acts = self.node.step(now, input);
        self.apply(now, acts);
        self.drain_pending(now);
    }

    /// Runs the inputs that carrying out actions produced (the process side's, the cluster's)
    /// until none is left.
    pub(super) fn drain_pending(&mut self, now: Instant) {
        // Bounded: each round's actions may produce inputs, but a loop must not spin here.
        for _ in 0..256 {
            let input = match self.pending.pop_front() {
                Some(i) => i,
                None => match self.cluster.as_mut().and_then(|c| c.next_input()) {
                    Some(i) => i,
                    None => break,
                },
            };
            // A failed check is the supervisor's verdict: its run of failures grows by one.
            let failures = matches!(input, node::Input::Sup(Input::Checked { .. }))
                .then(|| self.node.machine().view().consecutive_failures);
            let acts = self.node.step(now, input);
            if failures.is_some_and(|n| self.node.machine().view().consecutive_failures > n) {
                self.exporter.counters.check_failures += 1;
            }
            self.apply(now, acts);
        }
        while let Some((kind, detail, problem)) = self.cluster.as_mut().and_then(|c| c.next_event())
        {
            let severity = if problem {
                Severity::Warning
            } else {
                Severity::Info
            };
            self.record_named(kind, &detail, severity);
        }
        self.after_change();
    }

    pub(super) fn push_input(&mut self, input: Input) {
        if self.pending.push_back(node::Input::Sup(input)).is_err() {
            error!("internal: input queue full; an input was lost");
        }
    }

    /// Carries out the node's actions: the supervisor's here, the pair's by the cluster.
    pub(super) fn apply(&mut self, now: Instant, acts: impl IntoIterator<Item = node::Action>) {
        for a in acts {
            match a {
                node::Action::Sup(Action::Spawn) => self.spawn(),
                node::Action::Sup(Action::Signal(sig)) => {
                    let sig = match sig {
                        machine::Sig::Term => process::GroupSignal::Term,
                        machine::Sig::Kill => process::GroupSignal::Kill,
                    };
                    if let Some(p) = &self.proc {
                        if self.leader_exited {
                            // Say what is signalled, and why (the machine's events say when).
                            let pgid = p.record().pgid;
                            let members = process::group_members(pgid);
                            if !members.is_empty() {
                                warn!(
                                    "Bitbucket's leader pid {} exited; {:?} to what is left of its process group {pgid}: pids {members:?}",
                                    p.pid(),
                                    sig
                                );
                            }
                        }
                        if let Err(e) = p.signal_group(sig) {
                            error!("{e}");
                        }
                    }
                }
                node::Action::Sup(Action::Check) => self.begin_check(now),
                node::Action::Sup(Action::CheckFree) => self.begin_free_check(now),
                node::Action::Sup(Action::ResumePetting) => {
                    self.node_can_correct = true;
                    info!("the unkillable process group is gone and the operator reset: keep-alives resume");
                }
                node::Action::Sup(Action::Event(kind, detail)) => self.record(kind, &detail),
                node::Action::Sup(Action::StopPetting) => {
                    self.node_can_correct = false;
                    error!(
                        "the node cannot correct itself: the hardware watchdog is no longer petted"
                    );
                }
                // Settled inside the node.
                node::Action::Sup(Action::Exit | Action::Report(_)) => {}
                node::Action::Exit => self.exit = true,
                node::Action::Event(kind, detail) => {
                    self.record_named(kind.as_str(), &detail, kind.severity());
                    if let Some(c) = &mut self.cluster {
                        c.apply(now, &node::Action::Event(kind, detail), &mut self.node);
                    }
                }
                other => {
                    if let Some(c) = &mut self.cluster {
                        c.apply(now, &other, &mut self.node);
                    }
                }
            }
        }
    }

    pub(super) fn spawn(&mut self) {
        match Supervised::spawn(&self.spec) {
            Ok(p) => {
                let pid = p.pid();
                if let Err(e) = process::write_pidfile(&self.paths.pidfile, &p.record()) {
                    // Re-adoption after a bbwd restart will not work; supervision does.
                    error!("{e}");
                }
                if self.sd.enabled() {
                    if let Some(fd) = p.output_fd() {
                        if let Err(e) = self.sd.store_fd(&output_fd_name(pid), fd) {
                            warn!("cannot keep Bitbucket's output pipe in systemd's fd store: {e}");
                        }
                    }
                }
                self.proc = Some(p);
                self.leader_exited = false;
                self.push_input(Input::Started { pid });
            }
            Err(e) => self.push_input(Input::SpawnFailed {
                detail: machine::detail(&e.to_string()),
            }),
        }
    }

    /// Records an event: ring, log, event log, `notify.command`.
    pub(super) fn record(&mut self, kind: EventKind, detail: &Detail) {
        self.record_named(kind.as_str(), detail, kind.severity());
    }

    /// Records an event by name (the supervisor's kinds and the pair's).
    pub(super) fn record_named(&mut self, kind: &'static str, detail: &Detail, severity: Severity) {
        let problem = severity >= Severity::Warning;
        self.events_recorded += 1;
        self.exporter.counters.event(kind, detail);
        let wall_ms = clock::wall_ms();
        if problem {
            warn!("{kind}: {detail}");
        } else {
            info!("{kind}: {detail}");
        }
        self.ring.push(Record {
            wall_ms,
            kind,
            detail: detail.clone(),
        });
        if let Some(l) = &mut self.event_log {
            let line = serde_json::json!({
                "at": clock::rfc3339(wall_ms).as_str(),
                "node": self.cfg.node.name,
                "kind": kind,
                "severity": severity.as_str(),
                "detail": detail.as_str(),
            });
            if let Err(e) = l.append(line.to_string().as_bytes()) {
                warn!("{e}");
            }
        }
        if let Some(q) = &mut self.notify {
            let mut job = Job::default();
            let _ = job.env.push(("BBWD_EVENT", text256(kind)));
            let _ = job.env.push(("BBWD_NODE", text256(&self.cfg.node.name)));
            let _ = job.env.push(("BBWD_DETAIL", text256(detail)));
            let _ = job.env.push(("BBWD_SEVERITY", text256(severity.as_str())));
            if !q.submit(job, clock::now()) {
                warn!("notify.command is falling behind: an older notification was dropped");
            }
        }
    }

    /// After a step: persist what must survive a restart, tell systemd about state changes.
    pub(super) fn after_change(&mut self) {
        let view = self.node.machine().view();
        let failed = view.failed.filter(|r| r.persistent());
        self.node_can_correct = view.petting;
        if failed != self.persisted_failed {
            let r = match failed {
                Some(f) => fs::write_atomic(
                    &self.paths.failed,
                    format!("{}\n", f.as_str()).as_bytes(),
                    0o640,
                ),
                None => fs::remove_optional(&self.paths.failed),
            };
            // Tried again after the next step until it succeeds.
            if self.persisted(r) {
                self.persisted_failed = failed;
            }
        }
        if view.maintenance.is_some() != self.persisted_maintenance {
            let r = match &view.maintenance {
                Some(reason) => {
                    self.maintenance_since = clock::rfc3339(clock::wall_ms()).to_string();
                    let m = MaintenanceFile {
                        reason: reason.to_string(),
                        since: self.maintenance_since.clone(),
                        lb: self.maintenance_lb,
                    };
                    let bytes = serde_json::to_vec(&m).unwrap_or_default();
                    fs::write_atomic(&self.paths.maintenance, &bytes, 0o640)
                }
                None => fs::remove_optional(&self.paths.maintenance),
            };
            if self.persisted(r) {
                self.persisted_maintenance = view.maintenance.is_some();
            }
        }
        if self.last_state != Some(view.state) {
            self.last_state = Some(view.state);
            let text = match view.pid {
                Some(pid) => format!("{}: Bitbucket pid {pid}", view.state.as_str()),
                None => format!("{}: Bitbucket not running", view.state.as_str()),
            };
            self.sd.status(&text);
            info!("state {}", view.state.as_str());
        }
    }

    /// Notes the outcome of persisting state; logs a failure once until it changes.
    pub(super) fn persisted(&mut self, r: Result<(), fs::Error>) -> bool {
        match r {
            Ok(()) => {
                if self.persist_error.take().is_some() {
                    info!("state is saved in state_dir again");
                }
                true
            }
            Err(e) => {
                let text = e.to_string();
                if self.persist_error.as_deref() != Some(&text) {
                    error!("cannot save state: {text}");
                    self.persist_error = Some(text);
                }
                false
            }
        }
    }
}
