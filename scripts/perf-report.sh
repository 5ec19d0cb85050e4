#!/usr/bin/env bash
# The performance report (docs/performance.md) in one command: builds the
# release executables and Benchmarks/, runs the micro-benchmarks and every
# end-to-end script, each writing its results into one folder
# (.build/perf/<UTC time>/), then scripts/perf-render.py rewrites the tables
# between the `<!-- perf:NAME -->` markers of docs/performance.md from them.
#
#   scripts/perf-report.sh                 # the full run (~30-40 min here), rewrites docs/performance.md
#   scripts/perf-report.sh --quick         # small counts: checks the pipeline in a few minutes;
#                                          # renders into the results folder, not into docs/
#   scripts/perf-report.sh --skip network,registry --no-build
#
# Steps (names for --skip / --only): benchmarks first-line stats ui registry
# network peers rss density soak. A step that fails is reported and the
# others still run; its section keeps its earlier table, marked as not
# measured in this run. Needs root for the peers (apt-get, libvirtd, dockerd).
# Every daemon, VM, domain and container a step starts is stopped when it
# ends, on failure or Ctrl-C too; a last sweep stops anything left that was
# started under this run's temp folder.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0; build=1; skip=","; only=""; write=""; out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --no-build) build=0 ;;
        --skip) skip=",$2,"; shift ;;
        --only) only=",$2,"; shift ;;
        --write) write=1 ;;   # with --quick: render into docs/performance.md anyway
        --out) out=$2; shift ;;  # add to (or redo steps of) an earlier run's results folder
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "perf-report: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$write" ] || { [ $quick = 1 ] && write=0 || write=1; }

[ -n "$out" ] || out="$root/.build/perf/$(date -u +%Y%m%dT%H%M%SZ)$([ $quick = 1 ] && echo -quick)"
mkdir -p "$out"
# Temp data dirs of every step live here: short (Unix socket paths), and
# the one place the final sweep looks for leftovers.
export TMPDIR="/tmp/uni-perf-$$"
mkdir -p "$TMPDIR"
child=""
failed=()

sweep() {
    # Processes started under this run's temp folder (unid, QEMU, libvirt's
    # QEMU, dockerd's shims) that a step left behind: none, normally.
    # (A bash match, not grep: grep's own command line would name the folder.)
    local pids="" dir line
    for dir in /proc/[0-9]*; do
        [ "${dir#/proc/}" = "$$" ] && continue
        line=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
        [[ $line == *"$TMPDIR"* ]] && pids+=" ${dir#/proc/}"
    done
    if [ -n "$pids" ]; then
        echo "perf-report: stopping leftovers: $pids" >&2
        kill $pids 2>/dev/null; sleep 2; kill -9 $pids 2>/dev/null
    fi
    rm -rf "$TMPDIR"
}
on_signal() {
    echo "perf-report: interrupted" >&2
    if [ -n "$child" ]; then kill -INT "$child" 2>/dev/null; wait "$child" 2>/dev/null; fi
    exit 130
}
trap on_signal INT TERM
trap sweep EXIT

# Does a step run? --skip and --only take name prefixes: "first-line"
# covers first-line-tcg and first-line-kvm. Builds obey --no-build only.
wanted() {
    local name=$1 entry entries
    IFS=, read -ra entries <<<"$skip"
    for entry in "${entries[@]}"; do
        [ -n "$entry" ] && [[ $name == "$entry"* ]] && return 1
    done
    [[ -z "$only" || $name == build* ]] && return 0
    IFS=, read -ra entries <<<"$only"
    for entry in "${entries[@]}"; do
        [ -n "$entry" ] && [[ $name == "$entry"* ]] && return 0
    done
    return 1
}

# step NAME COMMAND...: runs one step in the background (so that a signal
# reaches the trap at once), its output into $out/NAME.log.
step() {
    local name=$1; shift
    wanted "$name" || return 0
    echo "perf-report: $name ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
    local started=$SECONDS
    "$@" >"$out/$name.log" 2>&1 &
    child=$!
    if wait "$child"; then
        echo "perf-report: $name done in $((SECONDS - started)) s" >&2
    else
        echo "perf-report: $name FAILED (see $out/$name.log)" >&2
        tail -n 5 "$out/$name.log" >&2
        failed+=("$name")
    fi
    child=""
}

machine() {
    python3 - "$out/machine.json" "$1" "$quick" <<'EOF'
import json, os, subprocess, sys, time
path, when, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
load = " / ".join(open("/proc/loadavg").read().split()[:3])
if when == "end":
    data = json.load(open(path)); data["load_end"] = load
else:
    mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]) * 1024
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR)); kvm = "/dev/kvm opens (nested: Linux guests hang, the test kernel boots)"
    except OSError as e:
        kvm = f"unusable ({e.strerror})"
    others = subprocess.run("ps -eo comm= | grep -c -E '^(swift-build|swift-frontend|swiftc)$'", shell=True, capture_output=True, text=True).stdout.strip()
    data = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": quick, "cores": os.cpu_count(), "memory_gib": mem / 2**30,
            "kernel": os.uname().release, "load_start": load, "kvm": kvm, "accel": "tcg",
            "qemu": subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0].replace("QEMU emulator version", "QEMU"),
            "swift": " ".join(subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.split()[:3]) if True else "",
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
            "others": f"Swift compiler processes running on the machine at the start: {others}."}
json.dump(data, open(path, "w"), indent=2)
EOF
}

[ -f "$out/machine.json" ] || machine start
bin="$root/.build/dist"
if [ $build = 1 ]; then
    step build-release scripts/build-release.sh "$bin"
    step build-benchmarks swift build -c release --package-path Benchmarks
fi

if [ $quick = 1 ]; then
    bench_filter=(--filter "JSON log line.*" --filter "stats: one VM.*" --filter "stats baseline.*")
    fl_runs=3; st_runs=3; st_vms=2; st_cpu=3; fake_vms=50; ui_seconds=2; reg=(--mib 8 --rounds 1)
    peers=(--quick); rss_vms=50; den=(--vms 5 --seconds 2 --cpu-seconds 3); soak_cycles=20
else
    bench_filter=()
    fl_runs=41; st_runs=21; st_vms=20; st_cpu=60; fake_vms=1000; ui_seconds=15; reg=(--rounds 3)
    peers=(); rss_vms=1000; den=(--vms 100 --seconds 10 --cpu-seconds 30); soak_cycles=1000
fi

benchmarks() {
    (cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --format markdown --time-units nanoseconds \
        --no-progress "${bench_filter[@]}") >"$out/benchmarks.md"
}
step benchmarks benchmarks
step first-line-tcg python3 scripts/bench-first-line.py --bin "$bin" --accel tcg --runs $fl_runs --json "$out/first-line-tcg.json"
# KVM only where /dev/kvm opens.
if python3 -c 'import os; os.close(os.open("/dev/kvm", os.O_RDWR))' 2>/dev/null; then
    step first-line-kvm python3 scripts/bench-first-line.py --bin "$bin" --accel kvm --runs $fl_runs --json "$out/first-line-kvm.json"
fi
step stats python3 scripts/bench-stats-cli.py --bin "$bin" --runs $st_runs --vms $st_vms --cpu-seconds $st_cpu --json "$out/stats-cli-real.json"
step stats-fake python3 scripts/bench-stats-cli.py --bin "$bin" --runs $st_runs --fake-vms $fake_vms --json "$out/stats-cli-fake.json"
ui() { scripts/bench-ui.sh release "$ui_seconds" >"$out/ui.txt"; }
step ui ui
step registry python3 scripts/bench-registry.py "${reg[@]}" --json "$out/registry.json"
if [ $quick = 0 ]; then
    network() { scripts/bench-network-counter.sh >"$out/network.txt"; }
    step network network
fi
step peers python3 scripts/bench-peers.py "${peers[@]}" --bin "$bin" --json "$out/peers.json"
step rss python3 scripts/bench-rss.py --vms $rss_vms --bin "$bin" --json "$out/rss.json"
step density python3 scripts/bench-density.py "${den[@]}" --bin "$bin" --json "$out/density.json"
step soak python3 scripts/soak.py --cycles $soak_cycles --bin "$bin" --json "$out/soak.json"
machine end

doc="$root/docs/performance.md"
if [ "$write" = 0 ]; then
    cp "$doc" "$out/performance.md"; doc="$out/performance.md"
fi
python3 scripts/perf-render.py "$out" "$doc"
echo "perf-report: results in $out; report: $doc"
if [ ${#failed[@]} -gt 0 ]; then
    echo "perf-report: failed steps: ${failed[*]}" >&2
    exit 1
fi
