#!/usr/bin/env bash
# Footprint benchmark of `bbwd run` supervising the Bitbucket simulator (single node):
#   - steady-state resident memory (VmRSS, and Pss from smaps_rollup),
#   - heap allocations per monitoring cycle in steady state (build with --features alloc-count),
#   - stripped release binary size,
#   - CPU time per hour at monitor_interval = 1s (measured over BENCH_CPU_SECONDS, scaled).
# Prints a Markdown table (also written to target/bench-single-node.md). Figures, not asserts:
# this machine is shared and noisy, so nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
CPU_SECONDS=${BENCH_CPU_SECONDS:-120}
ALLOC_SECONDS=${BENCH_ALLOC_SECONDS:-20}

cargo build --release --quiet -p bbwd -p bbwd-tests
cp target/release/bbwd target/bbwd-release
cargo build --release --quiet -p bbwd --features alloc-count
cp target/release/bbwd target/bbwd-alloc-count
cargo build --release --quiet -p bbwd   # leave the plain build in place
SIM=$PWD/target/release/bbsim

DIR=$(mktemp -d /tmp/bbwd-bench-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

config() { # config NAME INTERVAL
  local port; port=$(free_port)
  cat > "$DIR/$1.toml" <<CONF
[node]
name = "bench"
state_dir = "$DIR/$1/state"
control_socket = "$DIR/$1/control.sock"
[bitbucket]
status_url = "http://127.0.0.1:$port/status"
command = ["$SIM", "--dir", "$DIR/$1/sim", "--port", "$port"]
monitor_interval = "$2"
monitor_timeout = "1s"
CONF
}

wait_running() {
  for _ in $(seq 100); do
    "$1" status -c "$2" >/dev/null 2>&1 && return 0; sleep 0.1
  done
  echo "bench: bbwd did not reach running" >&2; exit 1
}

# 1. RSS and CPU at a 1 s interval, the production-like setting (seeds: 15 s; 1 s is 15x busier).
config cpu 1s
target/bbwd-release run -c "$DIR/cpu.toml" 2>"$DIR/cpu.log" & P=$!; PIDS+=($P)
wait_running target/bbwd-release "$DIR/cpu.toml"
sleep 3
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$P/stat)
t0=$(date +%s.%N)
sleep "$CPU_SECONDS"
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$P/stat)
t1=$(date +%s.%N)
rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/$P/status)
pss_kib=$(awk '/^Pss:/ {print $2}' /proc/$P/smaps_rollup)
hwm_kib=$(awk '/^VmHWM/ {print $2}' /proc/$P/status)
tck=$(getconf CLK_TCK)
cpu_s_per_hour=$(python3 -c "print(f'{(($u1+$s1)-($u0+$s0))/$tck*3600/($t1-$t0):.2f}')")
kill -TERM $P; wait $P || true

# 2. Allocations per monitoring cycle, at a 100 ms interval to get many cycles quickly.
config alloc 100ms
RUST_LOG=info target/bbwd-alloc-count run -c "$DIR/alloc.toml" 2>"$DIR/alloc.log" & P=$!; PIDS+=($P)
wait_running target/bbwd-alloc-count "$DIR/alloc.toml"
sleep "$ALLOC_SECONDS"
kill -TERM $P; wait $P || true
line=$(grep -o 'alloc-count: .*' "$DIR/alloc.log")
checks=$(sed -E 's/.*steady_checks=([0-9]+).*/\1/' <<<"$line")
allocs=$(sed -E 's/.*steady_allocs=([0-9]+).*/\1/' <<<"$line")
per_cycle=$(python3 -c "print(f'{$allocs/max($checks,1):.3f}')")

size_bytes=$(stat -c %s target/bbwd-release)
out=target/bench-single-node.md
{
  echo "| figure | value | goal |"
  echo "|---|---|---|"
  echo "| steady-state RSS of \`bbwd run\` (VmRSS) | $((rss_kib)) KiB ($(python3 -c "print(f'{$rss_kib/1024:.2f}')") MiB); PSS $pss_kib KiB; peak $hwm_kib KiB | < 3 MiB |"
  echo "| heap allocations per monitoring cycle (steady state) | $per_cycle ($allocs allocations over $checks cycles) | 0 |"
  echo "| stripped release binary | $size_bytes bytes ($(python3 -c "print(f'{$size_bytes/1048576:.2f}')") MiB) | small |"
  echo "| CPU time per hour at monitor_interval = 1s | ${cpu_s_per_hour} s (measured over ${CPU_SECONDS} s) | small |"
} | tee "$out"
echo "($line)"
