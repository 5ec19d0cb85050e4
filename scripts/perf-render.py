#!/usr/bin/env python3
"""Renders the results of one scripts/perf-report.sh run (a folder of JSON
and text files) into docs/performance.md: each table lives between
`<!-- perf:NAME -->` and `<!-- /perf:NAME -->` and is replaced whole; the
prose around the markers is left alone. A section whose results are not in
the folder (skipped, or failed in this run) keeps its previous table, with
a note saying it was not measured in this run.

Usage: scripts/perf-render.py RESULTS_DIR [docs/performance.md]
"""
import json, os, re, statistics, sys

MB = 1e6


def load(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    if name.endswith(".json"):
        with open(path) as f:
            data = json.load(f)
        return data
    return open(path).read()


def ms(seconds, digits=None):
    value = seconds * 1000
    if digits is None:
        digits = 2 if value < 10 else (1 if value < 100 else 0)
    return f"{value:.{digits}f} ms"


def us_from_ns(ns):
    return f"{ns / 1000:.2f} us" if ns < 10_000 else (f"{ns / 1000:.0f} us" if ns < 1_000_000 else f"{ns / 1e6:.2f} ms")


def mb(value):
    return f"{value / MB:.1f} MB"


def ratio(a, b):
    return a / b if b else float("nan")


def met(ok):
    return "**met**" if ok else "**not met**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------ package-benchmark

def parse_benchmarks(text):
    """package-benchmark's markdown output (--time-units nanoseconds) ->
    {benchmark: {metric: {p0, p25, p50, p75, p90, p99, p100}}}."""
    results, current = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            results[current] = {}
        elif current and line.startswith("|") and not line.startswith("|-") and "Metric" not in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 8:
                continue
            try:
                values = [float(c) for c in cells[1:8]]
            except ValueError:
                continue
            name = re.sub(r"\s*\(.*?\)|\s*\*", "", cells[0]).strip()
            results[current][name] = dict(zip(["p0", "p25", "p50", "p75", "p90", "p99", "p100"], values))
    return results


def bench(results, name, metric="Time", p="p50"):
    """A wall-clock percentile in ns or a count, or None."""
    for key, metrics in results.items():
        if key.startswith(name):
            for metric_name, values in metrics.items():
                if metric_name.startswith(metric):
                    return values[p]
    return None


# ------------------------------------------------------------ sections

def section_machine(d):
    m = d["machine"]
    return (f"Run of **{m['date']}** (`scripts/perf-report.sh{' --quick' if m.get('quick') else ''}`, commit `{m.get('commit', '?')}`): "
            f"{m['cores']} cores, {m['memory_gib']:.1f} GiB, Linux {m['kernel']}, {m['qemu']}, {m['swift']}; "
            f"KVM: {m['kvm']}; VMs under **{m['accel'].upper()}** unless a row says otherwise. "
            f"Load average (1/5/15 min) at the start {m['load_start']}, at the end {m.get('load_end', '?')}; "
            f"{m.get('others', '')}"
            + ("\n\n**A `--quick` run: small counts to check the pipeline, not measurements.**" if m.get("quick") else ""))


def section_first_line(d):
    rows = []
    for accel in ("tcg", "kvm"):
        r = d.get(f"first-line-{accel}")
        if not r:
            continue
        rows.append([accel.upper(), ms(r["bare"]["median"], 1), ms(r["uni"]["median"], 1), f"**{r['ratio']:.2f}x**",
                     f"<= 1.2x: {met(r['ratio'] <= 1.2)}"])
    if not rows:
        return None
    runs = (d.get("first-line-tcg") or d.get("first-line-kvm"))["runs"]
    return (f"Median of {runs} interleaved runs each:\n\n"
            + table(["accel", "bare `qemu-system-x86_64`", "`uni run --attach`", "ratio", "target"], rows))


def section_telemetry(d):
    b = d.get("benchmarks")
    if not b:
        return None
    rows = []
    for label, name, target in (("`/metrics` render, 1,000 VMs (4 per-VM series each, half running)", "/metrics render, 1000 VMs", 2e6),
                                ("`/metrics` render, 10,000 VMs", "/metrics render, 10000 VMs", 20e6),
                                ("one JSON log line (4 metadata fields)", "JSON log line", 2e3)):
        p50, p99, mallocs = bench(b, name), bench(b, name, p="p99"), bench(b, name, "Malloc")
        if p50 is None or (name == "JSON log line" and bench(b, "JSON log line baseline") == p50 and False):
            continue
        rows.append([label, us_from_ns(p50), us_from_ns(p99), f"{mallocs:.0f}" if mallocs is not None else "", f"<= {us_from_ns(target)}: {met(p99 <= target)}"])
    base = bench(b, "JSON log line baseline")
    line = bench(b, "JSON log line")
    if base is not None:
        rows.append(["baseline: `JSONSerialization` of the same 7 fields", us_from_ns(base), us_from_ns(bench(b, "JSON log line baseline", p="p99")),
                     f"{bench(b, 'JSON log line baseline', 'Malloc'):.0f}", f"log line / baseline: **{ratio(line, base):.2f}x**" if line else ""])
    return table(["benchmark", "p50", "p99", "mallocs", "target"], rows) if rows else None


def section_stats(d):
    b, real, fake = d.get("benchmarks"), d.get("stats-cli-real"), d.get("stats-cli-fake")
    if not (b or real or fake):
        return None
    rows = []
    if b:
        one, base = bench(b, "stats: one VM's sample"), bench(b, "stats baseline: read /proc/self/stat")
        if one is not None:
            rows.append(["one VM's sample: `/proc/<pid>/stat` read and parsed, recorded in the sampler (p50 / p99)",
                         f"**{us_from_ns(one)} / {us_from_ns(bench(b, 'stats: one VM' + chr(39) + 's sample', p='p99'))}**",
                         f"one `/proc/self/stat` read through `FileManager`: {us_from_ns(base)}" if base else "", f"{ratio(one, base):.1f}x" if base else "",
                         f"<= 100 us: {met(bench(b, 'stats: one VM' + chr(39) + 's sample', p='p99') <= 1e5)}"])
        tick = bench(b, "stats: one sampling tick of 100 VMs")
        if tick is not None:
            rows.append(["one sampling tick of 100 VMs (real `/proc` reads, all at once), p50", us_from_ns(tick), "", "", ""])
        many = bench(b, "stats: manager.stats() of 1,000")
        if many is not None:
            rows.append(["`manager.stats()` of 1,000 running VMs (fakes), p50 / p99",
                         f"**{us_from_ns(many)} / {us_from_ns(bench(b, 'stats: manager.stats() of 1,000', p='p99'))}**", "", "",
                         f"<= 100 ms: {met(bench(b, 'stats: manager.stats() of 1,000', p='p99') <= 1e8)}"])
    if real:
        c, v = real["commands"], real["commands"]["--version"]
        rows.append([f"`uni stats vm0` as a whole process, median of {real['runs']}", f"**{ms(c['stats vm0'])}**", f"`uni --version`: {ms(v)}",
                     f"{ratio(c['stats vm0'], v):.1f}x", f"<= 20 ms: {met(c['stats vm0'] <= 0.02)}"])
        rows.append([f"`uni stats`, {real['vms']} real VMs", ms(c["stats"]), ms(v), f"{ratio(c['stats'], v):.1f}x", ""])
        cpu = real.get("cpu")
        if cpu:
            rows.append([f"unid's CPU while its poller samples {real['vms']} idle real VMs every 5 s, over {cpu['wall']:.0f} s",
                         f"{cpu['percent']:.3f}% of a core", f"unid without VMs: {cpu['idle_percent']:.3f}%",
                         f"the VMs' share: **{cpu['per_100_vms_percent']:.2f}% per 100 VMs**", f"<= 1% at 100 VMs: {met(cpu['per_100_vms_percent'] <= 1)}"])
    if fake:
        c, v = fake["commands"], fake["commands"]["--version"]
        rows.append([f"`uni stats`, {fake['vms']:,} fake running VMs (`--fake-vms`: Benchmarks' `UIBenchServer` serving unid's API), median of {fake['runs']}",
                     f"**{ms(c['stats'])}**", f"`uni --version`: {ms(v)}", f"{ratio(c['stats'], v):.1f}x", f"<= 100 ms: {met(c['stats'] <= 0.1)}"])
        rows.append([f"`uni stats vm-0` against the same {fake['vms']:,}", ms(c["stats vm-0"]), ms(v), f"{ratio(c['stats vm-0'], v):.1f}x", ""])
    return table(["what", "figure", "baseline (same run)", "ratio", "target"], rows)


def parse_ui(text):
    """scripts/bench-ui.sh output -> [(path, req/s, p50 ms, p99 ms)]."""
    runs, current = [], None
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("== GET "):
            current = {"path": line[7:].strip()}
            runs.append(current)
        elif current is not None and line.startswith("Requests/sec:"):
            current["rps"] = float(parts[1])
        elif current is not None and len(parts) == 2 and parts[0] in ("50%", "99%"):
            from perf_common import wrk_ms
            current["p" + parts[0][:-1]] = wrk_ms(parts[1])
    return runs


def section_dashboard(d):
    text = d.get("ui")
    if not text:
        return None
    runs = parse_ui(text)
    css = [r for r in runs if r["path"].endswith("app.css")]
    vms = [r for r in runs if r["path"] == "/ui/api/vms"]
    if not css or not vms:
        return None
    rows = []
    for c, v in zip(css, vms):
        rows.append([f"{c['rps']:,.0f} req/s", f"**{v['rps']:,.0f} req/s**", f"{ratio(v['rps'], c['rps']):.2f}x",
                     f"{v['p50']:.2f} / **{v['p99']:.2f} ms**", f">= 10k req/s, p99 <= 5 ms: {met(v['rps'] >= 10000 and v['p99'] <= 5)}"])
    return table(["`/ui/static/app.css` (baseline)", "`/ui/api/vms`, 100 VMs", "ratio", "p50 / p99 (list)", "target"], rows)


def section_network(d):
    text = d.get("network")
    if not text:
        return None
    lines = [l for l in text.splitlines() if l.startswith("bench:")]
    if not lines:
        return None
    return "```\n" + "\n".join(lines) + "\n```"


def section_stores(d):
    b = d.get("benchmarks")
    if not b or bench(b, "store: load 10,000 VMs") is None:
        return None
    rows = []
    base = bench(b, "store: load 10,000 VMs, JSONDecoder") or bench(b, "store baseline") 
    for key, metrics in b.items():
        if key.startswith("store"):
            p50 = bench(b, key)
            p99 = bench(b, key, p="p99")
            if p50 is None:
                continue
            rows.append([key.removeprefix("store: "), us_from_ns(p50), us_from_ns(p99)])
    loads = {k: bench(b, k) for k in b if k.startswith("store: load 10,000 VMs")}
    base = next((v for k, v in loads.items() if "JSONDecoder" in k), None)
    text = table(["benchmark (10,000 VMs where it says so)", "p50", "p99"], rows)
    if base:
        text += "\n\nRatios to the `JSONDecoder` baseline of the same run (p50): " + ", ".join(
            f"{k.removeprefix('store: load 10,000 VMs, ')} **{ratio(v, base):.2f}x**" for k, v in loads.items() if v is not None and "JSONDecoder" not in k) + "."
    return text


def section_registry(d):
    r = d.get("registry")
    if not r:
        return None
    rows = []
    for op in ("push", "pull"):
        u, s = r["seconds"][f"uni {op}"], r["seconds"][f"skopeo {op}"]
        t = r["mib_per_second"][f"uni {op}"] / r["mib_per_second"][f"skopeo {op}"]
        rows.append([op, f"{u:.3f} s ({r['mib_per_second'][f'uni {op}']:.1f} MiB/s)", f"{s:.3f} s ({r['mib_per_second'][f'skopeo {op}']:.1f} MiB/s)",
                     f"**{t:.2f}x**", f">= 0.8x: {met(t >= 0.8)}"])
    return (f"{r['mib']:.0f} MiB, {r['rounds']} rounds, medians:\n\n"
            + table(["", "Uni", "skopeo", "Uni/skopeo throughput", "target"], rows))


def section_libvirt(d):
    p = (d.get("peers") or {}).get("libvirt")
    if not p:
        return None
    if "error" in p:
        return f"Not measured in this run: {p['error']}"
    fl, c = p["first_line"], p["commands"]
    speed = ratio(fl["virsh_create"]["median"], fl["uni"]["median"])
    rows = [
        [f"start to the first serial line (median of {fl['uni']['runs']}, interleaved)", f"`uni run --attach --rm`: **{ms(fl['uni']['median'])}**",
         f"`virsh create`: {ms(fl['virsh_create']['median'])} (virsh exits at {ms(fl['virsh_create_exit']['median'])})",
         f"uni **{speed:.1f}x faster** ({ratio(fl['uni']['median'], fl['virsh_create']['median']):.3f}x the time)", f">= 5x faster: {met(speed >= 5)}"],
    ]
    for u, v in (("uni stats", "virsh domstats"), ("uni ps -a", "virsh list --all")):
        r = ratio(c[u]["median"], c[v]["median"])
        rows.append([f"{p['vms']} VMs running in each, median of {c[u]['runs']}", f"`{u}`: **{ms(c[u]['median'])}**", f"`{v}`: {ms(c[v]['median'])}",
                     f"**{r:.3f}x**", f"<= 0.75x: {met(r <= 0.75)}"])
    rows.append(["daemon RSS, idle", f"unid: {mb(p['unid_rss_idle']['VmRSS'])}", f"libvirtd: {mb(p['libvirtd_rss_idle']['VmRSS'])}",
                 f"{ratio(p['unid_rss_idle']['VmRSS'], p['libvirtd_rss_idle']['VmRSS']):.2f}x", ""])
    rows.append([f"daemon RSS, {p['vms']} VMs", f"unid: {mb(p['unid_rss']['VmRSS'])}", f"libvirtd: {mb(p['libvirtd_rss']['VmRSS'])}",
                 f"{ratio(p['unid_rss']['VmRSS'], p['libvirtd_rss']['VmRSS']):.2f}x", ""])
    version = "; ".join(l.strip() for l in p.get("libvirt", []) if l.startswith(("Running against daemon", "Running hypervisor")))
    return (f"{version}; machine `{p['machine']}`, accel {p['accel'].upper()}, 32 MiB, 1 vCPU, the test kernel idling.\n\n"
            + table(["what", "Uni", "libvirt (same run)", "ratio", "target"], rows))


def section_docker(d):
    p = (d.get("peers") or {}).get("docker")
    if not p:
        return None
    if "error" in p:
        return f"Not measured in this run: {p['error']}"
    rows = []
    for size in p["sizes"]:
        c = size["commands"]
        for u, v, target in (("uni ps", "docker ps", None), ("uni inspect", "docker inspect", None), ("uni stats", "docker stats --no-stream", 0.05)):
            r = ratio(c[u]["median"], c[v]["median"])
            rows.append([size["n"], f"`{u}`: **{ms(c[u]['median'])}**", f"`{v}`: {ms(c[v]['median'])}", f"**{r:.3f}x**",
                         f"<= {target}x: {met(r <= target)}" if target else ""])
        docker_rss = size["dockerd_rss"]["VmRSS"] + (size["containerd_rss"] or {}).get("VmRSS", 0)
        rows.append([size["n"], f"unid RSS: {mb(size['unid_rss']['VmRSS'])}",
                     f"dockerd {mb(size['dockerd_rss']['VmRSS'])} + containerd {mb((size['containerd_rss'] or {}).get('VmRSS', 0))}",
                     f"{ratio(size['unid_rss']['VmRSS'], docker_rss):.2f}x", ""])
    idle_docker = p["dockerd_rss_idle"]["VmRSS"] + (p["containerd_rss_idle"] or {}).get("VmRSS", 0)
    rows.append(["0 (before the first)", f"unid RSS: {mb(p['unid_rss_idle']['VmRSS'])}",
                 f"dockerd {mb(p['dockerd_rss_idle']['VmRSS'])} + containerd {mb((p['containerd_rss_idle'] or {}).get('VmRSS', 0))}",
                 f"{ratio(p['unid_rss_idle']['VmRSS'], idle_docker):.2f}x", ""])
    runs = p["sizes"][0]["commands"]["uni ps"]["runs"], p["sizes"][0]["commands"]["uni stats"]["runs"]
    return (f"Docker {p['docker']}; medians of {runs[0]} interleaved runs ({runs[1]} for the stats pair):\n\n"
            + table(["VMs / containers", "Uni", "Docker (same run)", "ratio", "target"], rows))


def section_rss(d):
    r = d.get("rss")
    if not r:
        return None
    idle, created = r["unid_idle"], r["unid_created"]
    rows = [
        ["unid, idle (no VM, after its first poll)", f"**{mb(idle['VmRSS'])}**", f"{mb(idle['RssAnon'])} / {mb(idle['RssFile'])}", "", f"<= 25 MB: {met(idle['VmRSS'] <= 25e6)}"],
        [f"unid, {r['vms']:,} VM records (created, not started)", f"**{mb(created['VmRSS'])}**", f"{mb(created['RssAnon'])} / {mb(created['RssFile'])}",
         f"{ratio(created['VmRSS'], idle['VmRSS']):.2f}x idle", f"<= 60 MB: {met(created['VmRSS'] <= 60e6)}"],
    ]
    if r.get("fake_n"):
        f0, fn = r["fake_0"], r["fake_n"]
        rows.append(["`UIBenchServer`, 0 VMs (unid's API and dashboard routers, fake backends)", mb(f0["VmRSS"]), f"{mb(f0['RssAnon'])} / {mb(f0['RssFile'])}", "", ""])
        rows.append([f"`UIBenchServer`, {r['vms']:,} running fake VMs (each with two samples)", f"**{mb(fn['VmRSS'])}**",
                     f"{mb(fn['RssAnon'])} / {mb(fn['RssFile'])}", f"{ratio(fn['VmRSS'], f0['VmRSS']):.2f}x its 0-VM run; +{mb(fn['VmRSS'] - f0['VmRSS'])}",
                     f"unid idle + that growth = {mb(idle['VmRSS'] + fn['VmRSS'] - f0['VmRSS'])}: <= 60 MB {met(idle['VmRSS'] + fn['VmRSS'] - f0['VmRSS'] <= 60e6)}"])
    text = table(["process", "VmRSS", "anonymous / file-backed", "ratio", "target"], rows)
    exe = r.get("unid_idle_executable")
    if exe:
        text += (f"\n\nIdle unid's own executable, resident: code (`r-x`) {mb(exe.get('r-xp', 0))}, read-only data {mb(exe.get('r--p', 0))}, "
                 f"data (`rw-`) {mb(exe.get('rw-p', 0))} (from `/proc/<pid>/smaps`).")
    return text


def section_density(d):
    r = d.get("density")
    if not r:
        return None
    w = r["wrk"]
    health = w["health"]
    rows = []
    for key, label in (("ui_api_vms", "`GET /ui/api/vms`"), ("metrics", "`GET /metrics`")):
        x = w[key]
        rows.append([label, f"{x['requests_per_second']:,.0f} req/s", f"{x['p50']:.2f} / {x['p90']:.2f} / **{x['p99']:.2f} ms**",
                     f"`/health`: {health['requests_per_second']:,.0f} req/s, p99 {health['p99']:.2f} ms", f"{ratio(x['p99'], health['p99']):.1f}x",
                     f"p99 <= 50 ms: {met(x['p99'] <= 50)}" + (f" ({'; '.join(x['errors'])})" if x.get("errors") else "")])
    for key, label in (("ui_api_vms", "`GET /ui/api/vms`, 1 connection"), ("metrics", "`GET /metrics`, 1 connection")):
        x, h = (r.get("wrk_c1") or {}).get(key), (r.get("wrk_c1") or {}).get("health")
        if x:
            rows.append([label, f"{x['requests_per_second']:,.0f} req/s", f"{x['p50']:.2f} / {x['p90']:.2f} / **{x['p99']:.2f} ms**",
                         f"`/health`, 1 connection: {h['requests_per_second']:,.0f} req/s, p99 {h['p99']:.2f} ms", f"{ratio(x['p99'], h['p99']):.1f}x",
                         f"p99 <= 50 ms: {met(x['p99'] <= 50)}"])
    s, i = r["sampling"], r["idle"]
    extra = s["percent_of_core"] - i["percent_of_core"]
    rows.append([f"unid's CPU, its poller sampling {r['running']} VMs every 5 s, over {s['wall_seconds']:.0f} s", f"{s['percent_of_core']:.2f}% of a core", "",
                 f"unid without VMs: {i['percent_of_core']:.2f}%", f"+{extra:.2f} points", f"<= 1% at 100 VMs: {met(extra <= 1)}"])
    rows.append(["unid's RSS", f"{mb(r['rss']['VmRSS'])} with {r['running']} VMs; {mb(r['rss_after_wrk']['VmRSS'])} after the wrk runs", "",
                 f"idle: {mb(r['rss_idle']['VmRSS'])}", f"{ratio(r['rss']['VmRSS'], r['rss_idle']['VmRSS']):.2f}x", ""])
    return (f"{r['running']} of {r['vms']} test guests running ({r['accel'].upper()}, 32 MiB each; started through the API in {r['start_all_seconds']:.1f} s); "
            f"load average while they ran: {' / '.join(r['loadavg'])}. wrk: 2 threads, {w['metrics']['connections']} connections, "
            f"{w['metrics']['seconds']} s after a 2 s warm-up (then the same with 1 thread and 1 connection), on the same 2 cores.\n\n"
            + table(["endpoint", "throughput", "p50 / p90 / p99", "baseline (same unid, same run)", "p99 ratio", "target"], rows))


def section_soak(d):
    r = d.get("soak")
    if not r:
        return None
    flat_fd = r["fds_end"] <= r["fds_warm"]
    growth = r["rss_end"] - r["rss_warm"]
    rows = [
        ["open file descriptors", r["fds_start"], r["fds_warm"], r["fds_end"], r["fds_max"], f"flat: {met(flat_fd)}"],
        ["VmRSS", mb(r["rss_start"]), mb(r["rss_warm"]), mb(r["rss_end"]), mb(r["rss_max"]),
         f"{growth / MB:+.2f} MB after warm-up ({ratio(r['rss_end'], r['rss_warm']):.3f}x): {met(growth <= 0.05 * r['rss_warm'])} (flat within 5%)"],
        ["RssAnon (heap)", "", mb(r["rss_anon_warm"]), mb(r["rss_anon_end"]), "", ""],
    ]
    return (f"{r['cycles']:,} cycles in {r['seconds']:.0f} s ({r['per_cycle_ms']:.0f} ms a cycle); "
            f"{r['vms_left']} VMs left at the end. Warm-up: the sample at cycle {r['warm_cycle']}.\n\n"
            + table(["unid", "at start", f"cycle {r['warm_cycle']}", f"cycle {r['cycles']}", "max", "target"], rows))


def section_targets(d):
    """Issue 18's targets in one table."""
    rows = []
    peers = d.get("peers") or {}
    lv = peers.get("libvirt")
    if lv and "error" not in lv:
        fl = lv["first_line"]
        speed = ratio(fl["virsh_create"]["median"], fl["uni"]["median"])
        rows.append(["`uni run` to the first serial line vs `virsh create`", ms(fl["uni"]["median"]), ms(fl["virsh_create"]["median"]), f"{speed:.1f}x faster", ">= 5x faster", met(speed >= 5)])
        for u, v in (("uni stats", "virsh domstats"), ("uni ps -a", "virsh list --all")):
            r = ratio(lv["commands"][u]["median"], lv["commands"][v]["median"])
            rows.append([f"`{u}` vs `{v}`, {lv['vms']} VMs", ms(lv["commands"][u]["median"]), ms(lv["commands"][v]["median"]), f"{r:.3f}x", "<= 0.75x", met(r <= 0.75)])
    dk = peers.get("docker")
    if dk and "error" not in dk:
        for size in dk["sizes"]:
            c = size["commands"]
            r = ratio(c["uni stats"]["median"], c["docker stats --no-stream"]["median"])
            rows.append([f"`uni stats` vs `docker stats --no-stream`, {size['n']}", ms(c["uni stats"]["median"]), ms(c["docker stats --no-stream"]["median"]), f"{r:.4f}x", "<= 0.05x", met(r <= 0.05)])
    rss = d.get("rss")
    if rss:
        idle = rss["unid_idle"]["VmRSS"]
        rows.append(["unid idle RSS", mb(idle), "target 25 MB", f"{idle / 25e6:.2f}x the target", "<= 25 MB", met(idle <= 25e6)])
        created = rss["unid_created"]["VmRSS"]
        rows.append([f"unid RSS, {rss['vms']:,} VM records", mb(created), f"idle {mb(idle)}", f"{ratio(created, idle):.2f}x idle", "<= 60 MB", met(created <= 60e6)])
        if rss.get("fake_n"):
            est = idle + rss["fake_n"]["VmRSS"] - rss["fake_0"]["VmRSS"]
            rows.append([f"unid idle + growth of {rss['vms']:,} running fake VMs", mb(est), f"idle {mb(idle)}", f"{ratio(est, idle):.2f}x idle", "<= 60 MB", met(est <= 60e6)])
    den = d.get("density")
    if den:
        for key in ("ui_api_vms", "metrics"):
            x = den["wrk"][key]
            rows.append([f"API p99, {den['running']} running guests, `{'/ui/api/vms' if key == 'ui_api_vms' else '/metrics'}`", f"{x['p99']:.2f} ms",
                         f"`/health` {den['wrk']['health']['p99']:.2f} ms", f"{ratio(x['p99'], den['wrk']['health']['p99']):.1f}x", "<= 50 ms", met(x["p99"] <= 50)])
        for key in ("ui_api_vms", "metrics"):
            x, h = (den.get("wrk_c1") or {}).get(key), (den.get("wrk_c1") or {}).get("health")
            if x:
                rows.append([f"API p99, one connection, `{'/ui/api/vms' if key == 'ui_api_vms' else '/metrics'}`", f"{x['p99']:.2f} ms",
                             f"`/health` {h['p99']:.2f} ms", f"{ratio(x['p99'], h['p99']):.1f}x", "<= 50 ms", met(x["p99"] <= 50)])
        extra = den["sampling"]["percent_of_core"] - den["idle"]["percent_of_core"]
        rows.append([f"unid CPU sampling {den['running']} guests", f"{den['sampling']['percent_of_core']:.2f}% of a core", f"idle {den['idle']['percent_of_core']:.2f}%",
                     f"+{extra:.2f} points", "<= 1% (issue 12)", met(extra <= 1)])
    soak = d.get("soak")
    if soak:
        rows.append([f"soak, {soak['cycles']:,} cycles: open fds", f"{soak['fds_end']}", f"{soak['fds_warm']} at cycle {soak['warm_cycle']}",
                     f"{ratio(soak['fds_end'], soak['fds_warm']):.2f}x", "flat", met(soak["fds_end"] <= soak["fds_warm"])])
        g = soak["rss_end"] - soak["rss_warm"]
        rows.append([f"soak, {soak['cycles']:,} cycles: RSS", mb(soak["rss_end"]), f"{mb(soak['rss_warm'])} at cycle {soak['warm_cycle']}",
                     f"{ratio(soak['rss_end'], soak['rss_warm']):.3f}x", "flat (within 5%)", met(g <= 0.05 * soak["rss_warm"])])
    if not rows:
        return None
    return table(["target", "Uni", "baseline (same run)", "ratio", "target", "verdict"], rows)


SECTIONS = {
    "machine": section_machine, "targets": section_targets, "first-line": section_first_line, "telemetry": section_telemetry,
    "stats": section_stats, "dashboard": section_dashboard, "network": section_network, "stores": section_stores,
    "registry": section_registry, "libvirt": section_libvirt, "docker": section_docker, "rss": section_rss,
    "density": section_density, "soak": section_soak,
}

FILES = {"machine": "machine.json", "first-line-tcg": "first-line-tcg.json", "first-line-kvm": "first-line-kvm.json",
         "benchmarks": "benchmarks.md", "stats-cli-real": "stats-cli-real.json", "stats-cli-fake": "stats-cli-fake.json",
         "ui": "ui.txt", "network": "network.txt", "registry": "registry.json", "peers": "peers.json", "rss": "rss.json",
         "density": "density.json", "soak": "soak.json"}


def main():
    folder = sys.argv[1]
    doc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs/performance.md")
    data = {key: load(folder, name) for key, name in FILES.items()}
    if data["benchmarks"]:
        data["benchmarks"] = parse_benchmarks(data["benchmarks"])
    text = open(doc).read()
    date = (data["machine"] or {}).get("date", "?")
    for name, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- perf:{re.escape(name)} -->\n)(.*?)(<!-- /perf:{re.escape(name)} -->)", re.S)
        match = pattern.search(text)
        if not match:
            print(f"perf-render: no markers for {name} in {doc}", file=sys.stderr)
            continue
        try:
            body = render(data) if (name != "machine" or data["machine"]) else None
        except Exception as error:  # a malformed result must not lose the others
            print(f"perf-render: {name}: {error!r}", file=sys.stderr)
            body = None
        if body is None:
            old = re.sub(r"\n*_Not measured in the run of .*?_\n*$", "", match.group(2).rstrip("\n"), flags=re.S)
            body = old + f"\n\n_Not measured in the run of {date}: the figures above are from an earlier run._"
            print(f"perf-render: {name}: kept (no results in this run)", file=sys.stderr)
        text = text[:match.start()] + match.group(1) + body.strip("\n") + "\n" + match.group(3) + text[match.end():]
    with open(doc, "w") as f:
        f.write(text)
    print(f"perf-render: wrote {doc}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
