#!/usr/bin/env bash
# GET /ui/api/vms with 100 VMs under wrk, next to a baseline from the same
# server and run: /ui/static/app.css (the same middleware, no manager call).
# Usage: scripts/bench-ui.sh [release|debug] [SECONDS]
#   release (default): Benchmarks' UIBenchServer, its own package so the
#     product's graph stays free of it;
#   debug: the DashboardBenchServer "test" of the debug test build (no
#     optimisation: a floor, not the figure to compare with the target).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-release}
seconds=${2:-15}
log=$(mktemp)
portfile=$(mktemp -u)
if [ "$mode" = release ]; then
    port=${UI_BENCH_PORT:-18480}
    (cd Benchmarks && swift build -c release --product UIBenchServer >&2)
    bin=$(cd Benchmarks && swift build -c release --show-bin-path)/UIBenchServer
    "$bin" "$port" 100 >"$log" 2>&1 &
    server=$!
    for _ in $(seq 100); do grep -q ready "$log" && break; sleep 0.1; done
    echo "$port" >"$portfile"
else
    UNI_BENCH_UI_PORT_FILE=$portfile UNI_BENCH_UI_SECONDS=$((seconds * 4 + 30)) \
        swift test --skip-build --filter DashboardBenchServer >"$log" 2>&1 &
    server=$!
    for _ in $(seq 1200); do [ -s "$portfile" ] && break; sleep 0.1; done
fi
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log" "$portfile"' EXIT
[ -s "$portfile" ] || { cat "$log" >&2; exit 1; }
port=$(cat "$portfile")
curl -fsS "http://127.0.0.1:$port/ui/api/vms" | python3 -c 'import json,sys; print("vms in /ui/api/vms:", len(json.load(sys.stdin)))'
run() {
    # Warm-up, then the measured run: 2 threads (one per core), 32 connections.
    wrk -t2 -c32 -d3s "http://127.0.0.1:$port$1" >/dev/null
    echo "== GET $1"
    wrk -t2 -c32 -d"${seconds}s" --latency "http://127.0.0.1:$port$1" | grep -E 'Requests/sec|Transfer/sec|^ +(50|90|99)%|Latency  '
}
run /ui/static/app.css
run /ui/api/vms
run /ui/static/app.css
run /ui/api/vms
