//! The status report (`bbwd status --json`): the node's view, the cluster's and the watchdog's,
//! assembled for the operator. Reads only.

#[allow(unused_imports)]
use super::*;

impl Core {
    /// `single`, `pair` or `mirror` (SPEC "Status JSON" `mode`).
    pub(super) fn mode_str(&self) -> &'static str {
        match self.cfg.mode() {
            Mode::Single => "single",
            Mode::Pair => "pair",
            Mode::Mirror => "mirror",
        }
    }

    /// SPEC's `state` and `role` of the node (the status report's and the metrics').
    pub(super) fn state_and_role(&self) -> (&'static str, &'static str) {
        let role = self.node.role();
        let state = match role {
            Some(crate::pair::Role::Fencing) => "fencing",
            Some(crate::pair::Role::TakingOver) => "taking_over",
            Some(crate::pair::Role::Releasing) => "releasing",
            _ => self.node.machine().view().state.as_str(),
        };
        let role = match role {
            None => "none",
            Some(crate::pair::Role::Active | crate::pair::Role::Releasing) => "active",
            Some(_) => "standby",
        };
        (state, role)
    }

    /// The status report.
    pub(super) fn status(&mut self) -> status::Status {
        let time_left = self.hw.as_mut().and_then(|h| h.dog.time_left());
        let cluster_status = self
            .cluster
            .as_ref()
            .map(|c| c.status(clock::now(), &self.node));
        let v = self.node.machine().view();
        status::Status {
            node: self.cfg.node.name.clone(),
            mode: self.mode_str().into(),
            role: self.state_and_role().1.into(),
            state: self.state_and_role().0.into(),
            daemon: "up".into(),
            bitbucket: bitbucket_report(&v),
            restarts: v.restarts,
            peer: cluster_status.as_ref().map(|c| c.0.clone()),
            vip: cluster_status.as_ref().map(|c| c.1.clone()),
            fencing: cluster_status.map(|c| c.2),
            watchdog: self.watchdog_report(v.petting, time_left),
            database: self.cfg.database.as_ref().map(|d| status::Database {
                address: d.address.clone(),
                reachable: match v.db {
                    machine::Db::Up => Some(true),
                    machine::Db::Down => Some(false),
                    _ => None,
                },
            }),
            maintenance: v.maintenance.as_ref().map(|r| status::Maintenance {
                reason: r.to_string(),
                since: self.maintenance_since.clone(),
            }),
            failed: v.failed.map(|f| f.as_str().to_string()),
            version: env!("CARGO_PKG_VERSION").into(),
            events: self.events_report(),
            load_balancer: self.lb_report(),
            clock: self.clock_watch.last().map(mirror::clock_report),
            daemon_error: None,
            loop_stats: Some(self.loop_report()),
            daemon_run: Some(status::DaemonRun {
                pid: std::process::id(),
                started_at_ms: self.started_at_ms,
                reexecuted: bbwd_platform::reexec::reexecuted(),
            }),
        }
    }

    /// The report's `watchdog`: the device, systemd's interval and the hardware watchdog's
    /// figures (`time_left` as just read from it).
    fn watchdog_report(&self, petting: bool, time_left: Option<Duration>) -> status::Watchdog {
        let device = match &self.cfg.watchdog.device {
            WatchdogDevice::None => "none".to_string(),
            WatchdogDevice::Device(p) => p.display().to_string(),
            WatchdogDevice::Ipmi => "ipmi".to_string(),
        };
        status::Watchdog {
            device,
            armed: self.hw.is_some(),
            petting,
            systemd_interval_ms: self
                .sd_watchdog
                .as_ref()
                .map(|w| w.interval().as_millis() as u64),
            timeout_ms: self
                .hw
                .as_ref()
                .map(|h| h.pacer.timeout().as_millis() as u64),
            time_left_ms: time_left.map(|t| t.as_millis() as u64),
            last_reset_by_watchdog: self
                .hw
                .as_ref()
                .and_then(|h| h.dog.last_reset_by_watchdog()),
            realtime: self.realtime,
            pets: self.hw.as_ref().map_or(0, |h| h.pacer.pets()),
            pet_latency_us_last: self
                .hw
                .as_ref()
                .and_then(|h| h.latency_last)
                .map(|d| d.as_micros() as u64),
            pet_latency_us_max: self
                .hw
                .as_ref()
                .and_then(|h| h.latency_max)
                .map(|d| d.as_micros() as u64),
        }
    }

    /// The report's `events`: the ring, oldest first.
    fn events_report(&self) -> Vec<status::Event> {
        self.ring
            .iter()
            .map(|r| status::Event {
                at: clock::rfc3339(r.wall_ms).to_string(),
                kind: r.kind.into(),
                detail: r.detail.to_string(),
            })
            .collect()
    }

    /// The report's `load_balancer` (mirror mode): the agent-check address and the line it
    /// answers now.
    fn lb_report(&self) -> Option<status::LoadBalancer> {
        self.lb.as_ref().map(|l| {
            // Decided afresh: the server takes the same line at the end of this pass, before it
            // accepts another connection.
            let (line, word) = self.lb_reply();
            status::LoadBalancer {
                address: l.server.local_addr().to_string(),
                reply: line.to_string(),
                state: word.to_string(),
            }
        })
    }

    /// The report's `loop_stats`: the loop's pace and the logger's figures.
    fn loop_report(&self) -> status::LoopStats {
        let log = bbwd_platform::logger::stats();
        status::LoopStats {
            log_dropped_lines: log.dropped_lines,
            log_dropped_bytes: log.dropped_bytes,
            log_written_bytes: log.written_bytes,
            ..self.pace.clone()
        }
    }
}

/// The report's `bitbucket`: what the supervisor knows of it and its last `/status` answer.
fn bitbucket_report(v: &machine::View) -> status::Bitbucket {
    let (state, http_status) = match v.last_probe {
        Some(ProbeOutcome::Reply { http_status, state }) => {
            (state.map(|s| s.as_str().to_string()), Some(http_status))
        }
        _ => (None, None),
    };
    status::Bitbucket {
        state,
        http_status,
        pid: v.pid,
        consecutive_failures: v.consecutive_failures,
        last_check: v
            .last_probe
            .as_ref()
            .map(|p| machine::ProbeText(p).to_string()),
    }
}
