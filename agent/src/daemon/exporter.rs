//! Prometheus metrics in the loop (`[metrics]`): the scrape endpoint, node_exporter's textfile,
//! and the sample both render (`crate::metrics`). Reads the node, the cluster and the counters;
//! decides nothing.
//!
//! # Invariants
//! * A scrape allocates nothing: the sample is gathered into fixed-capacity values and rendered
//!   into the answering connection's fixed buffer (`metrics_server`).
//! * The textfile is written at most once per `monitor_interval` (and once more at exit, with
//!   the final state), through a temporary file renamed over it, from a buffer allocated at
//!   start.

#[allow(unused_imports)]
use super::*;

use std::os::fd::BorrowedFd;

use bbwd_platform::metrics_server::{self, Body, MetricsServer};

use crate::metrics;

/// Mode of the textfile: node_exporter runs as its own user and must read it.
const TEXTFILE_MODE: u32 = 0o644;

/// The metrics side of the daemon.
#[derive(Default)]
pub(super) struct Exporter {
    /// `[metrics] listen`, bound at start.
    server: Option<MetricsServer>,
    textfile: Option<Textfile>,
    /// Counters only metrics need, fed where the events happen.
    pub(super) counters: metrics::Counters,
    /// Pair mode's part, refilled for each render (fixed capacity).
    pair: metrics::Pair,
    /// A render did not fit (logged once).
    overflow_logged: bool,
}

struct Textfile {
    file: fs::ReplaceFile,
    buf: Box<[u8]>,
    next_write: Instant,
    /// The last write's failure (logged once per distinct failure).
    error: Option<String>,
}

impl Exporter {
    /// Binds `[metrics] listen` (the error names the key) and prepares the textfile.
    pub(super) fn open(cfg: &Config, now: Instant) -> Result<Exporter, Error> {
        let Some(m) = &cfg.metrics else {
            return Ok(Exporter::default());
        };
        let server = match m.listen {
            Some(addr) => Some(
                MetricsServer::bind(addr, metrics_server::CONN_TIMEOUT).map_err(|e| {
                    Error::Setup {
                        what: "metrics.listen",
                        source: e.into(),
                    }
                })?,
            ),
            None => None,
        };
        if let Some(s) = &server {
            info!("metrics: serving GET /metrics on {}", s.local_addr());
        }
        let textfile = m.textfile.as_ref().map(|p| Textfile {
            file: fs::ReplaceFile::new(p, TEXTFILE_MODE),
            buf: vec![0u8; metrics_server::MAX_RESPONSE].into_boxed_slice(),
            next_write: now,
            error: None,
        });
        Ok(Exporter {
            server,
            textfile,
            ..Exporter::default()
        })
    }

    pub(super) fn poll_items<'a>(&'a self, out: &mut dyn FnMut(BorrowedFd<'a>, Want)) {
        if let Some(s) = &self.server {
            s.poll_items(&mut |fd, i| {
                out(
                    fd,
                    match i {
                        metrics_server::Interest::Read => Want::Read,
                        metrics_server::Interest::Write => Want::Write,
                    },
                )
            });
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let server = self.server.as_ref().and_then(|s| s.deadline());
        let file = self.textfile.as_ref().map(|t| t.next_write);
        server.into_iter().chain(file).min()
    }
}

impl Core {
    /// Once per pass: answers scrapes, and writes the textfile when due.
    pub(super) fn service_exporter(&mut self, now: Instant) {
        if let Some(mut server) = self.exporter.server.take() {
            let mut pair = std::mem::take(&mut self.exporter.pair);
            let mut overflowed = false;
            server.service(now, &mut |body: &mut Body<'_>| {
                self.render_metrics(now, &mut pair, body);
                overflowed |= body.overflowed();
            });
            self.exporter.pair = pair;
            self.exporter.server = Some(server);
            self.note_overflow(overflowed);
        }
        if self
            .exporter
            .textfile
            .as_ref()
            .is_some_and(|t| now >= t.next_write)
        {
            self.write_textfile(now);
        }
    }

    /// Renders the textfile and replaces the file with it.
    pub(super) fn write_textfile(&mut self, now: Instant) {
        let Some(mut t) = self.exporter.textfile.take() else {
            return;
        };
        t.next_write = now + self.cfg.bitbucket.monitor_interval;
        let mut pair = std::mem::take(&mut self.exporter.pair);
        let (len, overflowed) = {
            let mut body = Body::new(&mut t.buf);
            self.render_metrics(now, &mut pair, &mut body);
            (body.len(), body.overflowed())
        };
        self.exporter.pair = pair;
        self.note_overflow(overflowed);
        if !overflowed {
            match t.file.write(&t.buf[..len]) {
                Ok(()) => {
                    if t.error.take().is_some() {
                        info!("metrics.textfile: written again");
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    if t.error.as_deref() != Some(&text) {
                        error!("metrics.textfile: {text}");
                        t.error = Some(text);
                    }
                }
            }
        }
        self.exporter.textfile = Some(t);
    }

    fn note_overflow(&mut self, overflowed: bool) {
        if overflowed && !self.exporter.overflow_logged {
            self.exporter.overflow_logged = true;
            error!(
                "internal: the metrics do not fit in {} bytes; scrapes get a 500",
                metrics_server::MAX_RESPONSE
            );
        }
    }

    /// Gathers the sample (no allocation) and renders it into `w`.
    fn render_metrics(&self, now: Instant, pair: &mut metrics::Pair, w: &mut dyn std::fmt::Write) {
        let v = self.node.machine().view();
        let (state, role) = self.state_and_role();
        let http_status = match v.last_probe {
            Some(ProbeOutcome::Reply { http_status, .. }) => Some(http_status),
            _ => None,
        };
        let has_pair = match &self.cluster {
            Some(c) => {
                c.metrics(now, &self.node, pair);
                true
            }
            None => false,
        };
        let sample = metrics::Sample {
            version: env!("CARGO_PKG_VERSION"),
            mode: self.mode_str(),
            state,
            role,
            http_status,
            consecutive_failures: v.consecutive_failures,
            watchdog_armed: self.hw.is_some(),
            petting: v.petting,
            database_reachable: match v.db {
                machine::Db::Up => Some(true),
                machine::Db::Down => Some(false),
                _ => None,
            },
            started_at_ms: self.started_at_ms,
            counters: &self.exporter.counters,
            pair: has_pair.then_some(&*pair),
            lb: self.lb.as_ref().map(|l| metrics::Lb {
                reply: l.word,
                checks: l.server.counters().accepted,
            }),
        };
        // A full buffer is reported by the caller (the body knows).
        let _ = metrics::render(&sample, w);
    }
}
