//! What Pacemaker passes to the agent in the environment: the `config` parameter
//! (`OCF_RESKEY_config`), the operation's timeout and interval (`OCF_RESKEY_CRM_meta_*`, ms)
//! and the resource's name.
//!
//! Owns reading them, leniently (a number that does not parse counts as absent). Must not: act
//! on them (the actions do) or read anything but the environment.

use std::path::PathBuf;
use std::time::Duration;

/// What Pacemaker passes in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcfEnv {
    /// `OCF_RESKEY_config`.
    pub config: Option<PathBuf>,
    /// `OCF_RESKEY_CRM_meta_timeout` (ms): Pacemaker kills the agent after this.
    pub timeout: Option<Duration>,
    /// `OCF_RESKEY_CRM_meta_interval` (ms): 0 on a probe (a one-off monitor).
    pub interval: Option<Duration>,
    /// `OCF_RESOURCE_INSTANCE`, for log lines.
    pub instance: Option<String>,
}

impl OcfEnv {
    /// Reads the variables from `vars`; unparsable numbers are ignored (treated as absent).
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(vars: impl Iterator<Item = (K, V)>) -> OcfEnv {
        let mut env = OcfEnv::default();
        let ms = |v: &str| v.trim().parse::<u64>().ok().map(Duration::from_millis);
        for (k, v) in vars {
            let v = v.as_ref();
            match k.as_ref() {
                "OCF_RESKEY_config" if !v.is_empty() => env.config = Some(PathBuf::from(v)),
                "OCF_RESKEY_CRM_meta_timeout" => env.timeout = ms(v).filter(|d| !d.is_zero()),
                "OCF_RESKEY_CRM_meta_interval" => env.interval = ms(v),
                "OCF_RESOURCE_INSTANCE" if !v.is_empty() => env.instance = Some(v.to_string()),
                _ => {}
            }
        }
        env
    }

    pub(super) fn from_process() -> OcfEnv {
        OcfEnv::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// A probe: a monitor Pacemaker runs once (interval 0) to learn the state on a node, also
    /// on nodes where Bitbucket is not set up.
    pub fn is_probe(&self) -> bool {
        self.interval.is_some_and(|i| i.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn environment_is_read_in_milliseconds_and_probes_are_interval_zero() {
        let env = OcfEnv::from_vars(
            [
                ("OCF_RESKEY_config", "/etc/x.toml"),
                ("OCF_RESKEY_CRM_meta_timeout", "20000"),
                ("OCF_RESKEY_CRM_meta_interval", "0"),
                ("OCF_RESOURCE_INSTANCE", "bb"),
                ("PATH", "/bin"),
            ]
            .into_iter(),
        );
        assert_eq!(env.config, Some(PathBuf::from("/etc/x.toml")));
        assert_eq!(env.timeout, Some(S(20)));
        assert!(env.is_probe());
        assert_eq!(env.instance.as_deref(), Some("bb"));
        let env = OcfEnv::from_vars(
            [
                ("OCF_RESKEY_CRM_meta_timeout", "soon"),
                ("OCF_RESKEY_CRM_meta_interval", "15000"),
                ("OCF_RESKEY_config", ""),
            ]
            .into_iter(),
        );
        assert_eq!(env.timeout, None, "garbage is ignored, not a zero timeout");
        assert_eq!(env.config, None);
        assert!(!env.is_probe());
        assert!(!OcfEnv::from_vars(std::iter::empty::<(&str, &str)>()).is_probe());
        let zero = OcfEnv::from_vars([("OCF_RESKEY_CRM_meta_timeout", "0")].into_iter());
        assert_eq!(zero.timeout, None);
    }
}
