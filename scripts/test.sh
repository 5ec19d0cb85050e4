#!/usr/bin/env bash
# Runs every test: unit tests (fakes), API tests (real Unix socket) and
# integration tests (real QEMU, TCG). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift test --skip-build "$@"
