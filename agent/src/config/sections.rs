//! The sections as each phase of [`parse`](super::parse) hands them to the next: [`Read`] from
//! the walk (phase 1), [`Sections`] once phase 2 has had its say, and the [`Config`] when every
//! section is valid.
//!
//! Owns: the order the sections are read in, and how phase 2's verdicts apply (a section with a
//! failed check is invalid; the host name and the database's address are filled in).
//!
//! Must not: check anything itself: each section's file reads it, `io.rs` does the I/O,
//! `cross_section.rs` and `timing.rs` relate sections.

use toml::de::DeTable;

use super::io::Found;
use super::walk::Checker;
use super::{database, node};
use super::{
    Bitbucket, Cluster, Config, Database, Fencing, Hooks, LoadBalancer, Metrics, Node, Notify, Vip,
    Watchdog,
};

/// Every section as the walk read it. `None`: invalid (reported); an optional section's
/// `Some(None)`: not written.
pub(super) struct Read {
    node: Option<node::Draft>,
    bitbucket: Option<Bitbucket>,
    database: Option<Option<database::Draft>>,
    watchdog: Option<Watchdog>,
    notify: Option<Option<Notify>>,
    fencing: Option<Option<Fencing>>,
    cluster: Option<Option<Cluster>>,
    vip: Option<Option<Vip>>,
    hooks: Hooks,
    load_balancer: Option<Option<LoadBalancer>>,
    metrics: Option<Option<Metrics>>,
}

/// Every section after phase 2: as in [`Config`], but `None` where invalid.
pub(super) struct Sections {
    node: Option<Node>,
    bitbucket: Option<Bitbucket>,
    database: Option<Option<Database>>,
    watchdog: Option<Watchdog>,
    notify: Option<Option<Notify>>,
    fencing: Option<Option<Fencing>>,
    cluster: Option<Option<Cluster>>,
    vip: Option<Option<Vip>>,
    hooks: Hooks,
    load_balancer: Option<Option<LoadBalancer>>,
    metrics: Option<Option<Metrics>>,
}

impl Read {
    /// Phase 1: unknown top-level names, then every section. (Problems are put in file order
    /// afterwards, so this order only decides what one section may use of another.)
    pub(super) fn walk(ck: &mut Checker<'_>, root: &DeTable<'_>) -> Read {
        ck.top_level_unknowns(root);
        // Fields are evaluated in the order written.
        Read {
            node: ck.node(root),
            bitbucket: ck.bitbucket(root),
            database: ck.database(root),
            watchdog: ck.watchdog(root),
            notify: ck.notify(root),
            // [fencing] before [cluster]: cluster.fence_delay's default is derived from
            // fencing.timeout.
            fencing: ck.fencing(root),
            cluster: ck.cluster(root),
            vip: ck.vip(root),
            hooks: ck.hooks(root),
            load_balancer: ck.load_balancer(root),
            metrics: ck.metrics(root),
        }
    }

    /// Applies phase 2's verdicts: a section with a failed check is invalid; `node.name` (when
    /// not written) and `database.resolved` come from phase 2's look-ups.
    pub(super) fn on_this_host(self, mut found: Found) -> Sections {
        let host_name = found.host_name.take();
        let ok = |section: &str| found.valid(section);
        let database = match self.database.filter(|_| ok("database")) {
            Some(Some(draft)) => draft.finish(found.resolved).map(Some),
            Some(None) => Some(None),
            None => None,
        };
        Sections {
            node: self
                .node
                .filter(|_| ok("node"))
                .and_then(|draft| draft.finish(host_name)),
            bitbucket: self.bitbucket.filter(|_| ok("bitbucket")),
            database,
            watchdog: self.watchdog.filter(|_| ok("watchdog")),
            notify: self.notify.filter(|_| ok("notify")),
            fencing: self.fencing.filter(|_| ok("fencing")),
            cluster: self.cluster.filter(|_| ok("cluster")),
            vip: self.vip.filter(|_| ok("vip")),
            hooks: self.hooks,
            load_balancer: self.load_balancer.filter(|_| ok("load_balancer")),
            metrics: self.metrics.filter(|_| ok("metrics")),
        }
    }
}

impl Sections {
    /// Phase 3: the rules between sections, then the timing rules.
    pub(super) fn cross_check(&self, ck: &mut Checker<'_>, root: &DeTable<'_>) {
        ck.cross_section(
            root,
            self.node.as_ref(),
            self.cluster.as_ref(),
            self.watchdog.as_ref(),
            self.fencing.as_ref(),
        );
        ck.timing_rules(root);
    }

    /// The config, when every section is valid.
    pub(super) fn into_config(self) -> Option<Config> {
        Some(Config {
            node: self.node?,
            bitbucket: self.bitbucket?,
            database: self.database?,
            watchdog: self.watchdog?,
            notify: self.notify?,
            cluster: self.cluster?,
            vip: self.vip?,
            fencing: self.fencing?,
            hooks: self.hooks,
            load_balancer: self.load_balancer?,
            metrics: self.metrics?,
        })
    }
}
