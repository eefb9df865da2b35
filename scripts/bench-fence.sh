#!/usr/bin/env bash
# Fence latency on one ipmi_sim (RMCP+, cipher suite 3), RUNS times each (default 7):
#   * bbwd fence off            until the BMC confirms off (the command's wall time)
#   * fence_ipmilan --lanplus --cipher=3 --action=off   (Debian fence-agents, its defaults)
#   * ipmitool chassis power off, then `chassis power status` every 50 ms until off
#   * the floor: ipmi_sim's own power-off, from the off command to the node process gone
#     (SIGTERM at its next 1 s tick), measured apart
# For bbwd it also reports how long after the node was really gone the off was confirmed, and
# bbwd fence off with cipher_suite = "auto" (it lists the BMC's suites, then takes 3).
# Then cipher suite 17, which ipmi_sim lacks, against the test BMC (tests/src/testbmc.rs, the
# `testbmc` binary: RMCP+ suites 3 and 17, power off at once, so the figure is all bbwd's):
#   * bbwd fence off with cipher_suite = 17, 3, and "auto" (17 after Get Channel Cipher Suites)
#   * ipmitool -C 17 chassis power off + status, for scale
# Prints markdown tables (median and range, ms) for BENCHMARKS.md.
#
# usage: scripts/bench-fence.sh [RUNS]     (as root: installs openipmi, ipmitool, fence-agents)
set -euo pipefail
RUNS=${1:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/scripts/lib/release.sh"
if [ -z "${BBWD_BIN:-}" ]; then (cd "$HERE" && bbwd_release_build); fi
BBWD=${BBWD_BIN:-$HERE/$BBWD_RELEASE_BIN}
(cd "$HERE" && cargo build --release -q -p bbwd-tests --bin testbmc)
TESTBMC=$HERE/target/release/testbmc
"$HERE/scripts/setup.sh"   # openipmi, ipmitool
# fence_ipmilan, the baseline: only this benchmark needs it (a large package), so not setup.sh.
if ! command -v fence_ipmilan >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fence-agents >/dev/null
fi
for t in ipmi_sim ipmitool fence_ipmilan python3; do
  command -v "$t" >/dev/null || { echo "bench-fence: $t missing" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/bbwd-bench-fence.XXXXXX)
SIM_PID=
TB_PID=
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
  [ -n "$TB_PID" ] && kill "$TB_PID" 2>/dev/null && wait "$TB_PID" 2>/dev/null || true
  # ipmi_sim does not end its node: end ours, by the PID it recorded.
  [ -f "$WORK/node.pid" ] && kill "$(cat "$WORK/node.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
VMPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/node.sh" <<'EOF'
#!/bin/sh
echo $$ > "$1/node.pid"
trap 'exit 0' TERM INT
while :; do sleep 0.2 & wait $!; done
EOF
cat > "$WORK/lan.conf" <<EOF
name "bench"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $PORT
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid 0123456789abcdef0123456789abcdef
  endlan
  serial 15 127.0.0.1 $VMPORT codec VM
  startcmd "/bin/sh $WORK/node.sh $WORK"
  startnow true
  poweroff_wait 2
  kill_wait 2
  user 2 true "admin" "secret" admin 10 md5
EOF
cat > "$WORK/node.emu" <<'EOF'
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 1000 0x0a
mc_enable 0x20
EOF
mkdir -p "$WORK/state"
ipmi_sim -n -c "$WORK/lan.conf" -f "$WORK/node.emu" -s "$WORK/state" >"$WORK/ipmi_sim.log" 2>&1 </dev/null &
SIM_PID=$!
printf 'secret\n' > "$WORK/pw"; chmod 600 "$WORK/pw"; head -c 32 /dev/urandom > "$WORK/key"; chmod 600 "$WORK/key"
cat > "$WORK/bbwd.toml" <<EOF
[node]
name = "bench"
state_dir = "$WORK/bbwd-state"
control_socket = "$WORK/control.sock"
[cluster]
peer = "peer"
listen = ["127.0.0.1:1"]
peer_addresses = ["127.0.0.1:2"]
key_file = "$WORK/key"
[fencing]
host = "127.0.0.1"
port = $PORT
username = "admin"
password_file = "$WORK/pw"
timeout = "10s"
EOF
{ cat "$WORK/bbwd.toml"; echo 'cipher_suite = "auto"'; } > "$WORK/bbwd-auto.toml"
# The test BMC (suites 3 and 17); its user is admin / s3cret-Pw17.
TB_PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TESTBMC" "$TB_PORT" 3,17 >"$WORK/testbmc.log" 2>&1 &
TB_PID=$!
printf 's3cret-Pw17\n' > "$WORK/tbpw"; chmod 600 "$WORK/tbpw"
for suite in 17 3 '"auto"'; do
  name=$(echo "$suite" | tr -d '"')
  { sed -e "s/^port = $PORT\$/port = $TB_PORT/" -e "s|$WORK/pw|$WORK/tbpw|" "$WORK/bbwd.toml"
    echo "cipher_suite = $suite"; } > "$WORK/bbwd-tb-$name.toml"
done
sleep 1

export WORK PORT BBWD RUNS TB_PORT
python3 - <<'PY'
import os, statistics, subprocess, time

work, port, bbwd, runs = os.environ["WORK"], os.environ["PORT"], os.environ["BBWD"], int(os.environ["RUNS"])
ipmitool = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", port, "-U", "admin", "-P", "secret", "-C", "3"]

def node_pid():
    try:
        pid = int(open(f"{work}/node.pid").read())
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        return pid if st not in ("Z", "X") else None
    except (OSError, ValueError):
        return None

def power_on():
    subprocess.run(ipmitool + ["chassis", "power", "on"], check=True, capture_output=True)
    end = time.monotonic() + 10
    while node_pid() is None:
        assert time.monotonic() < end, "node did not power on"
        time.sleep(0.01)
    time.sleep(0.3)

def watch(cmd):
    """Runs cmd; returns (wall time, node gone -> command end)."""
    power_on()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    gone = None
    while p.poll() is None:
        if gone is None and node_pid() is None:
            gone = time.monotonic()
        time.sleep(0.002)
    end = time.monotonic()
    if gone is None and node_pid() is None:
        gone = end
    assert p.returncode == 0, f"{cmd[0]} failed: {p.stderr.read().decode()}"
    assert node_pid() is None, f"{cmd[0]} returned with the node still on"
    return end - t0, end - gone

def ipmitool_poll():
    subprocess.run(ipmitool + ["chassis", "power", "off"], check=True, capture_output=True)
    while b"is off" not in subprocess.run(ipmitool + ["chassis", "power", "status"], capture_output=True).stdout:
        time.sleep(0.05)

def floor():
    power_on()
    subprocess.run(ipmitool + ["chassis", "power", "off"], check=True, capture_output=True)
    t0 = time.monotonic()
    while node_pid() is not None:
        time.sleep(0.002)
    return time.monotonic() - t0

cases = [
    ("`bbwd fence off` (confirmed)", [bbwd, "fence", "off", "-c", f"{work}/bbwd.toml"]),
    ("`bbwd fence off`, `cipher_suite = \"auto\"` (lists the suites, takes 3)",
     [bbwd, "fence", "off", "-c", f"{work}/bbwd-auto.toml"]),
    ("`fence_ipmilan --lanplus --cipher=3 --action=off`",
     ["fence_ipmilan", "--lanplus", "--cipher=3", "--action=off", "--ip=127.0.0.1", f"--ipport={port}",
      "--username=admin", "--password=secret"]),
]
rows = []
for name, cmd in cases:
    res = [watch(cmd) for _ in range(runs)]
    rows.append((name, [r[0] for r in res], [r[1] for r in res]))
# ipmitool + polling: a python loop around the real ipmitool processes.
res = []
for _ in range(runs):
    power_on(); t0 = time.monotonic(); ipmitool_poll(); res.append(time.monotonic() - t0)
rows.append(("`ipmitool chassis power off` + status every 50 ms", res, None))
rows.append(("ipmi_sim's own power-off (floor: off command to node gone)", [floor() for _ in range(runs)], None))

ms = lambda v: f"{v * 1000:.0f}"
print(f"\n{runs} runs each, same ipmi_sim on 127.0.0.1, cipher suite 3\n")
print("| what | median ms | range ms | confirmed after node gone, median (range) ms |")
print("|---|---|---|---|")
for name, t, after in rows:
    a = f"{ms(statistics.median(after))} ({ms(min(after))}-{ms(max(after))})" if after else "-"
    print(f"| {name} | {ms(statistics.median(t))} | {ms(min(t))}-{ms(max(t))} | {a} |")

# The test BMC: power is a flag, off at once; on again through ipmitool before each run.
tb = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", os.environ["TB_PORT"], "-U", "admin",
      "-P", "s3cret-Pw17", "-C", "17"]
def tb_run(cmd, poll=False):
    subprocess.run(tb + ["chassis", "power", "on"], check=True, capture_output=True)
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    if poll:
        while b"is off" not in subprocess.run(tb + ["chassis", "power", "status"], capture_output=True).stdout:
            time.sleep(0.05)
    else:
        assert out.stdout == b"off\n", out.stdout
    return time.monotonic() - t0
tb_rows = [(f"`bbwd fence off`, `cipher_suite = {v}`",
            [tb_run([bbwd, "fence", "off", "-c", f"{work}/bbwd-tb-{n}.toml"]) for _ in range(runs)])
           for v, n in [("17", "17"), ("3", "3"), ('"auto"', "auto")]]
tb_rows.append(("`ipmitool -C 17 chassis power off` + `chassis power status`",
                [tb_run(tb + ["chassis", "power", "off"], True) for _ in range(runs)]))
print(f"\n{runs} runs each, the test BMC (tests/src/testbmc.rs) on 127.0.0.1, off at once\n")
print("| what | median ms | range ms |")
print("|---|---|---|")
for name, t in tb_rows:
    print(f"| {name} | {ms(statistics.median(t))} | {ms(min(t))}-{ms(max(t))} |")
PY
