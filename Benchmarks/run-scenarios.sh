#!/usr/bin/env bash
# The usage, credit, replay and snapshot benchmarks (docs/performance.md, sections 3-8): starts a
# release tallyd on a fresh temp data dir (frameBytesMax raised to 16 MiB for 10,000-event
# requests), runs every tally-scenarios subcommand against it, each with its same-run baseline,
# stops it, times `tallyd replay` against a raw scan, and removes the directory.
#
#   Benchmarks/run-scenarios.sh
#   FILL_EVENTS=8000000 HIST_EVENTS=1000000 Benchmarks/run-scenarios.sh
#   TALLYD=/path/to/tallyd SCENARIOS=/path/to/tally-scenarios SKIP_BUILD=1 Benchmarks/run-scenarios.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
hist_events="${HIST_EVENTS:-1000000}"   # events (and deductions) for the query customer
fill_events="${FILL_EVENTS:-2000000}"   # more events, for the replay and the snapshot
perf_seconds="${PERF_SECONDS:-12}"
work_parent="${TMPDIR:-/tmp}"

if [[ -z "${SKIP_BUILD:-}" ]]; then
    (cd "$root" && swift build -c release --scratch-path .build-release --product tallyd) >&2
    (cd "$here" && swift build -c release --product tally-scenarios) >&2
fi
tallyd="${TALLYD:-$root/.build-release/release/tallyd}"
scen="${SCENARIOS:-$(cd "$here" && swift build -c release --show-bin-path)/tally-scenarios}"

work="$(mktemp -d "$work_parent/tally-scenarios.XXXXXX")"
data="$work/data"
socket="$data/tallyd.sock"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    [[ -n "${KEEP_DATA:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
printf 'limits:\n  frameBytesMax: 16777216\n' > "$work/tallyd.yaml"
"$tallyd" serve --data-dir "$data" --config "$work/tallyd.yaml" --log-level warning > "$work/tallyd.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do [[ -S "$socket" ]] && break; sleep 0.05; done
[[ -S "$socket" ]] || { cat "$work/tallyd.log" >&2; exit 1; }
echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); data dir $data on $(df -h "$work" | awk 'NR==2 {print $1}')"
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$pid/stat"; }
c=(--socket "$socket" --data-dir "$data")

"$scen" setup "${c[@]}"
echo; "$scen" ingest "${c[@]}"; echo "tallyd CPU so far: $(cpu) s"
if command -v perf > /dev/null; then
    echo; echo "== perf record -e cpu-clock of tallyd during one more ingest run"
    perf record -e cpu-clock -p "$pid" -o "$work/perf.data" -- sleep "$perf_seconds" > /dev/null 2>&1 &
    perf_pid=$!
    "$scen" ingest "${c[@]}" --rounds 1 --requests-per-client 40 --tag p > /dev/null
    wait "$perf_pid" || true
    perf report -i "$work/perf.data" --sort dso --stdio > "$work/perf-dso.txt" 2>/dev/null || true
    perf report -i "$work/perf.data" --sort dso,sym --stdio > "$work/perf-sym.txt" 2>/dev/null || true
    grep -v '^#' "$work/perf-dso.txt" | grep -v '^$' | head -12 || true
    grep -v '^#' "$work/perf-sym.txt" | grep -v '^$' | head -45 || true
fi
echo; "$scen" fill "${c[@]}" --events "$hist_events" --customer hist-0 --event-name gen.call
echo; "$scen" queries "${c[@]}"
echo; "$scen" strict "${c[@]}"
echo; "$scen" latency "${c[@]}"
echo; "$scen" subscriptions "${c[@]}"
echo; "$scen" heavy "${c[@]}"
echo; "$scen" fill "${c[@]}" --events "$fill_events" --customer fill --customer-per-client --event-name ingest.call --days 30 --tag g
echo "data dir: $(du -sh "$data" | cut -f1); tallyd CPU so far: $(cpu) s"
echo; "$scen" snapshot "${c[@]}" --snapshot-path "$work/snap"
echo "snapshot dir: $(du -sh "$work/snap" | cut -f1)"; rm -rf "$work/snap"
kill -TERM "$pid"; wait "$pid" || true; pid=""
echo; "$scen" replay --tallyd "$tallyd" --data-dir "$data"
