#!/bin/sh
# Runs inside the busybox guest with the i6300esb watchdog (init.sh runs it as /mnt/host/run.sh;
# tests/tests/vm_watchdog.rs asserts on what it prints). The host's /mnt/host/params sets:
#   SCENARIO      stop: healthy for HEALTHY_S, then SIGSTOP bbwd and wait for the reset
#                 term: healthy for HEALTHY_S, then SIGTERM bbwd and stay up for QUIET_S
#   WD_TIMEOUT_S  [watchdog] timeout
# Lines for the host start with "BBWD-VM: "; bbwd's log and the simulator's events.log are
# written to the share (/mnt/host/out) so that they survive a reset of this guest.
set -u
. /mnt/host/params
say() { echo "BBWD-VM: $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
O=/mnt/host/out
W=/sys/class/watchdog/watchdog0
C=/tmp/bbwd/bbwd.toml
mkdir -p /tmp/bbwd "$O/sim"
cat > $C <<EOT
[node]
name = "vm"
state_dir = "/tmp/bbwd/state"
control_socket = "/tmp/bbwd/control.sock"

[bitbucket]
status_url = "http://127.0.0.1:7990/status"
command = ["/usr/local/bin/bbsim", "--dir", "$O/sim", "--port", "7990"]
monitor_interval = "1s"
monitor_timeout = "2s"
startup_timeout = "30s"
stop_timeout = "5s"
kill_timeout = "2s"

[watchdog]
device = "/dev/watchdog"
timeout = "${WD_TIMEOUT_S}s"
EOT
bbwd check-config -c $C || { say "check-config failed"; exit 1; }
say "identity=$(cat $W/identity 2>/dev/null | tr ' ' _) state-before=$(cat $W/state 2>/dev/null)"
bbwd run -c $C >"$O/bbwd.log" 2>&1 &
PID=$!
say "bbwd started pid=$PID"

# Healthy and armed: Bitbucket (the simulator) running and the device armed.
i=0
while :; do
  bbwd status --json -c $C >/tmp/status.json 2>/dev/null
  if grep -Eq '"armed": ?true' /tmp/status.json && grep -Eq '"state": ?"running"' /tmp/status.json; then
    break
  fi
  i=$((i + 1))
  [ $i -ge 300 ] && { say "not armed after 60s"; cp /tmp/status.json "$O/"; exit 1; }
  sleep 0.2
done
cp /tmp/status.json "$O/status-armed.json"
say "armed uptime=$(up) state=$(cat $W/state 2>/dev/null) timeout=$(cat $W/timeout 2>/dev/null)"

sleep "$HEALTHY_S"
kill -0 $PID 2>/dev/null || { say "bbwd died while healthy"; exit 1; }
bbwd status --json -c $C >"$O/status-healthy.json" 2>/dev/null
say "healthy-done uptime=$(up)"

case $SCENARIO in
  stop)
    kill -STOP $PID
    say "stopped uptime=$(up)"
    sleep $((WD_TIMEOUT_S * 6))
    say "no-reset after $((WD_TIMEOUT_S * 6))s"
    ;;
  term)
    kill -TERM $PID
    wait $PID
    say "exited rc=$? uptime=$(up) state-after=$(cat $W/state 2>/dev/null)"
    sleep "$QUIET_S"
    say "quiet-done uptime=$(up)"
    ;;
esac
