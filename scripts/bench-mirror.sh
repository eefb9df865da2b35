#!/usr/bin/env bash
# Mirror-farm benchmark: how fast a real HAProxy takes a mirror node out after Bitbucket crashes,
# through bbwd's agent check (agent-inter 200ms), and how fast it is back in after bbwd restarted
# Bitbucket. Runs the end-to-end test tests/tests/mirror_haproxy.rs (release build) with
# BBWD_MIRROR_BENCH_RUNS crash rounds on one node; each round: GET /_sim/crash on the simulator,
# then HAProxy's `show stat` polled every 10 ms until the server is DOWN, then until it is UP.
# Prints a Markdown table (also written to target/bench-mirror.md). Figures, not asserts: this
# machine is shared and noisy, so nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_MIRROR_RUNS:-20}

command -v haproxy >/dev/null || { echo "bench-mirror: haproxy missing: run scripts/setup.sh as root" >&2; exit 1; }
cargo build --release --quiet -p bbwd -p bbwd-tests
OUT=$(mktemp /tmp/bbwd-bench-mirror-XXXXXX)
trap 'rm -f "$OUT"' EXIT
BBWD_MIRROR_BENCH_RUNS=$RUNS cargo test --release --quiet -p bbwd-tests --test mirror_haproxy \
  -- --nocapture --exact haproxy_takes_mirror_nodes_out_and_back_while_requests_keep_succeeding \
  >"$OUT" 2>&1 || { cat "$OUT"; echo "bench-mirror: the test failed" >&2; exit 1; }

# stats FIELD: "min median max mean" in ms over the rounds.
stats() {
  grep -o "$1=[0-9]*" "$OUT" | cut -d= -f2 | sort -n | awk '
    { v[NR] = $1; sum += $1 }
    END { if (NR == 0) { print "- - - -"; exit }
          med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%d %s %d %.0f\n", v[1], med, v[NR], sum / NR }'
}
read -r dmin dmed dmax dmean < <(stats crash_to_down_ms)
read -r umin umed umax umean < <(stats down_to_up_ms)
rounds=$(grep -c "crash_to_down_ms=" "$OUT" || true)
client=$(grep -o "client through HAProxy: .*" "$OUT" | head -1)
haproxy_version=$(haproxy -v | head -1 | awk '{print $3}')

{
  echo "| figure ($rounds crash rounds, agent-inter 200ms, HAProxy $haproxy_version) | min | median | max | mean |"
  echo "|---|---|---|---|---|"
  echo "| crash -> HAProxy marks the server DOWN (via the agent check) | $dmin ms | $dmed ms | $dmax ms | $dmean ms |"
  echo "| DOWN -> UP again (bbwd restarted Bitbucket, first healthy /status, next agent check) | $umin ms | $umed ms | $umax ms | $umean ms |"
  echo
  echo "$client (requests through HAProxy during the whole test, all phases)"
} | tee target/bench-mirror.md
