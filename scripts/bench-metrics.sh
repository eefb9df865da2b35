#!/usr/bin/env bash
# Cost of a Prometheus scrape of `bbwd run` (single node supervising the Bitbucket simulator):
#   - client-seen time per scrape (new TCP connection, GET /metrics, read to the close), loopback,
#   - bbwd's CPU time per scrape (its utime+stime over a burst, minus its idle rate),
#   - heap allocations in the loop while scraped (the --features alloc-count build: every pass
#     that is not an event or a control request counts as steady; scrape passes are steady),
#   - resident memory with [metrics] against the same node without it.
# The render alone is `cargo bench -p bbwd --bench metrics`. Figures, not asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRAPES=${BENCH_SCRAPES:-2000}

# One build for all figures: the counting allocator costs only on allocation, and a scrape
# makes none (which is what it measures).
cargo build --release --quiet -p bbwd --features alloc-count
cp target/release/bbwd target/bbwd-alloc-count
cargo build --release --quiet -p bbwd -p bbwd-tests   # leave the plain build in place
BBWD=$PWD/target/bbwd-alloc-count
SIM=$PWD/target/release/bbsim

DIR=$(mktemp -d /tmp/bbwd-bench-metrics-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

config() { # config NAME [METRICS_PORT]
  local port; port=$(free_port)
  cat > "$DIR/$1.toml" <<CONF
[node]
name = "bench"
state_dir = "$DIR/$1/state"
control_socket = "$DIR/$1/control.sock"
[bitbucket]
status_url = "http://127.0.0.1:$port/status"
command = ["$SIM", "--dir", "$DIR/$1/sim", "--port", "$port"]
monitor_interval = "1s"
monitor_timeout = "1s"
CONF
  if [ -n "${2:-}" ]; then
    printf '[metrics]\nlisten = "127.0.0.1:%s"\ntextfile = "%s/%s.prom"\n' "$2" "$DIR" "$1" >> "$DIR/$1.toml"
  fi
}

wait_running() {
  for _ in $(seq 100); do
    "$BBWD" status -c "$1" >/dev/null 2>&1 && return 0; sleep 0.1
  done
  echo "bench: bbwd did not reach running" >&2; exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Without [metrics]: the memory baseline.
config plain
"$BBWD" run -c "$DIR/plain.toml" 2>"$DIR/plain.log" & P=$!; PIDS+=($P)
wait_running "$DIR/plain.toml"
sleep 3
rss_plain=$(awk '/^VmRSS/ {print $2}' /proc/$P/status)
kill -TERM $P; wait $P || true

MPORT=$(free_port)
config scraped "$MPORT"
RUST_LOG=info "$BBWD" run -c "$DIR/scraped.toml" 2>"$DIR/scraped.log" & P=$!; PIDS+=($P)
wait_running "$DIR/scraped.toml"
sleep 3
tck=$(getconf CLK_TCK)
# Idle rate first, over as long as the burst will take (measured after it, see below).
c0=$(cpu_ticks $P); t0=$(date +%s.%N)
sleep 5
c1=$(cpu_ticks $P); t1=$(date +%s.%N)
read -r median p99 total_s < <(python3 - "$MPORT" "$SCRAPES" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
lat = []
start = time.perf_counter()
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    lat.append(time.perf_counter() - t)
total = time.perf_counter() - start
lat.sort()
print(f"{lat[len(lat)//2]*1e6:.0f} {lat[int(len(lat)*0.99)]*1e6:.0f} {total:.3f}")
PY
)
c2=$(cpu_ticks $P)
rss_scraped=$(awk '/^VmRSS/ {print $2}' /proc/$P/status)
bytes=$(python3 -c "
import socket
s=socket.create_connection(('127.0.0.1',$MPORT)); s.sendall(b'GET /metrics HTTP/1.0\r\n\r\n')
d=b''
while True:
    b=s.recv(65536)
    if not b: break
    d+=b
print(len(d.split(b'\r\n\r\n',1)[1]))")
kill -TERM $P; wait $P || true
line=$(grep -o 'alloc-count: .*' "$DIR/scraped.log")

per_scrape_us=$(python3 -c "
idle=($c1-$c0)/$tck/($t1-$t0)
burst=($c2-$c1)/$tck - idle*$total_s
print(f'{max(burst,0)/$SCRAPES*1e6:.0f}')")
out=target/bench-metrics.md
{
  echo "| figure | value |"
  echo "|---|---|"
  echo "| body of one scrape (single node) | $bytes bytes |"
  echo "| client-seen time per scrape, loopback, new connection each | median ${median} us, p99 ${p99} us ($SCRAPES sequential scrapes in ${total_s} s) |"
  echo "| bbwd CPU per scrape (utime+stime over the burst, idle rate subtracted; clock ticks of $((1000/tck)) ms) | ~${per_scrape_us} us |"
  echo "| heap allocations in the loop while scraped | $(sed -E 's/.*steady_allocs=([0-9]+).*/\1/' <<<"$line") ($line) |"
  echo "| VmRSS with [metrics] (after the scrapes) / without | $rss_scraped KiB / $rss_plain KiB |"
} | tee "$out"
