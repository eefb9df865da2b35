#!/usr/bin/env bash
# The benchmarks behind BENCHMARKS.md: builds what they measure, then runs them. The benchmarks
# themselves are Rust, one module each in tests/src/bench/, run by the `bench` binary
# (tests/src/bin/bench.rs) on the end-to-end tests' harness.
#
#   scripts/bench.sh --list             each benchmark: what it measures, its knobs, how long
#   scripts/bench.sh NAME [ARGS...]     one benchmark, e.g. `scripts/bench.sh fence 9`
#   scripts/bench.sh all                every one, with its defaults
#
# Knobs are the benchmark's arguments and BENCH_* environment variables (--list names them),
# e.g. `BENCH_CPU_SECONDS=30 scripts/bench.sh footprint`. The report (Markdown) is printed and
# written to target/bench-NAME.md. Figures are reported, never asserted.
#
# What this script does, and the Rust binary does not: become root (several benchmarks build
# network namespaces, lock memory or boot guests), install what is missing (scripts/setup.sh;
# fence-agents for `fence`, its baseline, a large package only that benchmark needs), and build:
#   * the bbwd that ships (scripts/lib/release.sh: release profile, static, musl): what most
#     benchmarks measure ($BBWD_BIN overrides);
#   * the glibc release bbwd, target/release/bbwd: footprint and mirror, as first measured;
#   * the alloc-count bbwd (--features alloc-count) in its own target directory,
#     target/alloc-count, so that it never replaces target/release/bbwd: footprint and metrics;
#   * bench, bbsim and viptool (release).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  "" | -h | --help)
    echo "usage: scripts/bench.sh --list | NAME [ARGS...] | all" >&2
    exit 64
    ;;
  -l | --list | list)
    cargo build --release --quiet -p bbwd-tests --bin bench
    exec target/release/bench --list
    ;;
esac

. scripts/lib/root.sh
bbwd_become_root "$0" "$@"

bash scripts/setup.sh test
if [ "$1" = fence ] || [ "$1" = all ]; then
  if ! command -v fence_ipmilan >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fence-agents >/dev/null
  fi
fi

. scripts/lib/release.sh
bbwd_release_build
cargo build --release --quiet -p bbwd -p bbwd-tests
case "$1" in
  footprint | metrics | all)
    cargo build --release --quiet -p bbwd --features alloc-count --target-dir target/alloc-count
    ;;
esac
exec target/release/bench "$@"
