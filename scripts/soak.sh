#!/usr/bin/env bash
# The pair fault soak: N random faults injected into the two-node namespace lab (a real
# ipmi_sim BMC per node, two real `bbwd run`), with the invariants sampled every 50 ms.
#
#   sudo scripts/soak.sh N [--seed X]          # N random faults (CI: 30); X replays a run
#   sudo scripts/soak.sh --scenario agent-restart   # the deterministic agent-restart case
#   scripts/soak.sh N --seed X --plan          # print the fault plan only (no lab, no root)
#
# Last line: `soak: F faults, V violations, unserved U s, seed X`; exit 0 only when V = 0.
# What each fault does and how it is healed: tests/src/soak.rs; the cycle, the counting and
# the quiet period: tests/src/bin/soak.rs.
#
# bbwd is the shipped build (static musl release): the soak is about timing (200 ms heartbeats, 1 s peer_timeout on a
# shared 2-core machine) and the package ships a release build; a debug bbwd spends more CPU per
# heartbeat and would make the soak find debug-build stalls instead of the agent's behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The lab nodes run the bbwd that ships (scripts/lib/release.sh): static, musl, release.
. scripts/lib/release.sh
bbwd_release_build
export BBWD_BIN="$PWD/$BBWD_RELEASE_BIN"
cargo build --release --quiet -p bbwd-tests --bins
exec target/release/soak "$@"
