//! Detached start, for bbwd's OCF resource agent mode (`bbwd ocf start`): the agent starts
//! Bitbucket and exits; Pacemaker, not bbwd, supervises it from then on.
//!
//! Owns: the start that outlives its caller. Must not: be used by the daemon (it supervises).

use super::*;

impl Supervised {
    /// Spawns `spec` detached from the caller, which is about to exit: the leader of a new
    /// session (hence of a new process group, pgid = pid, and with no controlling terminal),
    /// stdin from /dev/null, stdout and stderr appended to `output` (created mode 0640).
    /// `spec.capture_output` is ignored: a pipe would outlive its reader.
    ///
    /// The child is ours (`is_child`) until the caller exits; then init or a subreaper reaps it,
    /// and a later caller finds it again through the pid file and `adopt`.
    pub fn spawn_detached(spec: &SpawnSpec, output: &Path) -> Result<Supervised, Error> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let spawn_err = |source: io::Error| Error::Spawn {
            program: program.clone(),
            source,
        };
        if program.is_empty() {
            return Err(spawn_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty command",
            )));
        }
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(output)
            .map_err(|source| Error::Spawn {
                program: format!("{program} (output file {})", output.display()),
                source,
            })?;
        let err_out = out.try_clone().map_err(spawn_err)?;
        let mut cmd = Command::new(&program);
        cmd.args(&spec.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err_out));
        reset_signals_before_exec(&mut cmd);
        // SAFETY: runs in the forked child before exec; setsid(2) is async-signal-safe and
        // touches no memory. Not combined with `process_group`, whose setpgid would make the
        // child a group leader and setsid fail with EPERM.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        apply_spec(&mut cmd, spec);
        let (pid, pidfd, stat) = start_supervised(cmd, spawn_err)?;
        Ok(Supervised {
            pid,
            pgid: stat.pgid,
            start_ticks: stat.start_ticks,
            is_child: true,
            leader: Leader::Running,
            pidfd: Some(pidfd),
            output: None,
        })
    }
}
