#!/usr/bin/env bash
# Release build of the three executables into one folder (default
# .build/dist), as they are installed: `uni` finds `uni-otel` next to itself.
#
# - unid and uni-otel: optimised, the Swift runtime linked in
#   (--static-swift-stdlib), so they run on a machine without Swift.
# - uni: a fully static executable (-static-executable). Its start-up is on
#   the path of every command and of the first console line of `uni run
#   --attach`: with no dynamic loader and no relocations to apply, it reaches
#   main() in ~0.5 ms instead of ~1.6 ms (docs/performance.md). It has its
#   own scratch path because the flag applies to everything in a build.
#   glibc warns at link time that getpwuid and dlopen in a static program
#   need the same glibc at run time; uni uses getpwuid only when $HOME is
#   unset, and build and run happen on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build/dist}"
swift build -c release --static-swift-stdlib --product unid
swift build -c release --static-swift-stdlib --product uni-otel
log=$(mktemp)
if ! swift build -c release --static-swift-stdlib -Xswiftc -static-executable --product uni --scratch-path .build/static-cli >"$log" 2>&1; then
    cat "$log"; rm -f "$log"; exit 1
fi
grep -v "statically linked applications requires at runtime" "$log" | tail -n 1
rm -f "$log"
mkdir -p "$out"
cp .build/release/unid .build/release/uni-otel .build/static-cli/release/uni "$out/"
echo "built: $out/uni $out/uni-otel $out/unid"
