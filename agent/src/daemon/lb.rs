//! Mirror-farm node in the loop: the HAProxy agent-check server and what it is told.

#[allow(unused_imports)]
use super::*;

/// Text cut to the notify job's fixed capacity.
pub(super) fn text256(s: &str) -> heapless::String<256> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Mirror-farm node: the agent-check server and the reply it gives (issue 5).
pub(super) struct LbAgent {
    pub(super) server: AgentServer,
    /// The reply set on the server, without its `\n`.
    line: ReplyLine,
    /// That reply in one word (`up`, `drain`, `down`, `maint`), for the metrics.
    pub(super) word: &'static str,
}

type ReplyLine = heapless::String<{ agentcheck::MAX_REPLY }>;

impl LbAgent {
    pub(super) fn new(server: AgentServer) -> LbAgent {
        let mut line = ReplyLine::new();
        let _ = line.push_str(server.reply());
        // The server starts with `down #starting`.
        LbAgent {
            server,
            line,
            word: "down",
        }
    }
}

impl Core {
    /// Once per pass, after the machine's step: the clock reading when due, then the
    /// load balancer's reply from the node's state, then the agent-check connections.
    pub(super) fn service_mirror(&mut self, now: Instant) {
        if self.clock_watch.due(now) {
            let reading = match clock::kernel_sync() {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("cannot read the kernel clock state (adjtimex): {e}");
                    None
                }
            };
            let change = self.clock_watch.record(now, reading);
            if let (Some(change), Mode::Mirror) = (change, self.cfg.mode()) {
                let (kind, detail) = match change {
                    ClockChange::Unsynchronized(c) => (
                        EventKind::ClockUnsynced,
                        format!(
                            "the kernel clock is not synchronised (max error {} ms): mirrors need \
                             their clocks in sync; start chrony, ntpd or systemd-timesyncd",
                            c.max_error_ms()
                        ),
                    ),
                    ClockChange::Synchronized(c) => (
                        EventKind::ClockSynced,
                        format!(
                            "the kernel clock is synchronised (max error {} ms)",
                            c.max_error_ms()
                        ),
                    ),
                };
                self.record(kind, &machine::detail(&detail));
            }
        }
        if self.lb.is_none() {
            return;
        }
        let (line, word) = self.lb_reply();
        let Some(lb) = &mut self.lb else { return };
        if line != lb.line {
            match lb.server.set_reply(&line) {
                Ok(()) => {
                    info!("load balancer: the HAProxy agent check now answers `{line}`");
                    lb.line = line;
                    lb.word = word;
                }
                Err(e) => error!("internal: {e}"),
            }
        }
        lb.server.service(now);
    }

    /// What HAProxy's agent check is to be told now: the line and its one-word form.
    pub(super) fn lb_reply(&self) -> (ReplyLine, &'static str) {
        let v = self.node.machine().view();
        let reason = v.maintenance.as_deref().unwrap_or("");
        let verdict = mirror::decide(&mirror::Inputs {
            state: v.state,
            process: v.pid.is_some(),
            last_probe: v.last_probe,
            consecutive_failures: v.consecutive_failures,
            failed: v.failed,
            maintenance: v.maintenance.as_deref().map(|r| (r, self.maintenance_lb)),
        });
        let mut line = ReplyLine::new();
        verdict.write_line(reason, &mut line);
        (line, verdict.word())
    }
}
