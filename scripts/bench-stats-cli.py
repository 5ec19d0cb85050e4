#!/usr/bin/env python3
"""`uni stats` as a whole process: one VM (target <= 20 ms) and every VM,
against `uni --version` (the process start-up alone) measured in the same
script, interleaved, so machine noise hits both alike. Also samples unid's
own CPU time while its poller samples the running VMs (target <= 1% of a
core at 100 VMs every 5 s; here the VMs are real idle QEMU guests).

Usage: scripts/bench-stats-cli.py [--runs 41] [--vms 4] [--bin DIR] [--cpu-seconds 30]
"""
import argparse, os, shutil, signal, statistics, subprocess, tempfile, time

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
    args = parser.parse_args()
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
        for index in range(args.vms):
            subprocess.check_call([uni, "run", "--name", f"vm{index}", "--memory", "32M", kernel], env=env, stdout=subprocess.DEVNULL)
        time.sleep(6)  # one poll: every VM has two samples
        base, one, every = [], [], []
        for _ in range(3):
            timed([uni, "--version"], env); timed([uni, "stats", "vm0"], env)
        for _ in range(args.runs):
            base.append(timed([uni, "--version"], env))
            one.append(timed([uni, "stats", "vm0"], env))
            every.append(timed([uni, "stats"], env))
        b, o, e = (statistics.median(x) * 1000 for x in (base, one, every))
        print(f"runs={args.runs} vms={args.vms}")
        print(f"uni --version      median {b:6.2f} ms")
        print(f"uni stats vm0      median {o:6.2f} ms  ({o/b:.2f}x start-up; target <= 20 ms)")
        print(f"uni stats (all)    median {e:6.2f} ms  ({e/b:.2f}x start-up)")
        before, start = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.cpu_seconds)
        used, wall = cpu_seconds(daemon.pid) - before, time.monotonic() - start
        print(f"unid CPU while idle-polling {args.vms} VMs every 5 s: {used:.2f} s in {wall:.0f} s = {used/wall*100:.3f}% of a core "
              f"({used/wall*100/args.vms*100:.2f}% per 100 VMs)")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)

if __name__ == "__main__":
    main()
