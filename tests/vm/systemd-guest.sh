#!/bin/sh
# Runs inside the systemd guest (bbwd-vmtest.service runs it as /mnt/host/run.sh, then powers
# off; tests/tests/vm_systemd.rs asserts on /mnt/host/out/result and the journal copied there).
# /mnt/host/sysroot holds /usr/sbin/bbwd, /usr/local/bin/bbsim, /etc/bbwd/bbwd.toml and
# systemd/bbwd.service exactly as shipped; /mnt/host/dropin.conf is the test's drop-in
# (a shorter WatchdogSec), installed only after `systemd-analyze verify` of the shipped unit.
set -u
O=/mnt/host/out
R=$O/result
up() { cut -d' ' -f1 /proc/uptime; }
res() { echo "$1=$2" >>"$R"; echo "BBWD-VM: $1=$2"; }
show() { systemctl show -P "$1" bbwd.service; }
: >"$R"
res boot_uptime "$(up)"
cp -a /mnt/host/sysroot/. /

systemd-analyze verify /etc/systemd/system/bbwd.service >"$O/verify.txt" 2>&1
res verify_rc $?

mkdir -p /etc/systemd/system/bbwd.service.d
cp /mnt/host/dropin.conf /etc/systemd/system/bbwd.service.d/50-vmtest.conf
systemctl daemon-reload
# systemd logs each sd_notify message it accepts at debug level: proof that READY came first.
systemd-analyze log-level debug

# Type=notify: `systemctl start` returns once bbwd sent READY=1.
T0=$(up)
systemctl start bbwd.service
res start_rc $?
res start_s "$(echo "$(up) $T0" | awk '{printf "%.3f", $1 - $2}')"
res active_after_start "$(show ActiveState)"
res sim_starts_at_ready "$(grep -c ' START ' /var/lib/bbsim/events.log 2>/dev/null)"

# bbwd's STATUS= text reaches systemd once the simulator is healthy.
i=0
while [ $i -lt 150 ]; do
  case "$(show StatusText)" in running*) break ;; esac
  i=$((i + 1)); sleep 0.2
done
res status_text "$(show StatusText)"
PID1=$(show MainPID)
res main_pid_1 "$PID1"
SIM1=$(awk '$2 == "START" { sub("pid=", "", $3); p = $3 } END { print p }' /var/lib/bbsim/events.log)
res sim_pid_1 "$SIM1"
res restarts_before "$(show NRestarts)"

# A hung agent: systemd's watchdog must kill and restart bbwd; Bitbucket keeps running.
kill -STOP "$PID1"
T1=$(up)
res stopped_uptime "$T1"
i=0
while [ $i -lt 600 ]; do
  P=$(show MainPID)
  if [ "$(show ActiveState)" = active ] && [ "$P" != 0 ] && [ "$P" != "$PID1" ]; then break; fi
  i=$((i + 1)); sleep 0.1
done
T2=$(up)
res restart_s "$(echo "$T2 $T1" | awk '{printf "%.3f", $1 - $2}')"
PID2=$(show MainPID)
res main_pid_2 "$PID2"
res restarts_after "$(show NRestarts)"
res active_after_restart "$(show ActiveState)"
# Let the new bbwd settle (re-adopt, first healthy check) before looking at the simulator.
i=0
while [ $i -lt 150 ]; do
  case "$(show StatusText)" in running*) break ;; esac
  i=$((i + 1)); sleep 0.2
done
res status_text_2 "$(show StatusText)"
res sim_alive_after_restart "$(kill -0 "$SIM1" 2>/dev/null && echo yes || echo no)"

# A clean stop: bbwd stops the simulator gracefully (TERM, then EXIT code=0) and exits.
systemctl stop bbwd.service
res stop_rc $?
res active_after_stop "$(show ActiveState)"
res result_after_stop "$(show Result)"
res sim_alive_after_stop "$(kill -0 "$SIM1" 2>/dev/null && echo yes || echo no)"

cp /var/lib/bbsim/events.log "$O/sim-events.log" 2>/dev/null
journalctl -b -u bbwd.service --no-pager -o short-monotonic >"$O/bbwd.journal" 2>&1
journalctl -b --no-pager -o short-monotonic >"$O/full.journal" 2>&1
res done 1
