//! The petting policy: a pure function from what the main loop knows to whether the hardware
//! watchdog may be petted at the end of this pass.
//!
//! | pass ended in time | node can correct itself | self-fence asked | decision                |
//! |--------------------|-------------------------|------------------|-------------------------|
//! | no                 | any                     | any              | withhold: `LatePass`    |
//! | yes                | no (survived SIGKILL)   | any              | withhold: `CannotCorrect` |
//! | yes                | yes                     | yes              | withhold: `SelfFence`   |
//! | yes                | yes                     | no               | pet                     |
//!
//! Bitbucket being down, restarting, holding for the database, or in maintenance is *not* an
//! input: the node is sound in all of those, and resetting it would not help.
//!
//! The systemd watchdog (`WATCHDOG=1`) follows only the first column: it guards bbwd itself,
//! and bbwd stays alive and truthful when the node cannot correct Bitbucket.

/// What the loop knows at the end of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// The pass completed within its budget (a late pass means the loop is stalling).
    pub pass_in_time: bool,
    /// False once Bitbucket survived SIGKILL past `kill_timeout`.
    pub node_can_correct: bool,
    /// The pair logic asks this node to fence itself.
    pub self_fence: bool,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pet,
    Withhold(Why),
}

/// Why a pet is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    LatePass,
    CannotCorrect,
    SelfFence,
}

/// The hardware watchdog's policy (the table above).
pub fn hardware(i: Inputs) -> Decision {
    if !i.pass_in_time {
        Decision::Withhold(Why::LatePass)
    } else if !i.node_can_correct {
        Decision::Withhold(Why::CannotCorrect)
    } else if i.self_fence {
        Decision::Withhold(Why::SelfFence)
    } else {
        Decision::Pet
    }
}

/// The systemd watchdog's policy: only a stalled loop withholds it.
pub fn systemd(i: Inputs) -> Decision {
    if i.pass_in_time {
        Decision::Pet
    } else {
        Decision::Withhold(Why::LatePass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination, row by row against the table in the module doc.
    #[test]
    fn the_table_exhaustively() {
        for pass_in_time in [false, true] {
            for node_can_correct in [false, true] {
                for self_fence in [false, true] {
                    let i = Inputs {
                        pass_in_time,
                        node_can_correct,
                        self_fence,
                    };
                    let want = if !pass_in_time {
                        Decision::Withhold(Why::LatePass)
                    } else if !node_can_correct {
                        Decision::Withhold(Why::CannotCorrect)
                    } else if self_fence {
                        Decision::Withhold(Why::SelfFence)
                    } else {
                        Decision::Pet
                    };
                    assert_eq!(hardware(i), want, "{i:?}");
                    let sd = if pass_in_time {
                        Decision::Pet
                    } else {
                        Decision::Withhold(Why::LatePass)
                    };
                    assert_eq!(systemd(i), sd, "{i:?}");
                }
            }
        }
    }

    #[test]
    fn an_unkillable_bitbucket_stops_the_hardware_watchdog_but_not_systemds() {
        let i = Inputs {
            pass_in_time: true,
            node_can_correct: false,
            self_fence: false,
        };
        assert_eq!(hardware(i), Decision::Withhold(Why::CannotCorrect));
        assert_eq!(systemd(i), Decision::Pet);
    }
}
