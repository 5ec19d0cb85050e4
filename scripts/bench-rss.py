#!/usr/bin/env python3
"""unid's resident memory: idle (targets: <= 25 MB), and with 1,000 VMs
(<= 60 MB). Three measurements, each after a settle time:
  - unid idle: a fresh daemon, no VM, after its first 5 s poll;
  - unid with N VM records (created, not started: real unid, real store,
    no QEMU) through the API;
  - N running fake VMs: Benchmarks' UIBenchServer (unid's API and dashboard
    routers over a VMManager with the scripted hypervisor and fixed stats,
    as scripts/bench-stats-cli.py --fake-vms uses), next to the same server
    with 0 VMs in the same run as its baseline.
VmRSS counts the executable's pages it touched (file-backed, shared with
every other unid, reclaimable); RssAnon is the daemon's own heap and stacks.

Usage: scripts/bench-rss.py [--vms 1000] [--bin DIR] [--json OUT]
"""
import argparse, os, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_common import ROOT, Unid, default_bin, ensure_kernel, executable_rss, rss_bytes, write_json


def ui_bench_server():
    bench = os.path.join(ROOT, "Benchmarks")
    # Not built here (minutes): scripts/perf-report.sh builds Benchmarks/ first.
    path = os.path.join(subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=bench, text=True).strip(), "UIBenchServer")
    return path if os.path.exists(path) else None


def fake_server_rss(binary, count, port, settle):
    data = tempfile.mkdtemp(prefix="uni-rss-fake-")
    server = subprocess.Popen([binary, str(port), str(count), data], stdout=subprocess.PIPE, text=True)
    try:
        for line in server.stdout:
            if data in line:
                break
        time.sleep(settle)
        return rss_bytes(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(["rm", "-rf", data])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=6)
    parser.add_argument("--bin", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-fake", action="store_true")
    args = parser.parse_args()
    kernel = ensure_kernel()
    result = {"vms": args.vms}
    with Unid(args.bin or default_bin(), prefix="uni-rss-") as unid:
        time.sleep(args.settle)
        result["unid_idle"] = rss_bytes(unid.pid)
        result["unid_idle_executable"] = executable_rss(unid.pid)
        for index in range(args.vms):
            unid.api.call("POST", "/v1/vms?start=false", {"name": f"vm{index}", "image": kernel, "memory_bytes": 32 << 20,
                                                           "cpus": 1, "env": {}, "ports": [], "auto_remove": False})
        unid.api.call("GET", "/v1/vms?all=true")
        time.sleep(args.settle)
        result["unid_created"] = rss_bytes(unid.pid)
    if not args.no_fake:
        binary = ui_bench_server()
    if not args.no_fake and not binary:
        print("bench-rss: no release UIBenchServer (cd Benchmarks && swift build -c release): fake VMs skipped", file=sys.stderr)
    elif not args.no_fake:
        result["fake_0"] = fake_server_rss(binary, 0, 18571, args.settle)
        result["fake_n"] = fake_server_rss(binary, args.vms, 18572, args.settle)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
