#!/usr/bin/env bash
# Times from a hung bbwd (SIGSTOP) to the consequence, in the real-kernel guests of the VM tests
# (tests/src/vm.rs; qemu under TCG, Debian's kernel):
#   - i6300esb: SIGSTOP of `bbwd run` ([watchdog] device = "/dev/watchdog", timeout 10s) to qemu's
#     QMP WATCHDOG event (the guest's reset), both as the host saw them;
#   - systemd: SIGSTOP of bbwd under systemd/bbwd.service (WatchdogSec lowered to 4s by a drop-in,
#     RestartSec=2s as shipped) to the new bbwd active with a new MainPID (guest clock);
#   - the largest pet latency bbwd reported in the i6300esb guest (emulated CPU: informative);
#   - hooks (tests/tests/vm_hooks.rs): `systemctl start bbwd` of a pair node whose peer is off to
#     serving (fence confirmed, before_start mount, Bitbucket healthy, VIP held), and
#     `systemctl stop bbwd` (VIP, Bitbucket, after_stop unmount), guest clock; the test's own
#     wall time.
# Runs each VM test BENCH_VM_RUNS times (default 5; about 50, 45 and 40 s a run on 2 cores) and
# prints median and range. Figures, not asserts: the tests themselves bound them loosely.
# Needs root and what scripts/setup.sh installs; the images are cached in $BBWD_VM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_VM_RUNS:-5}
OUT=$(mktemp /tmp/bbwd-bench-vm-XXXXXX)
trap 'rm -f "$OUT"' EXIT

cargo build --quiet -p bbwd -p bbwd-tests --bins
for i in $(seq "$RUNS"); do
  echo "bench-vm: run $i/$RUNS" >&2
  cargo test --quiet -p bbwd-tests --test vm_watchdog i6300esb_healthy -- --nocapture 2>&1 \
    | grep '^vm-measure:' >>"$OUT"
  cargo test --quiet -p bbwd-tests --test vm_systemd -- --nocapture 2>&1 \
    | grep '^vm-measure:' >>"$OUT"
  cargo test --quiet -p bbwd-tests --test vm_hooks -- --nocapture 2>&1 \
    | grep '^vm-measure:' >>"$OUT"
done

summary() { # summary KEY DIVISOR UNIT: median and range of the values of KEY in $OUT
  sed -n "s/^vm-measure: .*\b$1=\([0-9]*\).*/\1/p" "$OUT" | sort -n | awk -v k="$1" -v d="$2" -v u="$3" '
    { v[NR] = $1 }
    END {
      if (NR == 0) { printf "| %s | no samples | | |\n", k; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "| %s | %d | %.2f %s | %.2f - %.2f %s |\n", k, NR, m / d, u, v[1] / d, v[NR] / d, u
    }'
}
echo "| figure | runs | median | range |"
echo "|---|---|---|---|"
summary i6300esb_sigstop_to_watchdog_event_ms 1000 s
summary systemd_sigstop_to_restart_ms 1000 s
summary i6300esb_pet_latency_us_max 1 us
summary hooks_start_to_serving_ms 1000 s
summary hooks_stop_ms 1000 s
summary hooks_test_total_ms 1000 s
