"""Helpers shared by the end-to-end benchmark scripts that scripts/perf-report.sh
runs (bench-peers.py, bench-density.py, bench-rss.py, soak.py): starting
unid in a temp data dir, talking to its API over the Unix socket without a
CLI process, timing commands, reading a process's RSS, CPU and open files,
and writing a script's results as JSON for scripts/perf-render.py."""
import http.client, json, os, signal, socket, statistics, subprocess, sys, tempfile, time

# A SIGTERM (scripts/perf-report.sh's trap, a timeout) unwinds like Ctrl-C,
# so that every `finally` stops the daemons, VMs and containers it started.
signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = os.path.join(ROOT, ".build/guests/uni-test-kernel.elf")


def default_bin():
    dist = os.path.join(ROOT, ".build/dist")
    if os.path.exists(os.path.join(dist, "unid")):
        return dist
    return subprocess.check_output(["swift", "build", "--show-bin-path"], cwd=ROOT, text=True).strip()


def ensure_kernel():
    if not os.path.exists(KERNEL):
        subprocess.check_call([os.path.join(ROOT, "Tests/Guests/build.sh"), os.path.join(ROOT, ".build/guests")])
    return KERNEL


def write_json(path, data):
    """Writes the results (if a path was given) and echoes them on stdout."""
    text = json.dumps(data, indent=2, sort_keys=True)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
    print(text)


def rss_bytes(pid):
    """VmRSS, RssAnon and RssFile of a process, in bytes."""
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            number = int(value.split()[0])
            out[key] = number if key == "Threads" else number * 1024
    return out


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executable_rss(pid):
    """Resident bytes of the process's own executable, by mapping kind:
    {"r-xp": code, "r--p": read-only data, "rw-p": data}."""
    exe, out, current = os.readlink(f"/proc/{pid}/exe"), {}, None
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if len(parts) >= 5 and "-" in parts[0] and ":" not in parts[0]:
            current = parts[1] if len(parts) > 5 and parts[5] == exe else None
        elif current and line.startswith("Rss:"):
            out[current] = out.get(current, 0) + int(parts[1]) * 1024
    return out


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed(argv, env=None):
    start = time.monotonic()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - start


def interleaved(commands, runs, env=None, warmup=2):
    """Times each named command `runs` times, interleaved so that machine noise
    hits them alike; returns {name: [seconds]}."""
    times = {name: [] for name, _ in commands}
    for _ in range(warmup):
        for _, argv in commands:
            timed(argv, env)
    for _ in range(runs):
        for name, argv in commands:
            times[name].append(timed(argv, env))
    return times


def summary(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class API:
    """unid's API over its socket, one connection per request (as `uni` does)."""
    def __init__(self, socket_path):
        self.socket_path = socket_path

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        connection = UnixHTTPConnection(self.socket_path)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status not in expect:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
            return json.loads(payload) if payload else None
        finally:
            connection.close()


def first_line(argv, env=None):
    """Seconds from spawn to the first complete stdout line, and the line; then reaps the process."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline()
    elapsed = time.monotonic() - start
    if not line:
        raise RuntimeError(f"no output from {argv[0]}: {proc.stderr.read().decode()}")
    proc.stdout.read()
    proc.wait(timeout=30)
    return elapsed, line.decode().strip()


def terminate(process, timeout):
    """SIGTERM, then SIGKILL if `process` is still there after `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Unid:
    """A unid in a temp data dir, stopped (SIGTERM, then SIGKILL) on exit."""
    def __init__(self, bin_dir, accel="tcg", extra=(), prefix="uni-perf-"):
        self.bin_dir = bin_dir
        self.data = tempfile.mkdtemp(prefix=prefix)
        self.uni = os.path.join(bin_dir, "uni")
        self.env = dict(os.environ, UNI_HOME=self.data)
        self.log = open(os.path.join(self.data, "unid.log"), "w")
        self.process = subprocess.Popen([os.path.join(bin_dir, "unid"), "--data-dir", self.data, "--accel", accel,
                                         "--log-level", "warning", *extra], stdout=self.log, stderr=self.log)
        self.socket = os.path.join(self.data, "unid.sock")
        self.api = API(self.socket)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api.call("GET", "/v1/info")
                break
            except (OSError, RuntimeError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    sys.exit(f"unid did not start: see {self.data}/unid.log")
                time.sleep(0.05)

    @property
    def pid(self):
        return self.process.pid

    def cli(self, *args):
        return subprocess.run([self.uni, *args], env=self.env, capture_output=True, text=True, check=True).stdout

    def run_vms(self, count, kernel, memory="32M", prefix="vm", first=0):
        """Starts idle test guests PREFIX{first}..PREFIX{count-1} through the API (what `uni run` sends)."""
        for index in range(first, count):
            self.api.call("POST", "/v1/vms", {"name": f"{prefix}{index}", "image": kernel, "memory_bytes": parse_size(memory),
                                              "cpus": 1, "env": {}, "ports": [], "auto_remove": False})

    def stop(self):
        if self.process.poll() is None:
            # Kill the VMs first: a graceful stop of many guests takes a while.
            try:
                for vm in self.api.call("GET", "/v1/vms?all=true") or []:
                    if vm.get("state") == "running":
                        try:
                            self.api.call("POST", f"/v1/vms/{vm['id']}/kill")
                        except Exception:
                            pass
            except Exception:
                pass
            terminate(self.process, timeout=60)
        self.log.close()
        subprocess.run(["rm", "-rf", self.data])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def wrk(url, seconds, connections=16, threads=2):
    """One wrk run (after a 2 s warm-up) with --latency; returns req/s and p50/p90/p99 in ms."""
    subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", "-d2s", url], check=True, capture_output=True)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    result = {"url": url, "seconds": seconds, "connections": connections}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["requests_per_second"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            result["p" + parts[0].rstrip("%")] = wrk_ms(parts[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            result.setdefault("errors", []).append(line.strip())
    return result


def wrk_ms(text):
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    return float(text)
