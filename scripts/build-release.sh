#!/usr/bin/env bash
# Release build of the three executables into one folder (default
# .build/dist), as they are installed: `uni` finds `uni-otel` next to itself.
#
# - unid and uni-otel: optimised, the Swift runtime linked in
#   (--static-swift-stdlib), so they run on a machine without Swift. Linked
#   for a small resident set (docs/performance.md, "unid's memory"):
#   - by lld, each function in its own section, the ones unid runs first,
#     start-up before serving (scripts/startup-order.py profiles the first link under
#     valgrind; the second link uses that order). The kernel maps an
#     executable's code 64 KB around each page touched: in link order,
#     unid's start-up code was spread over 18 MB of its 37 MB text.
#   - with packed relative relocations (DT_RELR, glibc >= 2.36, checked on
#     the build machine): the loader reads 30 KB of them, not 3.8 MB.
#   - exporting no symbols: 1.5 MB of dynamic symbol table the loader
#     searched for every library symbol, and nothing uses.
#   Without valgrind the second link is skipped, with a warning. These
#   flags get their own scratch path (.build/fs: function sections), so a
#   plain `swift build -c release` and this script do not rebuild each
#   other's objects.
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
scratch=.build/fs
flags=(-c release --static-swift-stdlib --scratch-path "$scratch"
       -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections
       -Xswiftc -use-ld=lld -Xlinker --no-export-dynamic)
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
if [ -n "$glibc" ] && [ "$(printf '%s\n2.36\n' "$glibc" | sort -V | head -n 1)" = 2.36 ]; then
    flags+=(-Xlinker -z -Xlinker pack-relative-relocs)
fi
swift build "${flags[@]}" --product unid
order="$scratch/unid.order"
kernel=()
[ -f .build/guests/uni-test-kernel.elf ] && kernel=(.build/guests/uni-test-kernel.elf)
if scripts/startup-order.py "$scratch/release/unid" "$order" "${kernel[@]}"; then
    flags+=(-Xlinker "--symbol-ordering-file=$(pwd)/$order" -Xlinker --no-warn-symbol-ordering)
    swift build "${flags[@]}" --product unid
else
    echo "build-release: warning: unid is linked without its start-up order (its idle RSS is ~6 MB higher)" >&2
fi
swift build "${flags[@]}" --product uni-otel
log=$(mktemp)
if ! swift build -c release --static-swift-stdlib -Xswiftc -static-executable --product uni --scratch-path .build/static-cli >"$log" 2>&1; then
    cat "$log"; rm -f "$log"; exit 1
fi
grep -v "statically linked applications requires at runtime" "$log" | tail -n 1
rm -f "$log"
mkdir -p "$out"
cp "$scratch/release/unid" "$scratch/release/uni-otel" .build/static-cli/release/uni "$out/"
echo "built: $out/uni $out/uni-otel $out/unid"
