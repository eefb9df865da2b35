//! `bbwd fence status|off|on|cycle`: an operator acting on the peer's BMC (`[fencing]`) by
//! hand, without the daemon (SPEC CLI).
//!
//! Owns the command's output: the power state (`on`/`off`) on stdout once the action is done;
//! a failure goes back to `main` as an [`Error`] (one line with the BMC, the operation and the
//! reason: unreachable, bad credentials, insufficient privilege, timeout, a completion code).
//! Must not: decide the sequence (`bbwd_core::fence::operator`), drive the BMC
//! (`crate::fencing`, the same devices the daemon fences with), or run inside the daemon (it
//! waits).
//!
//! Each confirmed phase has `[fencing] timeout` (a cycle has it twice). Already off (on) is
//! success. A BMC that answers "on" until the node is really gone (ipmi_sim does: on until the
//! node process is reaped) makes `off` trustworthy: it returns only once the node is off.

use bbwd_core::fence::operator::Action;

use crate::config::Config;
use crate::exit::Exit;
use crate::fencing;

use super::Error;

/// `bbwd fence ACTION`: prints the state once the action is done.
pub fn command(cfg: &Config, action: Action) -> Result<Exit, Error> {
    let Some(f) = &cfg.fencing else {
        return Err(Error::NoFencing(action));
    };
    let p = fencing::run(f, action).map_err(|source| Error::Fence { action, source })?;
    println!("{}", p.as_str());
    Ok(Exit::Ok)
}
