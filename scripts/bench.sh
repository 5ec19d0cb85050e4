#!/usr/bin/env bash
# Runs the package-benchmark suite (Benchmarks/, release build; its own
# package so the product's graph stays free of it) and the first-line script.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd Benchmarks && swift package --allow-writing-to-package-directory benchmark "$@")
# The executables as they are installed (scripts/build-release.sh).
scripts/build-release.sh .build/dist
python3 scripts/bench-first-line.py --bin .build/dist --accel tcg --runs 41
python3 scripts/bench-first-line.py --bin .build/dist --accel kvm --runs 41
# uni stats and unid's sampling CPU: real VMs, then 1,000 fake ones.
python3 scripts/bench-stats-cli.py --bin .build/dist --runs 21 --vms 20 --cpu-seconds 60
python3 scripts/bench-stats-cli.py --bin .build/dist --runs 21 --fake-vms 1000
