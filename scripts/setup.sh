#!/usr/bin/env bash
# Prepares a Debian 12 machine with Swift for Uni: installs the system
# packages that are missing, builds the package (and its tests), and builds
# the test guests from source into .build/guests.
#   scripts/setup.sh            # packages + build
#   SKIP_APT=1 scripts/setup.sh # build only
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-system-x86: runs the VMs; gcc/binutils: build the test guests;
# cpio/xz-utils: the Linux test guest's initramfs (its kernel and busybox
# are downloaded, not installed: Tests/Guests/linux/build.sh);
# prometheus: promtool and a real scraper for the telemetry tests;
# prometheus-alertmanager: the fleet test delivers the VM-down alert to it;
# python3: the OTLP test receiver; chromium: the dashboard test's headless
# browser; wrk: scripts/bench-ui.sh; libsqlite3-dev: the SQLite VM store
# (GRDB links the system libsqlite3; a fresh Debian 12 lacks its headers);
# docker-registry (CNCF Distribution), skopeo and apache2-utils (htpasswd):
# the registry tests' real registry, independent client and basic-auth file;
# valgrind: scripts/build-release.sh orders unid's code by a callgrind profile.
packages=(qemu-system-x86 gcc binutils cpio xz-utils prometheus prometheus-alertmanager python3 python3-venv chromium wrk libsqlite3-dev docker-registry skopeo apache2-utils valgrind)

if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The OTLP/gRPC receiver the trace tests export to (PyPI: grpcio, opentelemetry-proto).
if [ ! -x .build/otlp-venv/bin/python ] || ! .build/otlp-venv/bin/python -c "import grpc, opentelemetry.proto" 2>/dev/null; then
  echo "setup: installing the OTLP test receiver's Python packages into .build/otlp-venv"
  mkdir -p .build
  python3 -m venv .build/otlp-venv
  .build/otlp-venv/bin/pip install -q grpcio opentelemetry-proto
fi

echo "setup: building (swift build --build-tests)"
swift build --build-tests
# Examples/embed depends on Uni by path, so its first build compiles UniKit's
# dependencies again (a few minutes); built here, its test only runs it.
echo "setup: building Examples/embed (into .build/embed)"
swift build --package-path Examples/embed --scratch-path .build/embed
Tests/Guests/build.sh .build/guests
# The Linux guest downloads its packages once; without them only the tests
# that boot it fail (each with this message), so the rest still runs.
Tests/Guests/build.sh .build/guests linux || echo "setup: warning: the Linux test guest could not be built; its tests will fail"
echo "setup: done; binaries in $(swift build --show-bin-path)"
