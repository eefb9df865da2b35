//! Answering control requests (`bbwd status`, `maintenance`, `reset`, `switchover`,
//! `confirm-peer-down`, `reexec`): parse, feed the node, reply with the outcome or the reason it
//! was refused. A mutation is answered "done" only once it is persisted.

#[allow(unused_imports)]
use super::*;

use serde_json::Value;

impl Core {
    /// Answers one control request.
    pub(super) fn handle(&mut self, now: Instant, req: Request<'_>) -> Vec<u8> {
        let Request::Line(line, peer) = req;
        let parsed: Result<ControlRequest, _> = serde_json::from_slice(line);
        let reply = match parsed {
            Err(e) => serde_json::json!({ "error": format!("malformed request: {e}") }),
            Ok(ControlRequest::Status) => {
                return serde_json::to_vec(&self.status()).unwrap_or_default()
            }
            Ok(_) if peer.read_only => {
                warn!(
                    "control request from uid {} (pid {}) refused: node.status_group grants status only",
                    peer.uid, peer.pid
                );
                serde_json::json!({ "error": "permission denied: node.status_group grants `bbwd status` only; every other command is root's" })
            }
            Ok(ControlRequest::Maintenance { lb: Some(_), .. }) if self.lb.is_none() => {
                serde_json::json!({ "error": "--drain/--maint apply to a mirror-farm node ([load_balancer]); this node has none" })
            }
            Ok(ControlRequest::Maintenance { on, reason, lb }) => {
                self.maintenance_requested(now, peer, on, &reason, lb)
            }
            Ok(req @ (ControlRequest::Switchover | ControlRequest::ConfirmPeerDown)) => {
                self.pair_requested(now, peer, req)
            }
            Ok(ControlRequest::Reexec) => self.reexec_requested(now, peer),
            Ok(ControlRequest::Reset) => self.reset_requested(now, peer),
        };
        reply.to_string().into_bytes()
    }

    /// `bbwd maintenance on|off`: feeds the node, then replies "done" only if it was persisted.
    fn maintenance_requested(
        &mut self,
        now: Instant,
        peer: control::Peer,
        on: bool,
        reason: &str,
        lb: Option<MaintMode>,
    ) -> Value {
        // Without --drain/--maint: drain, or the mode of a maintenance already on. A new mode
        // for a maintenance already on is persisted too.
        let already = self.persisted_maintenance;
        let mode = lb.unwrap_or(if already {
            self.maintenance_lb
        } else {
            MaintMode::Drain
        });
        let relabel = on && already && mode != self.maintenance_lb;
        if on {
            self.maintenance_lb = mode;
        }
        if relabel {
            self.persisted_maintenance = false;
        }
        info!(
            "maintenance {} requested by uid {} (pid {})",
            if on { "on" } else { "off" },
            peer.uid,
            peer.pid
        );
        // An empty reason keeps the reason of a maintenance already on (the machine's).
        self.feed(
            now,
            Input::Maintenance {
                on,
                reason: machine::detail(reason),
            },
        );
        if self.persisted_maintenance != on {
            // Not saved: a restart of bbwd would not know. Never a false "done".
            let why = self
                .persist_error
                .clone()
                .unwrap_or_else(|| "unknown error".into());
            serde_json::json!({ "error": format!(
                "maintenance {} is in effect in the running daemon but was NOT saved \
                 ({why}); a restart of bbwd would {} Bitbucket",
                if on { "on" } else { "off" },
                if on { "start" } else { "not start" }
            ) })
        } else {
            serde_json::json!({ "ok": true, "state": self.node.machine().state().as_str() })
        }
    }

    /// `bbwd switchover` / `confirm-peer-down` (pair mode): steps the node and replies with the
    /// new role, or why the node refused or had nothing to do.
    fn pair_requested(&mut self, now: Instant, peer: control::Peer, req: ControlRequest) -> Value {
        if self.cluster.is_none() {
            return serde_json::json!({ "error": "not in pair mode: no [cluster] configured" });
        }
        let (input, what) = match req {
            ControlRequest::Switchover => (node::Input::Switchover, "switchover"),
            _ => (node::Input::ConfirmPeerDown, "confirm-peer-down"),
        };
        info!("{what} requested by uid {} (pid {})", peer.uid, peer.pid);
        let before = self.node.role();
        let acts = self.node.step(now, input);
        // The node says why it refused, in this step's events.
        let refused = acts.iter().find_map(|a| match a {
            node::Action::Event(crate::pair::Kind::SwitchoverRefused, d) => Some(d.to_string()),
            _ => None,
        });
        self.apply(now, acts);
        self.drain_pending(now);
        let after = self.node.role();
        let after_str = after.map_or("none", |r| r.as_str());
        match refused {
            Some(why) => serde_json::json!({ "error": format!("{what} refused: {why}") }),
            None if before == after => serde_json::json!({ "error": format!(
                "{what} refused: nothing to do as {}",
                before.map_or("none", |r| r.as_str())
            ) }),
            None => serde_json::json!({ "ok": true, "state": after_str }),
        }
    }

    /// `bbwd reexec`: the loop ends shortly after this reply, and the installed binary runs.
    fn reexec_requested(&mut self, now: Instant, peer: control::Peer) -> Value {
        info!(
            "re-exec requested by uid {} (pid {}): Bitbucket, the VIP and the role are kept",
            peer.uid, peer.pid
        );
        // The reply goes out in this pass; the loop ends a moment later.
        self.reexec_at = Some(now + REEXEC_GRACE);
        serde_json::json!({ "ok": true, "state": self.node.machine().state().as_str() })
    }

    /// `bbwd reset`: leaves `failed` unless the machine says why it may not.
    fn reset_requested(&mut self, now: Instant, peer: control::Peer) -> Value {
        use machine::ResetRefused;
        let refused = self.node.machine().reset_refused();
        if self.node.machine().state() != State::Failed || refused == Some(ResetRefused::NotFailed)
        {
            serde_json::json!({ "error": format!("nothing to reset: state is {}", self.node.machine().state().as_str()) })
        } else if refused == Some(ResetRefused::WatchdogResets) {
            serde_json::json!({ "error": "Bitbucket survived SIGKILL: the node must be reset (the watchdog will do it)" })
        } else if refused == Some(ResetRefused::StillThere) {
            serde_json::json!({ "error": "Bitbucket's process group survived SIGKILL and is still there; no watchdog will reset this node ([watchdog] device = \"none\"): end it (or reboot), then reset" })
        } else {
            info!("reset requested by uid {} (pid {})", peer.uid, peer.pid);
            self.feed(now, Input::Reset);
            serde_json::json!({ "ok": true, "state": self.node.machine().state().as_str() })
        }
    }
}
