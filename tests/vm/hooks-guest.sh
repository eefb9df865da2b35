#!/bin/sh
# Runs inside the systemd guest for tests/tests/vm_hooks.rs (bbwd-vmtest.service runs it as
# /mnt/host/run.sh, then powers off). /mnt/host/sysroot holds /usr/sbin/bbwd,
# /usr/local/bin/bbsim, a pair-mode /etc/bbwd/bbwd.toml (its key and the peer BMC's password)
# and systemd/bbwd.service exactly as shipped: NO drop-in. eth0 is up with 10.0.2.15/24
# (qemu's user-mode network; the initramfs set it); the peer's BMC is an ipmi_sim on the host,
# reached as 10.0.2.2, with the peer powered off.
#
# The scenario, as the seeds' DRBD design runs it: bbwd boots alone, fences the (off) peer,
# runs [hooks] before_start (mount Bitbucket's home), starts Bitbucket (the simulator, whose
# home is on that mount), adds the VIP. `systemctl stop bbwd` stops Bitbucket, then runs
# [hooks] after_stop (unmount). The mount must be visible from here (the host's mount
# namespace: not hidden in the unit's) while bbwd serves, and gone after the stop.
set -u
O=/mnt/host/out
R=$O/result
HOME_DIR=/var/atlassian/application-data/bitbucket
VIP=10.0.2.50
up() { cut -d' ' -f1 /proc/uptime; }
res() { echo "$1=$2" >>"$R"; echo "BBWD-VM: $1=$2"; }
show() { systemctl show -P "$1" bbwd.service; }
since() { echo "$(up) $1" | awk '{printf "%.3f", $1 - $2}'; }
# `findmnt` of the home as "SOURCE FSTYPE", or "none".
home_mount() { findmnt -n -o SOURCE,FSTYPE --mountpoint "$HOME_DIR" 2>/dev/null || echo none; }
# Whether this kernel has the VIP as a local address (the image has no `ip`).
vip_local() { grep -q -- "-- $VIP\$" /proc/net/fib_trie 2>/dev/null && echo yes || echo no; }
: >"$R"
res boot_uptime "$(up)"
cp -a /mnt/host/sysroot/. /
res eth0 "$(cat /sys/class/net/eth0/operstate 2>/dev/null || echo missing)"
# The admin's part: the mount point exists, empty, on the root filesystem.
mkdir -p "$HOME_DIR"
res mount_before "$(home_mount)"

systemctl daemon-reload
T0=$(up)
systemctl start bbwd.service
res start_rc $?
res active_after_start "$(show ActiveState)"

# Serving: the pair role active with Bitbucket running and the VIP held. bbwd first reads the
# peer's BMC, confirms the peer off a second later, then runs the takeover; a hook that fails
# backs off and retries, so this never becomes true then.
# Bounded by 45 s of guest uptime (it serves within a few seconds; `bbwd status` itself takes
# a few hundred ms under TCG).
END=$(echo "$(up)" | awk '{printf "%d", $1 + 45}')
serving=no
while [ "$(up | cut -d. -f1)" -lt "$END" ]; do
  bbwd status --json >"$O/status-serving.json" 2>/dev/null
  if grep -Eq '"role": *"active"' "$O/status-serving.json" &&
    grep -Eq '"state": *"running"' "$O/status-serving.json" &&
    grep -Eq '"held": *true' "$O/status-serving.json"; then
    serving=yes
    break
  fi
  sleep 0.2
done
res serving "$serving"
res serving_s "$(since "$T0")"
journals() {
  journalctl -b -u bbwd.service --no-pager -o short-monotonic >"$O/bbwd.journal" 2>&1
  journalctl -b --no-pager -o short-monotonic >"$O/full.journal" 2>&1
}
if [ "$serving" = no ]; then
  # A takeover that failed (e.g. a hook refused) may have left bbwd self-fenced, whose stop
  # can take TimeoutStopSec: the test fails on what is here, no stop.
  journals
  res done 1
  exit 0
fi
res mount_serving "$(home_mount)"
res vip_serving "$(vip_local)"
# Bitbucket's home is the mounted filesystem: the simulator writes its events there.
SIM=$(awk '$2 == "START" { sub("pid=", "", $3); p = $3 } END { print p }' "$HOME_DIR/events.log" 2>/dev/null)
res sim_pid "${SIM:-none}"
N=$(grep -c ' START ' "$HOME_DIR/events.log" 2>/dev/null)
res sim_starts_on_mount "${N:-0}"
findmnt -n -o SOURCE,FSTYPE,TARGET,OPTIONS --mountpoint "$HOME_DIR" >"$O/findmnt-serving.txt" 2>&1

# Release on stop: VIP, Bitbucket, then after_stop (the unmount: it succeeds only once nothing
# of Bitbucket's uses the home any more).
T1=$(up)
systemctl stop bbwd.service
res stop_rc $?
res stop_s "$(since "$T1")"
res active_after_stop "$(show ActiveState)"
res result_after_stop "$(show Result)"
res mount_after_stop "$(home_mount)"
res vip_after_stop "$(vip_local)"
if [ -n "$SIM" ]; then
  res sim_alive_after_stop "$(kill -0 "$SIM" 2>/dev/null && echo yes || echo no)"
fi

# A site without mount hooks drops CAP_SYS_ADMIN with a "~" drop-in (the unit's comment).
res caps_shipped "$(show CapabilityBoundingSet)"
mkdir -p /etc/systemd/system/bbwd.service.d
printf '[Service]\nCapabilityBoundingSet=~CAP_SYS_ADMIN\n' >/etc/systemd/system/bbwd.service.d/50-no-mounts.conf
systemctl daemon-reload
res caps_with_dropin "$(show CapabilityBoundingSet)"

journals
res done 1
