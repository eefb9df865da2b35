#!/usr/bin/env bash
# The demo: one node supervising a Bitbucket simulator (no Bitbucket needed), a crash injected
# and corrected, `bbwd status` printed before and after. Everything lives in a temp dir that is
# removed at the end; only processes this script started are stopped. Then the pair (part 2, at
# the end): two nodes in network namespaces, the active one powered off through its BMC.
set -euo pipefail
. "$(dirname "$0")/lib/root.sh"
bbwd_become_root "$0" "$@"
cd "$(dirname "$0")/.."

bash scripts/setup.sh demo
echo "== building bbwd and the Bitbucket simulator (release)"
. scripts/lib/release.sh
bbwd_release_build
cargo build --release --quiet -p bbwd-tests
BBWD=$PWD/$BBWD_RELEASE_BIN
export BBWD_BIN=$BBWD   # the pair part's nodes run it too
SIM=$PWD/target/release/bbsim

DIR=$(mktemp -d /tmp/bbwd-demo-XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 17990)
BBWD_PID=
cleanup() {
  if [ -n "$BBWD_PID" ] && kill -0 "$BBWD_PID" 2>/dev/null; then
    kill -TERM "$BBWD_PID"; wait "$BBWD_PID" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT

# The embedded default: a single node, short intervals so the demo takes seconds, not minutes.
cat > "$DIR/bbwd.toml" <<CONF
[node]
name = "demo"
state_dir = "$DIR/state"
control_socket = "$DIR/control.sock"

[bitbucket]
status_url = "http://127.0.0.1:$PORT/status"
command = ["$SIM", "--dir", "$DIR/sim", "--port", "$PORT", "--starting-for", "1s"]
monitor_interval = "500ms"
monitor_timeout = "1s"
startup_timeout = "10s"
failures_before_action = 2
stop_timeout = "3s"
kill_timeout = "2s"
max_restarts = 3
restart_window = "1h"

[notify]
command = ["/bin/sh", "-c", "echo \"  notify: \$BBWD_EVENT - \$BBWD_DETAIL\" >> $DIR/notify.log"]
CONF

status() { "$BBWD" status -c "$DIR/bbwd.toml" || true; }
wait_state() { # wait_state STATE TIMEOUT_S
  local until=$((SECONDS + $2))
  while [ $SECONDS -lt $until ]; do
    # status exits 1 (WARNING) while correcting: read its output, not its exit code.
    out=$("$BBWD" status --json -c "$DIR/bbwd.toml" 2>/dev/null || true)
    grep -q "^  \"state\": \"$1\"" <<<"$out" && return 0
    sleep 0.2
  done
  echo "demo: state $1 not reached in $2 s" >&2; return 1
}

echo "== bbwd check-config"
"$BBWD" check-config -c "$DIR/bbwd.toml"
echo "== starting bbwd run (log: $DIR/bbwd.log)"
"$BBWD" run -c "$DIR/bbwd.toml" > "$DIR/bbwd.log" 2>&1 &
BBWD_PID=$!
wait_state running 20
echo; echo "== bbwd status: healthy"; status

echo; echo "== injecting a crash: the simulated Bitbucket exits with status 1"
curl -fsS "http://127.0.0.1:$PORT/_sim/crash" >/dev/null || true
sleep 0.5
wait_state running 20
echo; echo "== bbwd status: crash detected and corrected (restarted at once)"; status

echo; echo "== injecting a hang: /status stops answering and SIGTERM is ignored"
curl -fsS "http://127.0.0.1:$PORT/_sim/hang" >/dev/null || true
sleep 1
wait_state correcting 20
echo; echo "== bbwd status: correcting (SIGTERM sent, ignored; SIGKILL follows after stop_timeout)"; status
wait_state running 30
echo; echo "== bbwd status: two failed checks, SIGTERM, SIGKILL after stop_timeout, restart"; status

echo; echo "== stopping bbwd (SIGTERM): it stops Bitbucket gracefully first"
kill -TERM "$BBWD_PID"; wait "$BBWD_PID"; echo "bbwd exited with status $?"; BBWD_PID=
echo; echo "== what notify.command was told"; cat "$DIR/notify.log"
echo; echo "== bbwd status with the daemon down (exit 2, CRITICAL)"; status

# Part 2: the cold-standby pair (tests/src/bin/pairdemo.rs on tests/src/pairlab.rs): two nodes in
# network namespaces, each powered through a simulated BMC (ipmi_sim); the active one loses power,
# the standby fences it and takes over. It cleans up its namespaces and processes itself.
echo; echo "=================================================================================="
echo "== part 2: the cold-standby pair: two nodes, a BMC each, the active one loses power"
echo "=================================================================================="
"$PWD/target/release/pairdemo"
