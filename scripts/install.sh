#!/usr/bin/env bash
# Installs uni, uni-otel and unid with their shell completions, man pages
# and systemd units (docs/packaging.md):
#
#   sudo scripts/install.sh                 # build (release) and install to /usr/local
#   scripts/install.sh --no-build           # install what scripts/build-release.sh left in .build/dist
#   DESTDIR=/tmp/root scripts/install.sh    # stage into a root (packages, tests)
#
# Options:
#   --prefix DIR     where to install (default /usr/local; $PREFIX also works)
#   --unit-dir DIR   where the systemd units go (default PREFIX/lib/systemd/system)
#   --no-build       install the executables of .build/dist as they are
#   --bin DIR        install the executables of DIR (e.g. .build/debug); implies --no-build
#   --uninstall      remove what an install with the same options put in place
#   -h, --help       this text
#
# Completions and man pages are generated here, from the executables being
# installed, by swift-argument-parser itself (`uni --generate-completion-script`
# and its generate-manual tool): they always match the flags of those
# executables, and nothing generated is committed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
program="scripts/install.sh"

prefix="${PREFIX:-/usr/local}"
unit_dir=""
build=1
bin_dir="$root/.build/dist"
uninstall=0

usage_error() {
    echo "error: $1 ($program --help lists the options)" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a directory"; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --unit-dir) [ $# -ge 2 ] || usage_error "--unit-dir needs a directory"; unit_dir="$2"; shift 2 ;;
        --unit-dir=*) unit_dir="${1#--unit-dir=}"; shift ;;
        --no-build) build=0; shift ;;
        --bin) [ $# -ge 2 ] || usage_error "--bin needs a directory"; bin_dir="$2"; build=0; shift 2 ;;
        --bin=*) bin_dir="${1#--bin=}"; build=0; shift ;;
        --uninstall) uninstall=1; build=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage_error "unknown option '$1'" ;;
    esac
done

for dir in "$prefix" "${unit_dir:-/}"; do
    case "$dir" in
        /*) ;;
        *) usage_error "'$dir' is not an absolute path: --prefix and --unit-dir take one" ;;
    esac
    # The prefix ends up in the units' ExecStart= (and in a sed expression).
    case "$dir" in
        *[[:space:]\#\&\\]*) usage_error "'$dir' has a blank, '#', '&' or '\\': systemd units cannot name it" ;;
    esac
done
unit_dir="${unit_dir:-$prefix/lib/systemd/system}"
destdir="${DESTDIR:-}"

bindir="$prefix/bin"
bash_completions="$prefix/share/bash-completion/completions"
zsh_completions="$prefix/share/zsh/site-functions"
fish_completions="$prefix/share/fish/vendor_completions.d"
mandir="$prefix/share/man/man1"
executables=(uni uni-otel unid)
# The commands users type: uni-otel is uni with trace export, exec'd by uni.
commands=(uni unid)

if [ "$uninstall" = 1 ]; then
    for name in "${executables[@]}"; do rm -f "$destdir$bindir/$name"; done
    for name in "${commands[@]}"; do
        rm -f "$destdir$bash_completions/$name" "$destdir$zsh_completions/_$name" "$destdir$fish_completions/$name.fish"
        rm -f "$destdir$mandir/$name.1" "$destdir$mandir/$name".*.1
    done
    for unit in "$root"/packaging/systemd/*.service; do rm -f "$destdir$unit_dir/$(basename "$unit")"; done
    echo "removed uni from $destdir$prefix (the data in /var/lib/uni and ~/.uni is left as it is)"
    exit 0
fi

if [ "$build" = 1 ]; then
    "$root/scripts/build-release.sh" "$bin_dir"
fi
for name in "${executables[@]}"; do
    [ -x "$bin_dir/$name" ] || {
        echo "error: no executable '$bin_dir/$name': build first (scripts/build-release.sh) or drop --no-build" >&2
        exit 1
    }
done

# Everything is generated into a scratch folder first: a failure leaves the
# installed files as they were.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/completions" "$stage/man"
for name in "${commands[@]}"; do
    for shell in bash zsh fish; do
        "$bin_dir/$name" --generate-completion-script "$shell" >"$stage/completions/$name.$shell"
    done
done

# swift-argument-parser's generate-manual tool (the tool behind its
# GenerateManual plugin), run on the executables being installed. The plugin
# itself (`swift package plugin generate-manual`) would build every product
# of the package again in its own configuration first; this builds only the
# small tool, once.
# Its own scratch path: a `swift build` or `swift test` of the package
# holds the lock of .build (the install test runs inside one), and the
# tool shares nothing with the release build.
manual_scratch="$root/.build/manual-tool"
manual_tool="$manual_scratch/debug/generate-manual"
if [ ! -x "$manual_tool" ]; then
    swift build --package-path "$root" --scratch-path "$manual_scratch" --product generate-manual >"$stage/manual-build.log" 2>&1 || {
        cat "$stage/manual-build.log" >&2
        echo "error: cannot build swift-argument-parser's generate-manual tool (the log is above)" >&2
        exit 1
    }
fi
# The date of the source, not of the install: the same source gives the same pages.
date="$(git -C "$root" log -1 --format=%cs 2>/dev/null || date +%F)"
for name in "${commands[@]}"; do
    "$manual_tool" "$bin_dir/$name" --multi-page --date "$date" --output-directory "$stage/man"
done

install -d "$destdir$bindir" "$destdir$bash_completions" "$destdir$zsh_completions" "$destdir$fish_completions" \
    "$destdir$mandir" "$destdir$unit_dir"
for name in "${executables[@]}"; do install -m 0755 "$bin_dir/$name" "$destdir$bindir/$name"; done
for name in "${commands[@]}"; do
    install -m 0644 "$stage/completions/$name.bash" "$destdir$bash_completions/$name"
    install -m 0644 "$stage/completions/$name.zsh" "$destdir$zsh_completions/_$name"
    install -m 0644 "$stage/completions/$name.fish" "$destdir$fish_completions/$name.fish"
done
install -m 0644 "$stage"/man/*.1 "$destdir$mandir/"
# The units name /usr/local/bin; they get the bin dir of this install.
for unit in "$root"/packaging/systemd/*.service; do
    sed "s#/usr/local/bin/#$bindir/#g" "$unit" >"$stage/$(basename "$unit")"
    install -m 0644 "$stage/$(basename "$unit")" "$destdir$unit_dir/$(basename "$unit")"
done

echo "installed uni, uni-otel, unid to $destdir$bindir; completions, man pages; units in $destdir$unit_dir"
if [ -z "$destdir" ]; then
    echo "start the daemon: systemctl daemon-reload && systemctl enable --now unid"
fi
