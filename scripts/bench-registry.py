#!/usr/bin/env python3
"""Push and pull of a 100 MiB Uni image on loopback: RegistryClient against
skopeo copy of the same artifact, in the same run (issue 17's target: Uni
at no less than 0.8x skopeo's throughput).

Starts docker-registry (CNCF Distribution) on 127.0.0.1, makes the image
(one 100 MiB disk layer of random bytes) in a temp ImageStore and the same
blobs as an OCI layout, then, ROUNDS times, alternating who goes first:
  push: RegistryBench push STORE -> registry/uni-N   vs  skopeo copy oci:LAYOUT -> registry/skopeo-N
  pull: RegistryBench pull registry/uni-N -> fresh store  vs  skopeo copy registry/skopeo-N -> oci:NEW
Each round starts a fresh registry (nothing to skip or mount); each pull to an empty store/layout. Prints the median
seconds, MiB/s and the ratio Uni/skopeo (throughput).

  scripts/bench-registry.py [--mib 100] [--rounds 5] [--json OUT]
Builds Benchmarks' RegistryBench in release mode first (a separate package:
package-benchmark stays out of the product graph)."""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from perf_common import free_port


def start_registry(folder):
    os.makedirs(folder, exist_ok=True)
    port = free_port()
    config = os.path.join(folder, "config.yml")
    with open(config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {folder}/data
http:
  addr: 127.0.0.1:{port}
  secret: bench
""")
    log = open(os.path.join(folder, "registry.log"), "w")
    process = subprocess.Popen(["/usr/bin/docker-registry", "serve", config], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return process, f"127.0.0.1:{port}"
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit(f"docker-registry did not start: see {folder}/registry.log")
            time.sleep(0.05)


def timed(command):
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the medians as JSON (scripts/perf-report.sh)")
    args = parser.parse_args()
    for tool in ["/usr/bin/docker-registry", "/usr/bin/skopeo"]:
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: scripts/setup.sh installs docker-registry and skopeo")
    subprocess.run(["swift", "build", "-c", "release", "--package-path", os.path.join(ROOT, "Benchmarks"), "--product", "RegistryBench"], check=True)
    binary = subprocess.run(["swift", "build", "-c", "release", "--package-path", os.path.join(ROOT, "Benchmarks"), "--show-bin-path"],
                            check=True, capture_output=True, text=True).stdout.strip() + "/RegistryBench"
    work = tempfile.mkdtemp(prefix="uni-bench-registry-")
    registry = None
    try:
        store, layout = os.path.join(work, "store"), os.path.join(work, "layout")
        made = json.loads(subprocess.run([binary, "make", store, layout, "bench:1", str(args.mib)], check=True, capture_output=True, text=True).stdout)
        size = made["bytes"]
        results = {"uni push": [], "skopeo push": [], "uni pull": [], "skopeo pull": []}
        for n in range(args.rounds):
            # A fresh registry each round: on one registry, both clients would
            # mount the blobs of the earlier rounds' repositories instead of uploading.
            if registry:
                registry.terminate()
                registry.wait()
            registry, address = start_registry(os.path.join(work, f"registry-{n}"))
            pushes = [
                ("uni push", [binary, "push", store, "bench:1", f"{address}/uni-{n}:1"]),
                ("skopeo push", ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{address}/skopeo-{n}:1"]),
            ]
            pulls = [
                ("uni pull", [binary, "pull", os.path.join(work, f"pulled-{n}"), f"{address}/uni-{n}:1"]),
                ("skopeo pull", ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{address}/skopeo-{n}:1", f"oci:{os.path.join(work, f'skopeo-pulled-{n}')}:1"]),
            ]
            if n % 2:
                pushes.reverse()
                pulls.reverse()
            for name, command in pushes + pulls:
                results[name].append(timed(command))
            shutil.rmtree(os.path.join(work, f"pulled-{n}"), ignore_errors=True)
            shutil.rmtree(os.path.join(work, f"skopeo-pulled-{n}"), ignore_errors=True)
        mib = size / (1 << 20)
        print(f"image: {mib:.1f} MiB (one disk layer of random bytes), {args.rounds} rounds, docker-registry on loopback; medians:")
        summary = {}
        for name, times in results.items():
            median = statistics.median(times)
            summary[name] = mib / median
            print(f"  {name:12} {median:6.3f} s  {mib / median:7.1f} MiB/s   (all: {', '.join(f'{t:.3f}' for t in times)})")
        for op in ["push", "pull"]:
            ratio = summary[f"uni {op}"] / summary[f"skopeo {op}"]
            print(f"  {op}: uni/skopeo throughput = {ratio:.2f}x  (target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"mib": mib, "rounds": args.rounds, "seconds": {name: statistics.median(t) for name, t in results.items()},
                           "mib_per_second": summary}, f, indent=2)
    finally:
        if registry:
            registry.terminate()
            registry.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
