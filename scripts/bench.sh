#!/usr/bin/env bash
# Runs the package-benchmark suite (Benchmarks/, release build; its own
# package so the product's graph stays free of it) and the first-line script.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd Benchmarks && swift package --allow-writing-to-package-directory benchmark "$@")
swift build -c release --product uni
swift build -c release --product unid
python3 scripts/bench-first-line.py --bin .build/release --accel tcg
