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
            FenceClient::Redfish(c) => c.submit(op, now, timeout),
        }
    }

    pub fn try_result(&mut self, now: Instant) -> Option<Done> {
        match self {
            FenceClient::Ipmi(c) => c.try_result(now).map(|d| Done {
                op: d.op,
                result: d.result,
                elapsed: d.elapsed,
            }),
            FenceClient::Redfish(c) => c.try_result(now).map(|d| Done {
                op: d.op,
                result: d.result,
                elapsed: d.elapsed,
            }),
        }
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
