#!/usr/bin/env bash
# Hardware-watchdog benchmark of `bbwd run` supervising the Bitbucket simulator:
#   - the memory cost of `[watchdog] realtime = true` (mlockall + SCHED_FIFO): VmRSS, Pss and
#     VmLck of the daemon with and without it, and the policy of the supervised child;
#   - pet latency (end of a loop pass to WDIOC_KEEPALIVE returned, bbwd's own measurement in
#     `bbwd status --json`: watchdog.pet_latency_us_last / _max) when a watchdog device is
#     available: BENCH_WATCHDOG_DEVICE (default /dev/watchdog, used only if it exists and no one
#     holds it). CAUTION: that arms the host's watchdog for the run; bbwd disarms it on exit.
# Prints a Markdown table (also written to target/bench-watchdog.md). Figures, not asserts.
# Needs root (mlockall, SCHED_FIFO).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${BENCH_SECONDS:-20}
DEVICE=${BENCH_WATCHDOG_DEVICE:-/dev/watchdog}

. scripts/lib/release.sh
bbwd_release_build   # the bbwd that ships
cargo build --release --quiet -p bbwd-tests
BBWD=$PWD/$BBWD_RELEASE_BIN
SIM=$PWD/target/release/bbsim

DIR=$(mktemp -d /tmp/bbwd-benchwd-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

config() { # config NAME REALTIME DEVICE TIMEOUT
  local port; port=$(free_port)
  cat > "$DIR/$1.toml" <<CONF
[node]
name = "bench"
state_dir = "$DIR/$1/state"
control_socket = "$DIR/$1/control.sock"
[bitbucket]
status_url = "http://127.0.0.1:$port/status"
command = ["$SIM", "--dir", "$DIR/$1/sim", "--port", "$port"]
monitor_interval = "1s"
monitor_timeout = "1s"
[watchdog]
device = "$3"
timeout = "$4"
realtime = $2
CONF
}

wait_running() {
  for _ in $(seq 100); do
    "$BBWD" status -c "$1" >/dev/null 2>&1 && return 0; sleep 0.1
  done
  echo "bench: bbwd did not reach running" >&2; exit 1
}

field() { awk -v k="$1" '$1 == k":" {print $2}' "$2"; }

# run NAME REALTIME: prints "rss pss lck hwm child_policy realtime_in_status"
run() {
  config "$1" "$2" none 60s
  "$BBWD" run -c "$DIR/$1.toml" 2>"$DIR/$1.log" & local p=$!; PIDS+=($p)
  wait_running "$DIR/$1.toml"
  sleep "$SECONDS_EACH"
  local st=/proc/$p/status
  local child; child=$(cat "$DIR/$1/state/bitbucket.pid" | awk '{print $1}')
  local pol; pol=$(chrt -p "$child" | awk -F': ' '/policy/ {print $2}')
  local rt; rt=$("$BBWD" status --json -c "$DIR/$1.toml" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["watchdog"]["realtime"]))')
  echo "$(field VmRSS $st) $(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup) $(field VmLck $st) $(field VmHWM $st) ${pol// /_} $rt"
  kill -TERM "$p"; wait "$p" || true
}

read -r rss0 pss0 lck0 hwm0 pol0 rt0 < <(run plain false)
read -r rss1 pss1 lck1 hwm1 pol1 rt1 < <(run realtime true)

lat="n/a: no watchdog device on this host (see the qemu guest figure)"
if [ -c "$DEVICE" ]; then
  config dev true "$DEVICE" 30s
  "$BBWD" run -c "$DIR/dev.toml" 2>"$DIR/dev.log" & p=$!; PIDS+=($p)
  if wait_running "$DIR/dev.toml"; then
    sleep "$SECONDS_EACH"
    lat=$("$BBWD" status --json -c "$DIR/dev.toml" | python3 -c '
import json,sys
w = json.load(sys.stdin)["watchdog"]
print(f"last {w[\"pet_latency_us_last\"]} us, max {w[\"pet_latency_us_max\"]} us over {w[\"pets\"]} pets ({w[\"device\"]}, timeout {w[\"timeout_ms\"]} ms, realtime)")')
  fi
  kill -TERM "$p"; wait "$p" || true
fi

out=target/bench-watchdog.md
{
  echo "| figure | realtime = false | realtime = true |"
  echo "|---|---|---|"
  echo "| VmRSS of \`bbwd run\` | $rss0 KiB | $rss1 KiB (+$((rss1 - rss0)) KiB) |"
  echo "| PSS | $pss0 KiB | $pss1 KiB |"
  echo "| locked (VmLck) | $lck0 KiB | $lck1 KiB |"
  echo "| peak (VmHWM) | $hwm0 KiB | $hwm1 KiB |"
  echo "| status \`watchdog.realtime\` | $rt0 | $rt1 |"
  echo "| supervised Bitbucket's scheduling policy (\`chrt -p\`) | ${pol0//_/ } | ${pol1//_/ } |"
  echo
  echo "Pet latency (end of pass to keep-alive returned): $lat"
} | tee "$out"
