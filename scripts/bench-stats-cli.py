#!/usr/bin/env python3
"""`uni stats` as a whole process: one VM (target <= 20 ms) and every VM,
against `uni --version` (the process start-up alone) measured in the same
script, interleaved, so machine noise hits both alike. Also samples unid's
own CPU time while its poller samples the running VMs (target <= 1% of a
core at 100 VMs every 5 s; here the VMs are real idle QEMU guests).

With --fake-vms N it times `uni stats` (every VM, and one) against
Benchmarks' UIBenchServer serving unid's API over N fake running VMs
(scripted hypervisor, fixed stats; target <= 100 ms at 1,000 VMs), again
next to `uni --version`.

Usage: scripts/bench-stats-cli.py [--runs 41] [--vms 4] [--bin DIR] [--cpu-seconds 30] [--json OUT]
       scripts/bench-stats-cli.py --fake-vms 1000 [--runs 41] [--bin DIR] [--json OUT]
"""
import argparse, json, os, shutil, signal, statistics, subprocess, tempfile, time

def timed(argv, env):
    start = time.monotonic()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - start

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=41)
    parser.add_argument("--vms", type=int, default=4)
    parser.add_argument("--cpu-seconds", type=int, default=30)
    parser.add_argument("--bin", default=subprocess.check_output(["swift", "build", "--show-bin-path"], cwd=root, text=True).strip())
    parser.add_argument("--fake-vms", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the medians as JSON (scripts/perf-report.sh)")
    args = parser.parse_args()
    RESULT.update(vms=args.fake_vms or args.vms, fake=bool(args.fake_vms), runs=args.runs)
    if args.fake_vms:
        fake(root, args)
        return save(args)
    kernel = os.path.join(root, ".build/guests/uni-test-kernel.elf")
    if not os.path.exists(kernel):
        subprocess.check_call([os.path.join(root, "Tests/Guests/build.sh"), os.path.join(root, ".build/guests")])
    uni, unid = os.path.join(args.bin, "uni"), os.path.join(args.bin, "unid")
    data = tempfile.mkdtemp(prefix="uni-bst-")
    daemon = subprocess.Popen([unid, "--data-dir", data, "--accel", "tcg", "--log-level", "warning"])
    env = dict(os.environ, UNI_HOME=data)
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(data, "unid.sock")):
                break
            time.sleep(0.05)
        # Baseline: the daemon with no VM, over the same time.
        before, start = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.cpu_seconds)
        idle, idle_wall = cpu_seconds(daemon.pid) - before, time.monotonic() - start
        for index in range(args.vms):
            subprocess.check_call([uni, "run", "--name", f"vm{index}", "--memory", "32M", kernel], env=env, stdout=subprocess.DEVNULL)
        time.sleep(6)  # one poll: every VM has two samples
        print(f"runs={args.runs} vms={args.vms}")
        compare(uni, env, args.runs, [["stats", "vm0"], ["stats"]])
        before, start = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.cpu_seconds)
        used, wall = cpu_seconds(daemon.pid) - before, time.monotonic() - start
        # CPU time comes in clock ticks (10 ms): long runs, or many VMs, for a figure.
        extra = used / wall - idle / idle_wall
        RESULT["cpu"] = {"idle_seconds": idle, "idle_wall": idle_wall, "used_seconds": used, "wall": wall,
                         "idle_percent": idle / idle_wall * 100, "percent": used / wall * 100, "per_100_vms_percent": extra * 100 / args.vms * 100}
        print(f"unid CPU without VMs: {idle:.2f} s in {idle_wall:.0f} s = {idle/idle_wall*100:.3f}% of a core")
        print(f"unid CPU while polling {args.vms} idle VMs every 5 s: {used:.2f} s in {wall:.0f} s = {used/wall*100:.3f}% of a core; "
              f"the VMs' share {extra*100:.3f}% ({extra*100/args.vms*100:.2f}% per 100 VMs)")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
    save(args)

RESULT = {"commands": {}}

def save(args):
    if args.json:
        with open(args.json, "w") as f:
            json.dump(RESULT, f, indent=2)

def compare(uni, env, runs, commands):
    """Times each command `runs` times, interleaved with `uni --version`."""
    base, times = [], [[] for _ in commands]
    for _ in range(3):
        timed([uni, "--version"], env)
        for command in commands: timed([uni] + command, env)
    for _ in range(runs):
        base.append(timed([uni, "--version"], env))
        for index, command in enumerate(commands): times[index].append(timed([uni] + command, env))
    b = statistics.median(base) * 1000
    print(f"uni --version      median {b:6.2f} ms")
    RESULT["commands"]["--version"] = b / 1000
    for command, samples in zip(commands, times):
        m = statistics.median(samples) * 1000
        RESULT["commands"][" ".join(command)] = m / 1000
        print(f"uni {' '.join(command):14} median {m:6.2f} ms  ({m/b:.2f}x start-up)")

def fake(root, args):
    bench = os.path.join(root, "Benchmarks")
    subprocess.check_call(["swift", "build", "-c", "release", "--product", "UIBenchServer"], cwd=bench, stdout=subprocess.DEVNULL)
    server_bin = os.path.join(subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=bench, text=True).strip(), "UIBenchServer")
    data = tempfile.mkdtemp(prefix="uni-bsf-")
    server = subprocess.Popen([server_bin, "0", str(args.fake_vms), data], stdout=subprocess.PIPE, text=True)
    env = dict(os.environ, UNI_HOME=data)
    try:
        for line in server.stdout:
            if data in line:
                break
        uni = os.path.join(args.bin, "uni")
        print(f"runs={args.runs} fake running vms={args.fake_vms}")
        compare(uni, env, args.runs, [["stats"], ["stats", "vm-0"]])
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)

if __name__ == "__main__":
    main()
