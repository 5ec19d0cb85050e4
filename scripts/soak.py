#!/usr/bin/env python3
"""Soak: N create/start/stop/remove cycles of a real test guest through
unid's API (the requests `uni` sends, over the Unix socket, without a CLI
process per step), sampling unid's open file descriptors and RSS every
--every cycles. The claim is a flat line: the fd count at the end equals
the one after the first cycles, and RSS stops growing once the allocator
has warmed up.

Usage: scripts/soak.py [--cycles 1000] [--every 50] [--bin DIR] [--json OUT]
"""
import argparse, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_common import Unid, default_bin, ensure_kernel, open_files, rss_bytes, write_json


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--bin", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    kernel = ensure_kernel()
    config = {"name": "soak", "image": kernel, "memory_bytes": 32 << 20, "cpus": 1, "env": {}, "ports": [], "auto_remove": False}
    samples = []
    with Unid(args.bin or default_bin(), prefix="uni-soak-") as unid:
        def sample(cycle):
            rss = rss_bytes(unid.pid)
            samples.append({"cycle": cycle, "fds": open_files(unid.pid), "rss": rss["VmRSS"], "rss_anon": rss["RssAnon"], "threads": rss["Threads"]})
        sample(0)
        started = time.monotonic()
        for cycle in range(1, args.cycles + 1):
            vm = unid.api.call("POST", "/v1/vms?start=false", config)
            unid.api.call("POST", f"/v1/vms/{vm['id']}/start")
            # A graceful stop: the test kernel powers off when asked (~15 ms);
            # the short timeout bounds a cycle whose guest would not.
            unid.api.call("POST", f"/v1/vms/{vm['id']}/stop?timeout=100ms")
            unid.api.call("DELETE", f"/v1/vms/{vm['id']}")
            if cycle % args.every == 0 or cycle == args.cycles:
                sample(cycle)
                print(f"soak: cycle {cycle}: fds {samples[-1]['fds']}, rss {samples[-1]['rss'] / 2**20:.1f} MiB", file=sys.stderr)
        elapsed = time.monotonic() - started
        left = unid.api.call("GET", "/v1/vms?all=true")
    # The first sample after warm-up (10% of the run) is the reference for "flat".
    warm = next(s for s in samples if s["cycle"] >= max(args.every, args.cycles // 10))
    last = samples[-1]
    write_json(args.json, {
        "cycles": args.cycles, "seconds": elapsed, "per_cycle_ms": elapsed / args.cycles * 1000,
        "vms_left": len(left), "samples": samples,
        "fds_start": samples[0]["fds"], "fds_warm": warm["fds"], "fds_end": last["fds"], "fds_max": max(s["fds"] for s in samples),
        "rss_start": samples[0]["rss"], "rss_warm": warm["rss"], "rss_end": last["rss"], "rss_max": max(s["rss"] for s in samples),
        "rss_anon_warm": warm["rss_anon"], "rss_anon_end": last["rss_anon"],
        "warm_cycle": warm["cycle"],
    })


if __name__ == "__main__":
    main()
