#!/usr/bin/env python3
"""Uni side by side with its peers on this machine, in one run, interleaved:

libvirt (Debian's libvirtd 9.0, the same QEMU, the same test guest on the
same `microvm` machine and accelerator, serial console to a file):
  - start to the first serial line: `uni run --attach --rm` (first line on
    its stdout) vs `virsh create` of an equivalent domain (first line in
    the serial file, polled every 0.5 ms); target uni >= 5x faster;
  - with N VMs running in each: `uni stats` vs `virsh domstats`, `uni ps -a`
    vs `virsh list --all` (targets <= 0.75x); unid's RSS vs libvirtd's.
Docker (Debian's docker.io, a dockerd started here with its own data root,
no network; the image imported from busybox-static's binary, since nothing
can be pulled here): idle containers (`busybox sleep`) vs idle test guests,
at each of --sizes: `uni ps` vs `docker ps`, `uni inspect` vs `docker
inspect` (one VM / container), `uni stats` vs `docker stats --no-stream`
(target <= 0.05x), unid's RSS vs dockerd's + containerd's.

Installs the packages it needs with apt-get (root). Every daemon, VM,
domain and container it starts is stopped on exit, failure included.

Usage: scripts/bench-peers.py [--quick] [--accel tcg|kvm] [--bin DIR] [--json OUT]
"""
import argparse, io, json, os, shutil, signal, subprocess, sys, tarfile, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_common import Unid, default_bin, ensure_kernel, first_line, interleaved, rss_bytes, summary, terminate, wait_until, write_json

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
DOCKER = "/usr/bin/docker"  # Debian's client, the same version as its dockerd
CLEANUP = []  # callables run in reverse order on exit


def run_cleanups():
    """Runs and forgets every registered clean-up, newest first; one failing does not stop the others."""
    while CLEANUP:
        try:
            CLEANUP.pop()()
        except Exception as error:
            print(f"peers: cleanup: {error}", file=sys.stderr)


def apt_install(packages):
    missing = [p for p in packages if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout != "install ok installed"]
    if missing:
        print(f"peers: apt-get install {' '.join(missing)}", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env, stdout=subprocess.DEVNULL)



# ---------------------------------------------------------------- libvirt

class Libvirt:
    def __init__(self, work, kernel, accel):
        apt_install(["libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients"])
        # Without libvirt-daemon-system (polkit, firewalld, systemd units) the
        # QEMU driver still wants its default user to exist, and runs QEMU as
        # root only when told: the same as unid, which runs QEMU as itself.
        if subprocess.run(["id", "libvirt-qemu"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "libvirt-qemu"], check=True)
        self.conf = "/etc/libvirt/qemu.conf"
        if not os.path.exists(self.conf):
            os.makedirs("/etc/libvirt", exist_ok=True)
            with open(self.conf, "w") as f:
                f.write('# written by uni scripts/bench-peers.py, removed when it ends\n'
                        'user = "root"\ngroup = "root"\nsecurity_driver = "none"\nstdio_handler = "file"\n')
            CLEANUP.append(lambda: os.remove(self.conf))
        for folder in ("/var/log/libvirt", "/var/lib/libvirt/qemu", "/run/libvirt"):
            os.makedirs(folder, exist_ok=True)
        if subprocess.run(VIRSH + ["version"], capture_output=True).returncode == 0:
            raise RuntimeError("a libvirtd is already running here; stop it first")
        self.work = work
        self.kernel = os.path.join(work, "kernel.elf")
        shutil.copy(kernel, self.kernel)
        os.chmod(work, 0o755)
        self.accel = accel
        self.daemon = subprocess.Popen(["libvirtd", "--pid-file", os.path.join(work, "libvirtd.pid")],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "libvirtd.log"), "w"))
        CLEANUP.append(self.stop)
        if not wait_until(lambda: subprocess.run(VIRSH + ["version"], capture_output=True).returncode == 0, 30):
            raise RuntimeError(f"libvirtd did not start: {work}/libvirtd.log")
        self.version = subprocess.run(VIRSH + ["version", "--daemon"], capture_output=True, text=True).stdout.strip().splitlines()

    def domain_xml(self, name, serial):
        return f"""<domain type='{'kvm' if self.accel == 'kvm' else 'qemu'}'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='microvm'>hvm</type><kernel>{self.kernel}</kernel></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""

    def create(self, name):
        """Seconds from spawning `virsh create` to the first complete line in
        the serial file, and to virsh's exit."""
        serial = os.path.join(self.work, f"{name}.serial")
        xml = os.path.join(self.work, f"{name}.xml")
        with open(xml, "w") as f:
            f.write(self.domain_xml(name, serial))
        if os.path.exists(serial):
            os.remove(serial)
        start = time.monotonic()
        proc = subprocess.Popen(VIRSH + ["create", xml], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = None
        while time.monotonic() - start < 30:
            try:
                with open(serial, "rb") as f:
                    if b"\n" in f.read(4096):
                        line = time.monotonic() - start
                        break
            except FileNotFoundError:
                pass
            if proc.poll() not in (None, 0):
                raise RuntimeError(f"virsh create failed: {proc.stderr.read().decode()}")
            time.sleep(0.0005)
        proc.wait(timeout=30)
        exited = time.monotonic() - start
        if line is None:
            raise RuntimeError(f"no serial line from {name}")
        return line, exited

    def destroy_all(self):
        names = subprocess.run(VIRSH + ["list", "--name"], capture_output=True, text=True).stdout.split()
        for name in names:
            subprocess.run(VIRSH + ["destroy", name], capture_output=True)

    def stop(self):
        self.destroy_all()
        if self.daemon.poll() is None:
            terminate(self.daemon, timeout=30)


def bench_libvirt(args, unid, kernel, work):
    os.makedirs(os.path.join(work, "libvirt"))
    lv = Libvirt(os.path.join(work, "libvirt"), kernel, args.accel)
    result = {"libvirt": lv.version, "machine": "microvm", "accel": args.accel}
    result["libvirtd_rss_idle"] = rss_bytes(lv.daemon.pid)
    result["unid_rss_idle"] = rss_bytes(unid.pid)
    uni_argv = [unid.uni, "run", "--attach", "--rm", "--memory", "32M", kernel, "--cmdline", "exit=0"]
    uni_times, virsh_line, virsh_exit = [], [], []
    for index in range(2 + args.first_line_runs):  # 2 warm-up pairs
        u = first_line(uni_argv, unid.env)[0]
        line, exited = lv.create(f"perf-fl-{index}")
        lv.destroy_all()
        if index >= 2:
            uni_times.append(u); virsh_line.append(line); virsh_exit.append(exited)
    result["first_line"] = {"uni": summary(uni_times), "virsh_create": summary(virsh_line), "virsh_create_exit": summary(virsh_exit)}
    n = args.libvirt_vms
    unid.run_vms(n, kernel, prefix="lv")
    for index in range(n):
        lv.create(f"perf-lv-{index}")
    time.sleep(6)  # one poll of unid's sampler: every VM has two samples
    times = interleaved([
        ("uni stats", [unid.uni, "stats"]),
        ("virsh domstats", VIRSH + ["domstats"]),
        ("uni ps -a", [unid.uni, "ps", "-a"]),
        ("virsh list --all", VIRSH + ["list", "--all"]),
    ], args.runs, unid.env)
    result["vms"] = n
    result["commands"] = {name: summary(samples) for name, samples in times.items()}
    result["libvirtd_rss"] = rss_bytes(lv.daemon.pid)
    result["unid_rss"] = rss_bytes(unid.pid)
    lv.stop()
    for index in range(n):
        unid.api.call("DELETE", f"/v1/vms/lv{index}?force=true")
    return result


# ---------------------------------------------------------------- Docker

class Docker:
    def __init__(self, work):
        apt_install(["docker.io", "busybox-static"])
        self.work = work
        self.sock = os.path.join(work, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}")
        self.env.pop("DOCKER_CONTEXT", None)
        self.log = open(os.path.join(work, "dockerd.log"), "w")
        # Its own data and exec roots and socket; no bridge, no iptables:
        # the containers need no network, and the host's rules stay untouched.
        self.daemon = subprocess.Popen(["dockerd", "--data-root", os.path.join(work, "root"), "--exec-root", os.path.join(work, "exec"),
                                        "-H", f"unix://{self.sock}", "--pidfile", os.path.join(work, "docker.pid"),
                                        "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false"],
                                       stdout=self.log, stderr=self.log)
        CLEANUP.append(self.stop)
        if not wait_until(lambda: self.docker("version", check=False).returncode == 0, 60, 0.2):
            raise RuntimeError(f"dockerd did not start: {work}/dockerd.log")
        self.version = self.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        # An image from busybox-static's binary: nothing can be pulled here.
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add("/bin/busybox", arcname="bin/busybox")
            for applet in ("sh", "sleep"):
                info = tarfile.TarInfo(f"bin/{applet}"); info.type = tarfile.SYMTYPE; info.linkname = "busybox"
                tar.addfile(info)
        subprocess.run([DOCKER, "import", "-", "perf-busybox:local"], input=buffer.getvalue(), env=self.env, check=True, capture_output=True)
        self.count = 0

    def docker(self, *args, check=True):
        return subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True, check=check)

    def containerd_pid(self):
        out = subprocess.run(["pgrep", "-P", str(self.daemon.pid), "-x", "containerd"], capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def grow(self, n):
        while self.count < n:
            self.docker("run", "-d", "--network", "none", "--name", f"perf-c{self.count}", "perf-busybox:local", "/bin/busybox", "sleep", "1000000")
            self.count += 1

    def stop(self):
        if self.daemon.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            terminate(self.daemon, timeout=60)
        self.log.close()


def bench_docker(args, unid, kernel, work):
    os.makedirs(os.path.join(work, "docker"))
    docker = Docker(os.path.join(work, "docker"))
    result = {"docker": docker.version, "sizes": []}
    containerd = docker.containerd_pid()
    result["dockerd_rss_idle"] = rss_bytes(docker.daemon.pid)
    result["containerd_rss_idle"] = rss_bytes(containerd) if containerd else None
    result["unid_rss_idle"] = rss_bytes(unid.pid)
    have = 0
    env = dict(docker.env, UNI_HOME=unid.data)
    for n in args.sizes:
        docker.grow(n)
        unid.run_vms(n, kernel, prefix="d", first=have)
        have = n
        time.sleep(6)
        times = interleaved([
            ("uni ps", [unid.uni, "ps"]), ("docker ps", [DOCKER, "ps"]),
            ("uni inspect", [unid.uni, "inspect", "d0"]), ("docker inspect", [DOCKER, "inspect", "perf-c0"]),
        ], args.runs, env)
        stats = interleaved([("uni stats", [unid.uni, "stats"]), ("docker stats --no-stream", [DOCKER, "stats", "--no-stream"])],
                            args.stats_runs, env, warmup=1)
        times.update(stats)
        containerd = docker.containerd_pid()
        result["sizes"].append({"n": n, "commands": {name: summary(samples) for name, samples in times.items()},
                                "unid_rss": rss_bytes(unid.pid), "dockerd_rss": rss_bytes(docker.daemon.pid),
                                "containerd_rss": rss_bytes(containerd) if containerd else None})
    docker.stop()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small counts: checks the pipeline, not a measurement")
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--bin", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--skip", default="", help="comma-separated: libvirt,docker")
    args = parser.parse_args()
    args.runs, args.stats_runs, args.first_line_runs, args.libvirt_vms, args.sizes = (3, 2, 3, 2, [2, 4]) if args.quick else (15, 5, 21, 20, [20, 100])
    skip = set(filter(None, args.skip.split(",")))
    kernel = ensure_kernel()
    work = tempfile.mkdtemp(prefix="uni-peers-")
    result = {"quick": args.quick}
    unid = None
    try:
        unid = Unid(args.bin or default_bin(), accel=args.accel, prefix="uni-peers-unid-")
        for name, bench in (("libvirt", bench_libvirt), ("docker", bench_docker)):
            if name in skip:
                continue
            try:
                result[name] = bench(args, unid, kernel, work)
            except Exception as error:  # one peer failing must not lose the other's figures
                print(f"peers: {name}: {error}", file=sys.stderr)
                result[name] = {"error": str(error)}
            finally:
                run_cleanups()
    finally:
        run_cleanups()
        if unid:
            unid.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
