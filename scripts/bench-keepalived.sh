#!/usr/bin/env bash
# Failover baseline: keepalived (Debian's, VRRP) on the pair lab, the figure bbwd's pair mode is
# measured against. The lab is tests/src/pairlab.rs (driven by the test-only `pairbench`): two
# servers, a switch and a client in network namespaces, each server powered through a real BMC
# (ipmi_sim). Each server runs keepalived (VRRP on eth0, the VIP 10.77.0.50 on eth0; n1 MASTER
# priority 150, n2 BACKUP 100) and a Bitbucket simulator bound to the VIP (ip_nonlocal_bind);
# the client GETs the VIP every 20 ms (1 s timeout each). Per run n1 is powered off through its
# BMC: its node script cuts its links, then SIGSTOPs and SIGKILLs everything on it (a power
# loss: nothing graceful, no priority-0 advert). Failover = from that moment to the end of the
# first request the VIP answered from n2. keepalived's RSS is the sum over its processes on a
# node, before the fault. keepalived starts after a random delay below one advert interval, so
# the power loss lands at a random point of the advert cycle (ipmi_sim acts at its 1 s tick,
# which would otherwise phase-lock them).
#   advert_int 1   (VRRPv2, keepalived's default)
#   advert_int 0.2 (VRRPv3: sub-second adverts need version 3)
# Figures, not asserts. Needs root. Prints a Markdown table (also target/bench-keepalived.md).
# usage: sudo bash scripts/bench-keepalived.sh      (BENCH_KA_RUNS, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_KA_RUNS:-10}

[ "$(id -u)" -eq 0 ] || { echo "bench-keepalived: run as root" >&2; exit 1; }
for t in keepalived ipmi_sim ipmitool ip; do
  command -v "$t" >/dev/null || { echo "bench-keepalived: $t missing (scripts/setup.sh)" >&2; exit 1; }
done
cargo build --release --quiet -p bbwd-tests --bin pairbench --bin bbsim
B=$PWD/target/release/pairbench

DIR=$(mktemp -d /tmp/bbwd-bench-ka-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

# row LABEL FILE: FILE holds "run N failover_ms F bmc_ms B rss_n1_kib R1 rss_n2_kib R2 ..." lines.
row() {
  awk -v label="$1" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $1 == "run" { n++; f[n] = $4; b[n] = $6; r1[n] = $8; r2[n] = $10; dead += $12 }
    END {
      if (n == 0) { print "| " label " | no data | | | | |"; exit }
      mf = med(f, n); lo = f[1]; hi = f[n]
      printf "| %s | **%.2f s** | %.2f - %.2f s | %.1f / %.1f MiB | %d | %d |\n", label, mf / 1000, lo / 1000, hi / 1000, med(r1, n) / 1024, med(r2, n) / 1024, n, dead
    }' "$2"
}

echo "bench-keepalived: advert_int 1 (VRRPv2), $RUNS runs" >&2
"$B" keepalived 1 2 "$RUNS" > "$DIR/v2"
echo "bench-keepalived: advert_int 0.2 (VRRPv3), $RUNS runs" >&2
"$B" keepalived 0.2 3 "$RUNS" > "$DIR/v3"

{
  echo "| keepalived $(keepalived --version 2>&1 | head -1 | awk '{ print $2 }') | failover, median | range | RSS per node n1 / n2 (median) | runs | answers from n1 after its power loss |"
  echo "|---|---|---|---|---|---|"
  row "advert_int 1, VRRPv2" "$DIR/v2"
  row "advert_int 0.2, VRRPv3" "$DIR/v3"
  echo
  echo "Raw runs (failover_ms, bmc_ms = ipmi_sim's delay before the power loss, not counted):"
  echo
  sed 's/^/    v2 /' "$DIR/v2"
  sed 's/^/    v3 /' "$DIR/v3"
} | tee target/bench-keepalived.md
