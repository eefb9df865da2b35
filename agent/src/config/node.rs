//! `[node]`: this node's name, its state directory and its control socket.
//!
//! Owns: the keys of `[node]` and their defaults, and the rule for a node's name
//! ([`check_name`], which `cluster.peer` and the host name share).
//!
//! Must not: read the host name: when `name` is not written the walk defers it to phase 2
//! (`io.rs`), which reads it and checks it with [`check_name`].

use std::path::PathBuf;

use toml::de::DeTable;

use super::io::Need;
use super::walk::{Checker, Sec};
use super::{Node, MAX_NAME_BYTES};

pub(super) const KEYS: &[&str] = &["name", "state_dir", "control_socket", "status_group"];

const DEFAULT_STATE_DIR: &str = "/var/lib/bbwd";
const DEFAULT_CONTROL_SOCKET: &str = "/run/bbwd/control.sock";
/// Longest Unix socket path, bytes (`sun_path` is 108 bytes including the NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// `[node]` as the walk reads it: a [`Node`] whose `name` is `None` when not written (the host
/// name serves; phase 2 reads it).
pub(super) struct Draft {
    name: Option<String>,
    state_dir: PathBuf,
    control_socket: PathBuf,
    status_group: Option<String>,
}

impl Draft {
    /// The [`Node`], named by `host_name` (from phase 2) when `name` is not written; `None`
    /// when neither is there (the host name could not serve: reported).
    pub(super) fn finish(self, host_name: Option<String>) -> Option<Node> {
        Some(Node {
            name: self.name.or(host_name)?,
            state_dir: self.state_dir,
            control_socket: self.control_socket,
            status_group: self.status_group,
        })
    }
}

impl Checker<'_> {
    /// `[node]`; `None`: invalid (reported).
    pub(super) fn node(&mut self, root: &DeTable<'_>) -> Option<Draft> {
        let Some(sec) = self.section(root, "node", "node") else {
            if root.contains_key("node") {
                return None; // not a table: reported
            }
            self.defer_host_name();
            return Some(Draft {
                name: None,
                state_dir: PathBuf::from(DEFAULT_STATE_DIR),
                control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
                status_group: None,
            });
        };
        self.unknown_keys(sec, KEYS);
        let name = self.parsed(sec, "name", None, |name| {
            check_name(name).map(|()| Some(name.to_string()))
        });
        if name == Some(None) {
            self.defer_host_name();
        }
        let state_dir = self.path(
            sec,
            "state_dir",
            Some(DEFAULT_STATE_DIR),
            "\"/var/lib/bbwd\"",
        );
        let control_socket = self.control_socket(sec)?;
        let status_group = self.parsed(sec, "status_group", None, |group| match group {
            "" => Err("must name a group (e.g. \"nagios\") or be left out".to_string()),
            group => Ok(Some(group.to_string())),
        })?;
        Some(Draft {
            name: name?,
            state_dir: state_dir?.0,
            control_socket: control_socket?,
            status_group,
        })
    }

    /// `name` is not written: the host name serves, read in phase 2 (`io.rs`).
    fn defer_host_name(&mut self) {
        self.defer("node.name".to_string(), None, Need::HostName);
    }

    /// `control_socket`: an absolute path short enough for a Unix socket. `Some(None)`: not a
    /// path (reported); `None`: too long (reported, and the rest of `[node]` is not read).
    fn control_socket(&mut self, sec: Sec<'_, '_>) -> Option<Option<PathBuf>> {
        let Some((path, span)) = self.path(
            sec,
            "control_socket",
            Some(DEFAULT_CONTROL_SOCKET),
            "\"/run/bbwd/control.sock\"",
        ) else {
            return Some(None);
        };
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH_BYTES {
            self.report(
                sec.key("control_socket"),
                Some(span.start),
                format!("{len} bytes is too long for a Unix socket path (at most {MAX_SOCKET_PATH_BYTES})"),
            );
            return None;
        }
        Some(Some(path))
    }
}

/// A node or peer name: 1..=64 bytes of letters, digits, `-`, `_`, `.`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("\"{name}\" is longer than {MAX_NAME_BYTES} bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "\"{name}\": use only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}
