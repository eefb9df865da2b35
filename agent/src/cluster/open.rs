//! Opening pair mode's platform side at start-up: the heartbeat links, the peer's fence
//! devices (`crate::fencing`), the VIP and its watch, the witness and the public link, and what
//! an earlier run left (the VIP on the interface, the storage record).
//!
//! Owns [`Cluster::open`] and why it fails ([`SetupError`], naming the key each failure comes
//! from, with the failure underneath). Must not: decide whether a node found serving resumes
//! (the node does, from what [`Setup`] reports), or act on the peer.

use bbwd_core::node::{Input, PairSettings};
use bbwd_core::timing;
use bbwd_platform::clock;
use bbwd_platform::fence_device::FenceDevices;
use bbwd_platform::heartbeat::Links;
use bbwd_platform::linkwatch::LinkWatch;
use bbwd_platform::vip::{AddressWatch, Vip};
use bbwd_platform::witness::Witness;
use log::{info, warn};

use crate::config::{self, Config, FenceAction};
use crate::fencing;
use crate::heartbeat as hb;
use crate::pair;

use super::{
    Cluster, Parts, Real, RecordStore, Spawner, StorageFile, BMC_WATCH, FENCE_KEEPALIVE,
    STEP_TIMEOUT, STORAGE_RECORD, WITNESS_MISSES,
};

/// What pair mode starts from (read before the node is built).
pub struct Setup {
    pub cluster: Cluster,
    pub settings: PairSettings,
    /// The VIP is on the interface (left by an earlier run).
    pub vip_held: bool,
    /// `state_dir/storage` exists.
    pub storage_held: bool,
}

/// Why pair mode cannot start: what was being opened (a key, or a sentence when nothing
/// lower failed), and the failure underneath.
#[derive(Debug)]
pub struct SetupError {
    what: &'static str,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SetupError {
    /// A failure of its own (nothing lower failed).
    fn plain(what: &'static str) -> SetupError {
        SetupError { what, source: None }
    }

    /// `what` failed because of `source`.
    fn of(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> SetupError {
        SetupError {
            what,
            source: Some(source.into()),
        }
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.what),
            None => f.write_str(self.what),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl Cluster<Real> {
    /// Opens everything pair mode needs; any failure names the key it comes from.
    pub fn open(cfg: &Config) -> Result<Setup, SetupError> {
        let (c, v, f) = sections(cfg)?;
        let (key, me, peer) = identity(cfg, c)?;
        let links = Links::bind(&c.listen, &c.peer_addresses)
            .map_err(|e| SetupError::of("cluster.listen", e))?;
        let boot_id = bbwd_platform::heartbeat::random_boot_id()
            .map_err(|e| SetupError::of("heartbeat", e))?;
        let first_sequence = clock::wall_ms().saturating_mul(1000);
        let fencer = start_fencer(f)?;
        let (mut vip, vip_watch) = open_vip(v)?;
        let witness = match c.witness {
            Some(addr) => {
                Some(Witness::new(addr).map_err(|e| SetupError::of("cluster.witness", e))?)
            }
            None => None,
        };
        let link = LinkWatch::open(&v.interface).map_err(|e| SetupError::of("vip.interface", e))?;
        let vip_held = vip
            .held()
            .map_err(|e| SetupError::of("vip: cannot tell whether the VIP is held", e))?;
        let mut storage = StorageFile(cfg.node.state_dir.join(STORAGE_RECORD));
        let storage_held = storage_held_at_open(&mut storage);
        let settings = PairSettings {
            pair: pair_settings(cfg, c),
            heartbeat_interval: c.heartbeat_interval,
            links: links.len(),
            key,
            me,
            peer,
            boot_id,
            first_sequence,
            fence_timeout: f.timeout,
            fence_cycle: f.action == FenceAction::Cycle,
            preferred: c.preferred_active,
        };
        let mut cluster = Cluster::new(
            Parts {
                node_name: cfg.node.name.clone(),
                peer_name: c.peer.clone(),
                before_start: cfg.hooks.before_start.clone(),
                after_stop: cfg.hooks.after_stop.clone(),
                garp_count: v.garp_count,
                garp_interval: v.garp_interval,
                links,
                fencer,
                vip,
                vip_watch,
                hook_runner: Spawner,
                storage,
                witness,
                link: Some(link),
            },
            clock::now(),
        );
        cluster.report_found(vip_held);
        Ok(Setup {
            cluster,
            settings,
            vip_held,
            storage_held,
        })
    }

    /// Logs a VIP found on the interface, and gives the node the public link's state as it is
    /// now if it is down (the watch reports only changes from here on).
    fn report_found(&mut self, vip_held: bool) {
        if vip_held {
            warn!(
                "vip {}: configured on this node at start: the node resumes serving",
                self.vip
            );
        }
        if let Some(l) = &self.link {
            if !l.state().usable() {
                self.push(Input::PublicLink { up: false });
            }
        }
    }
}

/// The sections pair mode needs: `[cluster]`, `[vip]` and `[fencing]`.
fn sections(
    cfg: &Config,
) -> Result<(&config::Cluster, &config::Vip, &config::Fencing), SetupError> {
    let c = cfg
        .cluster
        .as_ref()
        .ok_or(SetupError::plain("[cluster] missing"))?;
    let v = cfg
        .vip
        .as_ref()
        .ok_or(SetupError::plain("[cluster] needs [vip]"))?;
    let f = cfg
        .fencing
        .as_ref()
        .ok_or(SetupError::plain("[cluster] needs [fencing]"))?;
    Ok((c, v, f))
}

/// The heartbeat key (read from `cluster.key_file`) and the two node names.
fn identity(
    cfg: &Config,
    c: &config::Cluster,
) -> Result<(hb::Key, hb::NodeName, hb::NodeName), SetupError> {
    let key_bytes = bbwd_platform::fs::read_secret_file(&c.key_file)
        .map_err(|e| SetupError::of("cluster.key_file", e))?;
    // The core's key error is plain data (no std::error::Error there): its text.
    let key =
        hb::Key::new(&key_bytes).map_err(|e| SetupError::of("cluster.key_file", e.to_string()))?;
    let me = hb::NodeName::new(&cfg.node.name)
        .ok_or(SetupError::plain("node.name: not a valid node name"))?;
    let peer = hb::NodeName::new(&c.peer)
        .ok_or(SetupError::plain("cluster.peer: not a valid node name"))?;
    Ok((key, me, peer))
}

/// Starts the workers for the peer's fence devices (`[fencing]`).
fn start_fencer(f: &config::Fencing) -> Result<FenceDevices, SetupError> {
    FenceDevices::start(
        fencing::targets(f).map_err(|e| SetupError::of("fencing", e))?,
        fencing::settings(f, Some(FENCE_KEEPALIVE)),
    )
    .map_err(|e| SetupError::of("fencing", e))
}

/// Opens the VIP on its interface and, if it can, a watch on the address (`None` if not).
fn open_vip(v: &config::Vip) -> Result<(Vip, Option<AddressWatch>), SetupError> {
    let vip =
        Vip::open(&v.interface, v.address, v.prefix_len).map_err(|e| SetupError::of("vip", e))?;
    let vip_watch = match vip.watch() {
        Ok(w) => Some(w),
        Err(e) => {
            warn!("vip: cannot watch the address: {e}");
            None
        }
    };
    Ok((vip, vip_watch))
}

/// The pair machine's settings, from `[cluster]` and `[bitbucket]`'s stop and kill timeouts.
fn pair_settings(cfg: &Config, c: &config::Cluster) -> pair::Settings {
    pair::Settings {
        peer_timeout: c.peer_timeout,
        preferred_active: c.preferred_active,
        name_first: cfg.node.name < c.peer,
        fence_delay: c.fence_delay,
        boot_wait: c.boot_wait,
        witness: c.witness.is_some(),
        witness_misses: WITNESS_MISSES,
        link_hold: c.peer_timeout,
        step_timeout: STEP_TIMEOUT,
        release_timeout: timing::release_deadline(
            cfg.bitbucket.stop_timeout,
            cfg.bitbucket.kill_timeout,
        ),
        bmc_watch: BMC_WATCH,
    }
}

/// Whether the storage record says `before_start` hooks may be in effect. A record of an
/// earlier kernel boot is removed and does not count; an unreadable one counts.
pub(super) fn storage_held_at_open(storage: &mut impl RecordStore) -> bool {
    match storage.read() {
        Ok(None) => false,
        Ok(Some(text)) => {
            // Only a record of this kernel boot: after a reboot nothing the hooks did is in
            // effect any more (mounts, DRBD roles), and resuming from an old record would
            // start Bitbucket next to the peer that fenced this node (found by the model
            // checker).
            let text = String::from_utf8_lossy(&text);
            let this_boot = storage.boot_id();
            let recorded = text
                .split_whitespace()
                .nth(1)
                .and_then(|b| u128::from_str_radix(b, 16).ok());
            if this_boot.is_some() && recorded == this_boot {
                true
            } else {
                info!(
                    "{}: from an earlier boot: the hooks' effects are gone with it",
                    storage.path().display()
                );
                if let Err(e) = storage.remove() {
                    warn!("{e}");
                }
                false
            }
        }
        // Cannot tell: assume held (resuming is safe, forgetting is not).
        Err(e) => {
            warn!("{e}: taking the storage as held");
            true
        }
    }
}
