#!/usr/bin/env bash
# Failover time of bbwd's pair mode on the pair lab, next to keepalived's on the same lab.
# The lab is tests/src/pairlab.rs (driven by the test-only `pairdemo bench`): two servers, a
# switch and a client in network namespaces, each server powered through a real BMC (ipmi_sim);
# each server runs `bbwd run` (pair mode: heartbeat on eth0 and eth1, IPMI fencing of the peer's
# BMC, the VIP 10.77.0.50 on eth0), which runs a Bitbucket simulator. Per run: n1 powered on alone
# (it fences the silent n2, which is off, and serves), then n2 (it stands by), then n1 powered off
# through its BMC (its node script cuts its links, then SIGSTOPs and SIGKILLs everything on it: a
# power loss). Failover = from that moment to the end of the first request the client (a GET of
# the VIP every 20 ms, 1 s timeout each) got answered by n2. The split comes from n2's
# `bbwd status --json` `fencing.last_takeover[].at_ms`: detect (-> peer lost), fence delay
# (-> fence started), fence (-> fence confirmed), start (-> Bitbucket healthy), VIP (-> vip added),
# client (-> first answer seen by the client).
#   heartbeat_interval 200ms, peer_timeout 1s     (tests/src/pairnode.rs, the lab's config)
#   heartbeat_interval 200ms, peer_timeout 600ms
# Then scripts/bench-keepalived.sh on the same lab (BENCH_FAILOVER_KEEPALIVED=0 skips it), so
# both are measured on the same machine at the same time.
# Figures, not asserts. Needs root. Prints Markdown tables (also target/bench-failover.md).
# usage: sudo bash scripts/bench-failover.sh      (BENCH_FAILOVER_RUNS, default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_FAILOVER_RUNS:-7}

[ "$(id -u)" -eq 0 ] || { echo "bench-failover: run as root" >&2; exit 1; }
for t in ipmi_sim ipmitool ip; do
  command -v "$t" >/dev/null || { echo "bench-failover: $t missing (scripts/setup.sh)" >&2; exit 1; }
done
. scripts/lib/release.sh
if [ -z "${BBWD_BIN:-}" ]; then
  bbwd_release_build   # the nodes run the bbwd that ships
  export BBWD_BIN=$PWD/$BBWD_RELEASE_BIN
fi
cargo build --release --quiet -p bbwd-tests --bin pairdemo --bin bbsim
B=$PWD/target/release/pairdemo

DIR=$(mktemp -d /tmp/bbwd-bench-failover-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

# row LABEL FILE: FILE holds pairdemo's "run N failover_ms F bmc_ms B detect_ms D ..." lines.
row() {
  awk -v label="$1" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $1 == "run" {
      n++; f[n] = $4; d[n] = $8; w[n] = $10; x[n] = $12; s[n] = $14; v[n] = $16; c[n] = $18; dead += $20
    }
    END {
      if (n == 0) { print "| " label " | no data |||||||||"; exit }
      mf = med(f, n); lo = f[1]; hi = f[n]
      printf "| %s | **%.2f s** | %.2f - %.2f s | %d ms | %d ms | %d ms | %d ms | %d ms | %d ms | %d | %d |\n", label, mf / 1000, lo / 1000, hi / 1000, med(d, n), med(w, n), med(x, n), med(s, n), med(v, n), med(c, n), n, dead
    }' "$2"
}

echo "bench-failover: bbwd, peer_timeout 1s, $RUNS runs" >&2
"$B" bench 1000 "$RUNS" > "$DIR/t1000"
echo "bench-failover: bbwd, peer_timeout 600ms, $RUNS runs" >&2
"$B" bench 600 "$RUNS" > "$DIR/t600"

{
  echo "| bbwd $(git describe --always --dirty 2>/dev/null || echo '?'), heartbeat_interval 200ms | failover, median | range | detect | fence delay | fence | start | VIP | client | runs | answers from n1 after its power loss |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  row "peer_timeout 1s" "$DIR/t1000"
  row "peer_timeout 600ms" "$DIR/t600"
  echo
  echo "(split columns: medians of each phase, so they need not add up to the median failover)"
  echo
  echo "Raw runs (ms; bmc_ms = ipmi_sim's delay before the power loss, not counted):"
  echo
  sed 's/^/    1s    /' "$DIR/t1000"
  sed 's/^/    600ms /' "$DIR/t600"
} | tee target/bench-failover.md

if [ "${BENCH_FAILOVER_KEEPALIVED:-1}" != 0 ]; then
  if command -v keepalived >/dev/null; then
    echo >&2; echo "bench-failover: keepalived on the same lab (scripts/bench-keepalived.sh)" >&2
    BENCH_KA_RUNS=$RUNS bash scripts/bench-keepalived.sh
  else
    echo "bench-failover: keepalived missing (scripts/setup.sh): baseline not measured" >&2
  fi
fi
