#!/usr/bin/env bash
# The socket path under load: builds a release tallyd and tally-load, starts tallyd on a fresh
# temporary data directory, runs tally-load with 1 and with 16 pipelining clients (each run also
# measures raw synced RocksDB batches on the same disk and prints the ratio), stops the daemon
# with SIGTERM and removes the directory. See docs/performance.md.
#
#   Benchmarks/run-socket-bench.sh                      # defaults below
#   TOTAL_REQUESTS=48000 PIPELINE=32 ROUNDS=5 Benchmarks/run-socket-bench.sh
#   SKIP_BUILD=1 Benchmarks/run-socket-bench.sh         # reuse existing release builds
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
total="${TOTAL_REQUESTS:-24000}" # per round, split evenly over the clients
rounds="${ROUNDS:-3}"            # load rounds, each between two baselines; the median ratio is reported
pipeline="${PIPELINE:-16}"       # requests in flight per client
clients_list="${CLIENTS_LIST:-1 16}"
work_parent="${TMPDIR:-/tmp}"

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== building release tallyd (in $root/.build) and tally-load (in $here/.build)" >&2
    (cd "$root" && swift build -c release --product tallyd) >&2
    (cd "$here" && swift build -c release --product tally-load) >&2
fi
tallyd="$(cd "$root" && swift build -c release --show-bin-path)/tallyd"
load="$(cd "$here" && swift build -c release --show-bin-path)/tally-load"

work="$(mktemp -d "$work_parent/tally-socket-bench.XXXXXX")"
data="$work/data"
socket="$data/tallyd.sock"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting $tallyd serve --data-dir $data" >&2
"$tallyd" serve --data-dir "$data" --log-level warning > "$work/tallyd.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    [[ -S "$socket" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/tallyd.log" >&2; echo "tallyd exited" >&2; exit 1; }
    sleep 0.05
done
[[ -S "$socket" ]] || { cat "$work/tallyd.log" >&2; echo "no socket at $socket" >&2; exit 1; }

echo "== machine: $(nproc) cores, $(uname -r); disk of $work: $(df -h "$work" | awk 'NR==2 {print $1, $2}')"
echo "== tallyd commit: ${TALLY_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
# A short warm-up so the first run does not pay for the daemon's first WAL file and caches.
"$load" --socket "$socket" --clients 1 --requests-per-client 200 --pipeline "$pipeline" --no-baseline --label warm-up > /dev/null
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for clients in $clients_list; do
    before=$(cpu_ticks)
    "$load" --socket "$socket" --clients "$clients" --requests-per-client $((total / clients)) --pipeline "$pipeline" \
        --rounds "$rounds" --baseline-parent "$work" --label "$clients client(s)"
    after=$(cpu_ticks)
    echo "tallyd CPU over the $rounds rounds: $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f s", t / hz}')"
    echo
done

echo "== stopping tallyd (SIGTERM)" >&2
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
echo "== tallyd exited with status $status"
