#!/usr/bin/env bash
# VIP move benchmark: the time from "start adding the VIP" until the first gratuitous ARP is on
# the wire, seen by a receiver in another network namespace.
#   bbwd:     bbwd_platform::vip with its sockets already open (as the daemon holds them):
#             netlink RTM_NEWADDR + one GARP from the open packet socket (viptool takeover).
#   baseline: `ip addr add` + Habets' `arping -U -S VIP -i eth0 -c1 -w0 VIP` (arping 2.23),
#             started from one bash inside the namespace (t0 = $EPOCHREALTIME, no fork).
# "On the wire" = the receiver's kernel timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME, which all
# namespaces share) of the frame arriving over the veth pair, minus t0 taken by the mover just
# before it starts. Also reported: bbwd's in-process time for add + send (both syscalls done),
# and the same for an IPv6 VIP (RTM_NEWADDR nodad + unsolicited NA; no tool baseline).
# Figures, not asserts. Needs root. Prints a Markdown table (also target/bench-vip.md).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_VIP_RUNS:-30}
GAP_MS=${BENCH_VIP_GAP_MS:-100}

[ "$(id -u)" -eq 0 ] || { echo "bench-vip: run as root" >&2; exit 1; }
command -v arping >/dev/null || { echo "bench-vip: arping missing (scripts/setup.sh)" >&2; exit 1; }
cargo build --release --quiet -p bbwd-tests --bin viptool
V=$PWD/target/release/viptool

P=bbvb$$
A=${P}a
B=${P}b
DIR=$(mktemp -d /tmp/bbwd-bench-vip-XXXXXX)
LISTENER=
cleanup() {
  if [ -n "$LISTENER" ]; then kill "$LISTENER" 2>/dev/null || true; wait "$LISTENER" 2>/dev/null || true; fi
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

for ns in "$A" "$B"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$A" link add eth0 type veth peer name eth0 netns "$B"
ip -n "$A" link set eth0 address 02:80:00:00:00:0a up
ip -n "$B" link set eth0 address 02:80:00:00:00:0b up
ip -n "$A" addr add 10.80.0.1/24 dev eth0
ip -n "$B" addr add 10.80.0.2/24 dev eth0
ip -n "$A" addr add fd00:80::1/64 dev eth0 nodad
ip -n "$B" addr add fd00:80::2/64 dev eth0 nodad
for ns in "$A" "$B"; do
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
done

start_listener() { # start_listener ADDR OUT: receiver in B, RUNS frames, ready when it says so
  ip netns exec "$B" "$V" listen eth0 "$1" 120000 "$RUNS" > "$2" &
  LISTENER=$!
  for _ in $(seq 100); do grep -q ready "$2" 2>/dev/null && return; sleep 0.05; done
  echo "bench-vip: listener not ready" >&2; exit 1
}
finish_listener() { wait "$LISTENER"; LISTENER=; }

# stats LABEL FILE: FILE holds one figure in microseconds per line -> a Markdown row
# (median, 90th percentile by nearest rank, range, count).
stats() {
  sort -g "$2" | awk -v label="$1" '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "| " label " | no data | | | |"; exit }
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      p90 = v[int((NR * 9 + 9) / 10)]
      printf "| %s | %.1f us | %.1f us | %.1f - %.1f us | %d |\n", label, med, p90, v[1], v[NR], NR
    }'
}

# --- bbwd, IPv4 ---------------------------------------------------------------------------------
start_listener 10.80.0.50 "$DIR/rx4"
ip netns exec "$A" "$V" takeover eth0 10.80.0.50/24 "$RUNS" "$GAP_MS" > "$DIR/tx4"
finish_listener
paste "$DIR/tx4" <(grep -v ready "$DIR/rx4") | awk '{ printf "%.3f\n", ($3 - $1) / 1000 }' > "$DIR/bbwd-wire"
awk '{ printf "%.3f\n", ($2 - $1) / 1000 }' "$DIR/tx4" > "$DIR/bbwd-inproc"

# --- bbwd, IPv6 ---------------------------------------------------------------------------------
start_listener fd00:80::50 "$DIR/rx6"
ip netns exec "$A" "$V" takeover eth0 fd00:80::50/64 "$RUNS" "$GAP_MS" > "$DIR/tx6"
finish_listener
paste "$DIR/tx6" <(grep -v ready "$DIR/rx6") | awk '{ printf "%.3f\n", ($3 - $1) / 1000 }' > "$DIR/bbwd6-wire"

# --- baseline: ip addr add + arping -U --------------------------------------------------------
start_listener 10.80.0.50 "$DIR/rxb"
ip netns exec "$A" bash -c '
  for _ in $(seq '"$RUNS"'); do
    ip addr del 10.80.0.50/24 dev eth0 2>/dev/null || true
    sleep '"$(awk -v g="$GAP_MS" 'BEGIN { print g / 1000 }')"'
    t0=$EPOCHREALTIME
    ip addr add 10.80.0.50/24 dev eth0
    arping -q -U -S 10.80.0.50 -i eth0 -c1 -w0 10.80.0.50 >/dev/null 2>&1 || true
    echo "${t0/./}000"
  done
  ip addr del 10.80.0.50/24 dev eth0' > "$DIR/txb"
finish_listener
paste "$DIR/txb" <(grep -v ready "$DIR/rxb") | awk '{ printf "%.3f\n", ($2 - $1) / 1000 }' > "$DIR/base-wire"

{
  echo "| figure ($RUNS runs each, $GAP_MS ms apart) | median | p90 | range | runs |"
  echo "|---|---|---|---|---|"
  stats "bbwd: netlink add + first GARP, on the wire (IPv4)" "$DIR/bbwd-wire"
  stats "bbwd: netlink add + GARP send, in process (both syscalls returned)" "$DIR/bbwd-inproc"
  stats "bbwd: netlink add (nodad) + first unsolicited NA, on the wire (IPv6)" "$DIR/bbwd6-wire"
  stats "baseline: ip addr add + arping -U, on the wire (IPv4)" "$DIR/base-wire"
} | tee target/bench-vip.md
