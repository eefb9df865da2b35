#!/bin/sh
# RSS of `bbwd run` under a correction every 2 s (BENCHMARKS.md, "Single node: hardening").
# The simulator is crashed every 2 s through its admin endpoint; bbwd restarts it each time
# (max_restarts is high, the window short, so the budget never runs out). VmRSS of bbwd is
# sampled at the start and every minute, with the restarts done so far (the simulator's START
# lines less the first: bbwd's own events.log rotates at 1 MiB, so it undercounts over an hour).
# Output: one line per minute on stdout, then a summary line starting "after".
#
# usage: scripts/bench-rss.sh [SECONDS]      (default 3600: the hour the issue asks for)
# needs: cargo build (debug or release; BBWD_BIN / BBSIM_BIN override), curl.
set -eu
secs=${1:-3600}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/release.sh"
bbwd=${BBWD_BIN:-$root/$BBWD_RELEASE_BIN}
bbsim=${BBSIM_BIN:-$root/target/release/bbsim}
[ -x "$bbwd" ] || bbwd=$root/target/debug/bbwd
[ -x "$bbsim" ] || bbsim=$root/target/debug/bbsim
dir=$(mktemp -d /tmp/bbwd-rss.XXXXXX)
port=$(( 20000 + $$ % 20000 ))
cat > "$dir/bbwd.toml" <<TOML
[node]
name = "rss"
state_dir = "$dir/state"
control_socket = "$dir/control.sock"

[bitbucket]
status_url = "http://127.0.0.1:$port/status"
command = ["$bbsim", "--dir", "$dir/sim", "--port", "$port"]
monitor_interval = "500ms"
monitor_timeout = "500ms"
startup_timeout = "10s"
stop_timeout = "1s"
kill_timeout = "1s"
max_restarts = 1000
restart_window = "1s"
TOML
RUST_LOG=info "$bbwd" run -c "$dir/bbwd.toml" > "$dir/bbwd.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
rss() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }
hwm() { awk '/^VmHWM/ {print $2}' /proc/$pid/status; }
restarts() { s=$(grep -c ' START ' "$dir/sim/events.log" 2>/dev/null) || true; echo $(( ${s:-1} - 1 )); }
sleep 3
echo "bbwd $bbwd pid $pid; RSS at start: $(rss) KiB"
start=$(date +%s)
n=0
while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
    curl -s -m 1 "http://127.0.0.1:$port/_sim/crash" > /dev/null || true
    n=$((n + 1))
    sleep 2
    if [ $((n % 30)) -eq 0 ]; then
        echo "$(( $(date +%s) - start )) s: $n crashes sent, $(restarts) restarts, RSS $(rss) KiB, VmHWM $(hwm) KiB"
    fi
done
sleep 3
echo "after $secs s: $n crashes sent, $(restarts) restarts done, RSS $(rss) KiB (VmHWM $(hwm) KiB)"
