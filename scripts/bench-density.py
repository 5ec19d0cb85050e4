#!/usr/bin/env python3
"""Density: N real test guests (idle, 32 MiB, TCG by default) running under
one unid on this machine, its stats poller sampling them every 5 s, and
unid's HTTP endpoints under wrk on loopback (target: p99 <= 50 ms), with 16 connections (saturation) and with one:
`GET /ui/api/vms` (the dashboard's JSON: every VM with its newest sample)
and `GET /metrics` (Prometheus text). Baseline in the same run:
`GET /health` of the same metrics listener. Also unid's CPU while it
samples the N guests (no requests), against the same unid with no VM, and
its RSS, and the machine's load while the guests run.

Usage: scripts/bench-density.py [--vms 100] [--seconds 10] [--cpu-seconds 30] [--bin DIR] [--json OUT]
"""
import argparse, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_common import Unid, cpu_seconds, default_bin, ensure_kernel, free_port, rss_bytes, wrk, write_json


def cpu_share(pid, seconds):
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    used, wall = cpu_seconds(pid) - before, time.monotonic() - start
    return {"cpu_seconds": used, "wall_seconds": wall, "percent_of_core": used / wall * 100}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--cpu-seconds", type=int, default=30)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--bin", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    kernel = ensure_kernel()
    metrics, ui = free_port(), free_port()
    result = {"vms": args.vms, "accel": args.accel}
    with Unid(args.bin or default_bin(), accel=args.accel, prefix="uni-density-",
              extra=["--metrics-addr", f"127.0.0.1:{metrics}", "--ui-addr", f"127.0.0.1:{ui}"]) as unid:
        result["idle"] = cpu_share(unid.pid, args.cpu_seconds)
        result["rss_idle"] = rss_bytes(unid.pid)
        started = time.monotonic()
        unid.run_vms(args.vms, kernel)
        result["start_all_seconds"] = time.monotonic() - started
        time.sleep(6)  # one poll: every VM has two samples
        running = [vm for vm in unid.api.call("GET", "/v1/vms") if vm.get("state") == "running"]
        result["running"] = len(running)
        result["sampling"] = cpu_share(unid.pid, args.cpu_seconds)
        result["loadavg"] = open("/proc/loadavg").read().split()[:3]
        result["rss"] = rss_bytes(unid.pid)
        stats = unid.api.call("GET", "/v1/stats")
        result["stats_count"] = len(stats) if isinstance(stats, list) else None
        result["wrk"] = {
            "health": wrk(f"http://127.0.0.1:{metrics}/health", args.seconds),
            "ui_api_vms": wrk(f"http://127.0.0.1:{ui}/ui/api/vms", args.seconds),
            "metrics": wrk(f"http://127.0.0.1:{metrics}/metrics", args.seconds),
        }
        # One connection: a client's request latency without wrk's own
        # queue (16 connections on 2 shared cores measure saturation).
        result["wrk_c1"] = {
            "health": wrk(f"http://127.0.0.1:{metrics}/health", args.seconds, connections=1, threads=1),
            "ui_api_vms": wrk(f"http://127.0.0.1:{ui}/ui/api/vms", args.seconds, connections=1, threads=1),
            "metrics": wrk(f"http://127.0.0.1:{metrics}/metrics", args.seconds, connections=1, threads=1),
        }
        result["rss_after_wrk"] = rss_bytes(unid.pid)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
