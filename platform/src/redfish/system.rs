//! The ComputerSystem bbwd fences: which one (`fencing.system`, or the only member of
//! `Systems`), its `PowerState`, and its `ComputerSystem.Reset` action.
//!
//! ```text
//!  PowerStatus  = GET system            -> PowerState "Off" = off; On, PoweringOn, PoweringOff, Paused = on
//!  Power(Off)   = POST Reset {ForceOff} (200/202/204), On = "On", Cycle = "PowerCycle", Reset = "ForceRestart"
//! ```
//!
//! Owns: finding the system and its reset target when a connection opens, and the operations on
//! it. Must not: pick one of several systems itself (two or more without `fencing.system` is
//! refused), poll until `Off` (the caller's fence procedure does), or touch the BMC watchdog
//! (IPMI only).

use std::time::Instant;

use super::http::{http_failure, local_path};
use super::session::{check_auth, Conn};
use super::{Ctx, Failure, Op, Power, PowerAction, Reply};

impl Conn {
    /// The only ComputerSystem the service lists (`Systems` of the service root `root`).
    pub(super) fn only_system(
        &mut self,
        ctx: &Ctx<'_>,
        root: &serde_json::Value,
        deadline: Instant,
    ) -> Result<String, Failure> {
        let systems = root["Systems"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/Systems")
            .to_string();
        let r = self.authed(ctx, "GET", &systems, None, deadline)?;
        check_auth(&r)?;
        if r.status != 200 {
            return Err(http_failure(&format!("GET {systems}"), &r));
        }
        let v = r.json(&format!("GET {systems}"))?;
        let members: Vec<String> = v["Members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["@odata.id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        match members.as_slice() {
            [one] => local_path(ctx.service, one),
            [] => Err(Failure::Unsupported(format!(
                "{systems} lists no ComputerSystem: nothing to fence"
            ))),
            many => Err(Failure::Unsupported(format!(
                "{systems} lists {} systems ({}): set fencing.system to the one to fence",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// Reads `system` (it must have a `PowerState`) and returns its `ComputerSystem.Reset`
    /// target (the conventional one when it names none).
    pub(super) fn reset_target_of(
        &mut self,
        ctx: &Ctx<'_>,
        system: &str,
        deadline: Instant,
    ) -> Result<String, Failure> {
        let r = self.authed(ctx, "GET", system, None, deadline)?;
        check_auth(&r)?;
        if r.status == 404 {
            return Err(Failure::Unsupported(format!(
                "GET {system}: HTTP 404: no such system on this service (fencing.system)"
            )));
        }
        if r.status != 200 {
            return Err(http_failure(&format!("GET {system}"), &r));
        }
        let v = r.json(&format!("GET {system}"))?;
        power_state(&v, system)?;
        let target = v["Actions"]["#ComputerSystem.Reset"]["target"]
            .as_str()
            .map(|t| local_path(ctx.service, t))
            .transpose()?
            .unwrap_or_else(|| {
                format!(
                    "{}/Actions/ComputerSystem.Reset",
                    system.trim_end_matches('/')
                )
            });
        Ok(target)
    }

    /// Runs `op` on the system found at [`Conn::open`].
    pub(super) fn run(
        &mut self,
        ctx: &Ctx<'_>,
        op: Op,
        deadline: Instant,
    ) -> Result<Reply, Failure> {
        match op {
            Op::PowerStatus => {
                let system = self.system.clone();
                let r = self.authed(ctx, "GET", &system, None, deadline)?;
                check_auth(&r)?;
                if r.status != 200 {
                    return Err(http_failure(&format!("GET {system}"), &r));
                }
                let v = r.json(&format!("GET {system}"))?;
                Ok(Reply::Power(power_state(&v, &system)?))
            }
            Op::Power(action) => {
                let reset_type = match action {
                    PowerAction::Off => "ForceOff",
                    PowerAction::On => "On",
                    PowerAction::Cycle => "PowerCycle",
                    PowerAction::Reset => "ForceRestart",
                };
                let body = format!("{{\"ResetType\":\"{reset_type}\"}}");
                let target = self.reset_target.clone();
                let r = self.authed(ctx, "POST", &target, Some(body.as_bytes()), deadline)?;
                check_auth(&r)?;
                match r.status {
                    200 | 202 | 204 => Ok(Reply::Done),
                    _ => Err(http_failure(&format!("POST {target}"), &r)),
                }
            }
            Op::SetWatchdog { .. } | Op::ResetWatchdog | Op::GetWatchdog | Op::DisarmWatchdog => {
                Err(Failure::Unsupported(
                    "the BMC watchdog is IPMI only; Redfish is for fencing".into(),
                ))
            }
        }
    }
}

/// `PowerState` of a ComputerSystem. Only `Off` is off; the transitional states and `Paused`
/// count as on (the node may still run); anything else, or none, is a failure.
fn power_state(v: &serde_json::Value, system: &str) -> Result<Power, Failure> {
    match v.get("PowerState") {
        Some(serde_json::Value::String(s)) => match s.as_str() {
            "Off" => Ok(Power::Off),
            "On" | "PoweringOn" | "PoweringOff" | "Paused" => Ok(Power::On),
            other => Err(Failure::Protocol(format!(
                "GET {system}: unexpected PowerState \"{other}\" (expected On, Off, PoweringOn, PoweringOff or Paused)"
            ))),
        },
        Some(serde_json::Value::Null) | None => Err(Failure::Protocol(format!(
            "GET {system}: no PowerState in the reply (is it a ComputerSystem? fencing.system)"
        ))),
        Some(other) => Err(Failure::Protocol(format!(
            "GET {system}: PowerState is {other}, not a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states_map_only_off_to_off() {
        let s = |v: serde_json::Value| power_state(&v, "/redfish/v1/Systems/1");
        assert_eq!(s(serde_json::json!({"PowerState": "Off"})), Ok(Power::Off));
        for on in ["On", "PoweringOn", "PoweringOff", "Paused"] {
            assert_eq!(s(serde_json::json!({ "PowerState": on })), Ok(Power::On));
        }
        let missing = s(serde_json::json!({"Id": "1"})).unwrap_err().to_string();
        assert!(missing.contains("no PowerState"), "{missing}");
        let odd = s(serde_json::json!({"PowerState": "Sleeping"}))
            .unwrap_err()
            .to_string();
        assert!(odd.contains("unexpected PowerState \"Sleeping\""), "{odd}");
        assert!(s(serde_json::json!({"PowerState": 1})).is_err());
    }
}
