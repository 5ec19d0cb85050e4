#!/usr/bin/env python3
"""Writes the link order of unid's code: every function unid runs while it
starts, then those it adds while it answers the socket API, /metrics and
the dashboard (two callgrind dumps, each in callgrind's order). scripts/build-release.sh links
unid a second time with it (lld --symbol-ordering-file), so the code a
running unid uses sits together: the kernel maps an executable's pages
64 KB around each one touched, and code scattered over a 37 MB text made
most of unid's idle RSS (docs/performance.md, "unid's memory").

Usage: scripts/startup-order.py UNID ORDER_FILE [KERNEL]

With KERNEL (the test guest, .build/guests/uni-test-kernel.elf), one VM
also runs, is sampled and inspected, killed and removed, so the lifecycle's
code joins the order.

UNID runs under valgrind's callgrind, which names every function executed
(its debug info is stripped first: valgrind 3.19 cannot read it), in a temp
data dir with listeners on free loopback ports, and is stopped with
SIGTERM. Exit status 0 with ORDER_FILE written; else 1 and one line saying
why (the caller then links without an order).
"""
import glob, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_common import API, free_port, terminate


# No proxy from the environment for loopback.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(path, port):
    """One GET on loopback; True when it answered 2xx."""
    try:
        with LOOPBACK.open(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            response.read()
            return True
    except OSError:  # URLError and HTTPError (4xx, 5xx) among them
        return False


def answers(api, path):
    try:
        api.call("GET", path)
        return True
    except (OSError, RuntimeError, ValueError):  # ValueError: a reply that is not JSON (logs)
        return False


def exercise_vm(api, kernel, metrics):
    """Runs one VM through its life: create and start, stats, inspect, logs, kill, remove."""
    try:
        api.call("POST", "/v1/vms", {"name": "order", "image": kernel, "memory_bytes": 32 << 20, "cpus": 1,
                                     "env": {}, "ports": [], "auto_remove": False})
        deadline = time.monotonic() + 60
        while api.call("GET", "/v1/vms/order").get("state") != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        for path in ["/v1/vms/order/stats", "/v1/stats", "/v1/vms/order", "/v1/vms/order/logs"]:
            answers(api, path)
        get("/metrics", metrics)
        api.call("POST", "/v1/vms/order/kill")
        api.call("DELETE", "/v1/vms/order")
    except (OSError, RuntimeError) as error:
        print(f"startup-order: the VM's part was cut short: {error}", file=sys.stderr)


def qemu_under(folder):
    """QEMU processes whose command line names `folder`."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            line = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if entry.isdigit() and "qemu-system" in line and folder in line:
            pids.append(int(entry))
    return pids


def functions(dump):
    """The functions of the executable itself (ob=.../unid) named by fn= lines, in order."""
    names, in_unid = [], False
    for line in open(dump, errors="replace"):
        if line.startswith("ob="):
            in_unid = line.rstrip().endswith("/unid")
        elif line.startswith("fn=") and in_unid:
            name = re.sub(r"'\d+$", "", line[3:].strip())  # '2: a recursion level
            if not name.startswith("0x"):
                names.append(name)
    return names


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: scripts/startup-order.py UNID ORDER_FILE [KERNEL]")
    unid, order = sys.argv[1], sys.argv[2]
    kernel = os.path.abspath(sys.argv[3]) if len(sys.argv) == 4 else None
    if not shutil.which("valgrind"):
        print("startup-order: valgrind is not installed", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="uni-order-")
    process = None
    try:
        binary = os.path.join(work, "unid")
        subprocess.run(["strip", "--strip-debug", "-o", binary, unid], check=True)
        data, metrics, ui = os.path.join(work, "data"), free_port(), free_port()
        api = API(os.path.join(data, "unid.sock"))
        log = open(os.path.join(work, "log"), "w")
        process = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no", "--dump-instr=no",
                                    f"--callgrind-out-file={work}/profile", binary, "--data-dir", data, "--accel", "tcg", "--log-level", "warning",
                                    "--metrics-addr", f"127.0.0.1:{metrics}", "--ui-addr", f"127.0.0.1:{ui}"],
                                   stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while not answers(api, "/v1/info"):
            if process.poll() is not None or time.monotonic() > deadline:
                print("startup-order: unid did not start under valgrind: " + open(log.name).read()[-400:], file=sys.stderr)
                return 1
            time.sleep(0.1)
        # The start-up is dumped first, so its functions lead the order.
        subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
        for path in ["/v1/info", "/v1/vms", "/v1/vms?all=true", "/v1/stats", "/v1/images"]:
            answers(api, path)
        if kernel:
            exercise_vm(api, kernel, metrics)
        for path in ["/metrics", "/health"]:
            get(path, metrics)
        for path in ["/ui", "/ui/api/vms"]:
            get(path, ui)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        dumps = sorted(glob.glob(f"{work}/profile.*"), key=lambda p: int(p.rsplit(".", 1)[1])) + [f"{work}/profile"]
        seen, names = set(), []
        for dump in filter(os.path.exists, dumps):
            for name in functions(dump):
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        if len(names) < 1000:
            print(f"startup-order: only {len(names)} functions profiled; expected thousands", file=sys.stderr)
            return 1
        with open(order, "w") as f:
            f.write("\n".join(names) + "\n")
        print(f"startup-order: {len(names)} functions in {order}")
        return 0
    finally:
        if process and process.poll() is None:
            terminate(process, timeout=60)  # SIGTERM: unid stops its VM
        for pid in qemu_under(work):  # after a SIGKILL: none normally
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
