//! The peer's fence device, whatever it speaks: IPMI over RMCP+ ([`crate::ipmi`]) or Redfish
//! over HTTPS ([`crate::redfish`]), behind one interface with one vocabulary (the operations,
//! replies and failures of `ipmi`).
//!
//! Owns nothing but the dispatch: each variant is the client of its module, unchanged. Must
//! not: add behaviour of its own (a fence procedure that works with one device works with the
//! other because both answer the same operations the same way: power status, power off/on,
//! each with a deadline, on a worker thread, completion signalled on [`FenceClient::fd`]).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::ipmi::{self, Error, Health, IpmiClient, Op, Reply, Settings, SubmitError};
use crate::redfish::{self, RedfishClient};

/// Where the fence device is and how to reach it.
#[derive(Debug, Clone)]
pub enum Target {
    Ipmi(ipmi::Target),
    Redfish(redfish::Service),
}

/// A finished operation (either device).
#[derive(Debug, Clone)]
pub struct Done {
    pub op: Op,
    pub result: Result<Reply, Error>,
    /// How long the conversation took (the worker's view).
    pub elapsed: Duration,
}

/// One fence device's client.
pub enum FenceClient {
    Ipmi(IpmiClient),
    Redfish(RedfishClient),
}

impl FenceClient {
    /// Starts the device's worker thread.
    pub fn start(target: Target, settings: Settings) -> Result<FenceClient, Error> {
        Ok(match target {
            Target::Ipmi(t) => FenceClient::Ipmi(IpmiClient::start(t, settings)?),
            Target::Redfish(s) => FenceClient::Redfish(RedfishClient::start(s, settings)?),
        })
    }

    /// `BMC host:port` or `Redfish https://host:port`.
    pub fn name(&self) -> &str {
        match self {
            FenceClient::Ipmi(c) => c.name(),
            FenceClient::Redfish(c) => c.name(),
        }
    }

    /// A configuration the operator must know is weak (an unverified TLS certificate).
    pub fn warning(&self) -> Option<&'static str> {
        match self {
            FenceClient::Ipmi(_) => None,
            FenceClient::Redfish(c) => c.warning(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            FenceClient::Ipmi(c) => c.fd(),
            FenceClient::Redfish(c) => c.fd(),
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self {
            FenceClient::Ipmi(c) => c.deadline(),
            FenceClient::Redfish(c) => c.deadline(),
        }
    }

    pub fn busy(&self) -> bool {
        match self {
            FenceClient::Ipmi(c) => c.busy(),
            FenceClient::Redfish(c) => c.busy(),
        }
    }

    pub fn health(&self) -> Health {
        match self {
            FenceClient::Ipmi(c) => c.health(),
            FenceClient::Redfish(c) => c.health(),
        }
    }

    pub fn submit(&mut self, op: Op, now: Instant, timeout: Duration) -> Result<(), SubmitError> {
        match self {
            FenceClient::Ipmi(c) => c.submit(op, now, timeout).map(|_| ()),
            FenceClient::Redfish(c) => c.submit(op, now, timeout).map(|_| ()),
        }
    }

    pub fn try_result(&mut self, now: Instant) -> Option<Done> {
        let done = match self {
            FenceClient::Ipmi(c) => c.try_result(now),
            FenceClient::Redfish(c) => c.try_result(now),
        };
        done.map(|d| Done {
            op: d.op,
            result: d.result,
            elapsed: d.elapsed,
        })
    }

    /// Runs `op` and waits (the CLI and tests; never the daemon's loop).
    pub fn call(&mut self, op: Op, timeout: Duration) -> Result<Reply, Error> {
        match self {
            FenceClient::Ipmi(c) => c.call(op, timeout),
            FenceClient::Redfish(c) => c.call(op, timeout),
        }
    }

    pub fn close(self, wait: Duration) {
        match self {
            FenceClient::Ipmi(c) => c.close(wait),
            FenceClient::Redfish(c) => c.close(wait),
        }
    }
}

/// The peer's fence devices in the order they are tried (Pacemaker's fencing levels): one
/// client each, behind the interface of one device.
///
/// # Theory of operation
/// A power-off always starts at the first device; if a device answers it with a failure
/// (unreachable, bad credentials, a timeout, an HTTP error...) and time is left, the same
/// operation goes to the next device, within what is left of the same deadline. The device that
/// carried out an operation becomes the current one: the power readings that confirm an off
/// come from the device that sent it, and so do the keep-alive readings until the next off.
/// Each device gets an equal share of the time left, with the devices after it, so that a
/// silent one leaves the next its part.
/// Only failures move on: a device that acknowledges the off but never reports it done keeps
/// the fence (the caller's procedure fails at its timeout; the next attempt starts again at
/// the first device).
///
/// # Invariants
/// * At most one operation in flight, on exactly one device.
/// * With one device this is that device's client, unchanged.
pub struct FenceDevices {
    devices: Vec<FenceClient>,
    /// `BMC a, then Redfish b`.
    name: String,
    /// The device operations go to (the last one that answered).
    current: usize,
    /// The operation in flight: which device, and its deadline.
    in_flight: Option<(Op, usize, Instant)>,
}

impl FenceDevices {
    /// Starts every device's worker; the first start failure is the error. At least one
    /// device (the config guarantees it; an empty list is refused here too).
    pub fn start(targets: Vec<Target>, settings: Settings) -> Result<FenceDevices, Error> {
        if targets.is_empty() {
            return Err(Error {
                bmc: "fencing".into(),
                op: "start",
                failure: ipmi::Failure::Unsupported("no fence device configured".into()),
            });
        }
        let mut devices = Vec::with_capacity(targets.len());
        for t in targets {
            devices.push(FenceClient::start(t, settings)?);
        }
        let name = devices
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", then ");
        Ok(FenceDevices {
            devices,
            name,
            current: 0,
            in_flight: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every device's name and health, in order (for `bbwd status`).
    pub fn each(&self) -> Vec<(&str, Health)> {
        self.devices
            .iter()
            .map(|d| (d.name(), d.health()))
            .collect()
    }

    /// The first device's warning, if any has one.
    pub fn warning(&self) -> Option<&'static str> {
        self.devices.iter().find_map(|d| d.warning())
    }

    /// Readable when the device in flight (else the current one) has news.
    pub fn fd(&self) -> BorrowedFd<'_> {
        let i = self.in_flight.map(|(_, i, _)| i).unwrap_or(self.current);
        // `start` refuses an empty list: there is always a device 0.
        self.devices[i.min(self.devices.len().saturating_sub(1))].fd()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.map(|(_, _, d)| d)
    }

    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// All devices up: up; otherwise the first device's failure that is known.
    pub fn health(&self) -> Health {
        let mut all = Health {
            up: true,
            ..Health::default()
        };
        for d in &self.devices {
            let h = d.health();
            all.up &= h.up;
            if all.last_error.is_none() {
                all.last_error = h.last_error;
            }
            all.sessions_opened += h.sessions_opened;
            all.ok += h.ok;
            all.failed += h.failed;
        }
        all
    }

    pub fn submit(&mut self, op: Op, now: Instant, timeout: Duration) -> Result<(), SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        let first = match op {
            Op::Power(ipmi::PowerAction::Off) => 0,
            _ => self.current,
        };
        let deadline = now + timeout;
        let share = self.share(first, deadline, now);
        self.devices[first].submit(op, now, share)?;
        self.in_flight = Some((op, first, deadline));
        Ok(())
    }

    /// Device `i`'s time: an equal share of what is left with the devices after it, so that a
    /// silent device leaves time for the next.
    fn share(&self, i: usize, deadline: Instant, now: Instant) -> Duration {
        let left = deadline.saturating_duration_since(now);
        let rest = (self.devices.len() - i).max(1) as u32;
        left / rest
    }

    pub fn try_result(&mut self, now: Instant) -> Option<Done> {
        let (op, i, deadline) = self.in_flight?;
        let done = self.devices[i].try_result(now)?;
        match &done.result {
            Ok(_) => self.current = i,
            Err(e) if i + 1 < self.devices.len() && now < deadline => {
                let next = i + 1;
                log::warn!(
                    "fencing: {e}; trying the next device, {}",
                    self.devices[next].name()
                );
                let share = self.share(next, deadline, now);
                if self.devices[next].submit(op, now, share).is_ok() {
                    self.in_flight = Some((op, next, deadline));
                    return None;
                }
            }
            Err(_) => {}
        }
        self.in_flight = None;
        Some(done)
    }

    /// Runs `op` and waits (the CLI and tests; never the daemon's loop).
    pub fn call(&mut self, op: Op, timeout: Duration) -> Result<Reply, Error> {
        if self.submit(op, Instant::now(), timeout).is_err() {
            return Err(Error {
                bmc: self.name.clone(),
                op: op.name(),
                failure: ipmi::Failure::Protocol("another operation is in flight".into()),
            });
        }
        loop {
            if let Some(d) = self.try_result(Instant::now()) {
                return d.result;
            }
            let mut set = crate::poll::PollSet::new();
            let _ = set.add(self.fd(), crate::poll::Want::Read);
            let _ = set.wait(
                self.deadline()
                    .map(|d| d.saturating_duration_since(Instant::now())),
            );
        }
    }

    pub fn close(self, wait: Duration) {
        for d in self.devices {
            d.close(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_device_list_is_refused() {
        match FenceDevices::start(Vec::new(), Settings::default()) {
            Err(e) => assert!(e.to_string().contains("no fence device"), "{e}"),
            Ok(_) => panic!("started with no device"),
        }
    }
}
