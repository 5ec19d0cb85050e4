#!/usr/bin/env python3
"""Time from starting a VM to its first serial line: `uni run --attach`
through unid versus bare qemu-system-x86_64 with the same arguments.

Both are measured in this one script, interleaved (bare, uni, bare, uni...)
so machine noise hits them alike; the report is the median of each and their
ratio. The QEMU arguments for the bare runs are read from /proc of a VM that
unid started, so they are exactly unid's.

Usage: scripts/bench-first-line.py [--runs 15] [--accel tcg|kvm|auto] [--bin DIR] [--json OUT]
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

from perf_common import first_line

def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--json", default=None, help="also write the medians as JSON (scripts/perf-report.sh)")
    parser.add_argument("--bin", default=subprocess.check_output(["swift", "build", "--show-bin-path"], cwd=root, text=True).strip())
    args = parser.parse_args()
    kernel = os.path.join(root, ".build/guests/uni-test-kernel.elf")
    if not os.path.exists(kernel):
        subprocess.check_call([os.path.join(root, "Tests/Guests/build.sh"), os.path.join(root, ".build/guests")])
    uni, unid = os.path.join(args.bin, "uni"), os.path.join(args.bin, "unid")
    data = tempfile.mkdtemp(prefix="uni-bench-")
    daemon = subprocess.Popen([unid, "--data-dir", data, "--accel", args.accel, "--log-level", "warning"])
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(data, "unid.sock")):
                break
            time.sleep(0.05)
        env = dict(os.environ, UNI_HOME=data)
        # One VM that stays up, to read unid's exact QEMU command line.
        subprocess.check_call([uni, "run", "--name", "probe", kernel, "--cmdline", "probe"], env=env, stdout=subprocess.DEVNULL)
        out = subprocess.run([uni, "inspect", "probe"], env=env, capture_output=True, text=True, check=True).stdout
        probe_pid = int(out.split('"pid" : ')[1].split(",")[0])
        qemu_argv = open(f"/proc/{probe_pid}/cmdline", "rb").read().decode().split("\0")[:-1]
        subprocess.run([uni, "rm", "-f", "probe"], env=env, stdout=subprocess.DEVNULL, check=True)
        bare_dir = tempfile.mkdtemp(prefix="uni-bare-")
        # The probe's files (QMP socket, network counters' dumps) move to a
        # folder of the bare runs' own: the probe's is gone with it. The
        # counters' FIFOs become plain files (no reader in a bare run).
        vm_dir = os.path.dirname(next(a for a in qemu_argv if "qmp.sock" in a).split(",")[0].removeprefix("unix:"))
        bare_argv = [f"unix:{bare_dir}/qmp.sock,server=on,wait=off" if "qmp.sock" in a else ("exit=0" if a == "probe" else a.replace(vm_dir, bare_dir))
                     for a in qemu_argv]
        uni_argv = [uni, "run", "--attach", "--rm", kernel, "--cmdline", "exit=0"]
        bare, through_uni = [], []
        for _ in range(2):  # warm-up: page cache, first connections
            first_line(bare_argv); first_line(uni_argv, env)
        for _ in range(args.runs):
            bare.append(first_line(bare_argv)[0])
            through_uni.append(first_line(uni_argv, env)[0])
        b, u = statistics.median(bare), statistics.median(through_uni)
        print(f"accel={args.accel} runs={args.runs}")
        print(f"bare qemu   first serial line: median {b*1000:7.1f} ms  (min {min(bare)*1000:.1f}, max {max(bare)*1000:.1f})")
        print(f"uni run -a  first serial line: median {u*1000:7.1f} ms  (min {min(through_uni)*1000:.1f}, max {max(through_uni)*1000:.1f})")
        print(f"ratio uni/bare: {u/b:.2f}x (target <= 1.20x)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"accel": args.accel, "runs": args.runs, "bare": {"median": b, "min": min(bare), "max": max(bare)},
                           "uni": {"median": u, "min": min(through_uni), "max": max(through_uni)}, "ratio": u / b}, f, indent=2)
        shutil.rmtree(bare_dir, ignore_errors=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)

if __name__ == "__main__":
    main()
