#!/usr/bin/env bash
# Measures what counting network bytes costs (docs/performance.md, "Network
# byte counting"): two Linux test guests boot, one with the two filter-dump
# objects and unid's FIFO reader, one without, and 100 MiB downloads through
# a `-p` forward alternate between them; prints each variant's median MB/s.
#   scripts/bench-network-counter.sh                 # 5 runs of 100 MiB each
#   UNI_BENCH_RUNS=9 UNI_BENCH_MIB=50 scripts/bench-network-counter.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests >/dev/null
Tests/Guests/build.sh .build/guests linux
UNI_BENCH_NETWORK=1 swift test --skip-build --filter NetworkCountingBenchmark 2>&1 | grep -E "^bench:|error|failed|passed after"
