/// The dashboard's stylesheet and script, served as files
/// (`/ui/static/app.css`, `/ui/static/app.js`) so the pages need no inline
/// style or script and the Content-Security-Policy can forbid both.
enum DashboardAssets {
    static let css = """
    :root { --bg: #f6f7f9; --fg: #1c2128; --muted: #667085; --card: #ffffff; --line: #e3e6ea; --accent: #2563eb;
      --ok: #15803d; --warn: #b45309; --bad: #b91c1c; --code: #eef1f5; --spark: #2563eb; }
    @media (prefers-color-scheme: dark) {
      :root { --bg: #0f1216; --fg: #e6e9ee; --muted: #8b95a5; --card: #171b21; --line: #2a313a; --accent: #60a5fa;
        --ok: #4ade80; --warn: #fbbf24; --bad: #f87171; --code: #20262e; --spark: #60a5fa; }
    }
    * { box-sizing: border-box; }
    body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
    a { color: var(--accent); text-decoration: none; }
    a:hover { text-decoration: underline; }
    code, pre { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 13px; }
    .top { display: flex; align-items: baseline; gap: .6rem; padding: .8rem 1.5rem; border-bottom: 1px solid var(--line); background: var(--card); }
    .brand { font-weight: 700; font-size: 1.15rem; color: var(--fg); }
    .sub, .muted { color: var(--muted); font-weight: normal; }
    main { max-width: 1200px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
    h1 { font-size: 1.4rem; margin: .4rem 0 1rem; display: flex; flex-wrap: wrap; align-items: center; gap: .6rem; }
    h2 { font-size: 1rem; margin: 0 0 .7rem; }
    .crumbs { margin: 0; color: var(--muted); }
    .scroll { overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; }
    .vms { background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
    .vms th, .vms td { text-align: left; padding: .55rem .8rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
    .vms th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
    .vms tr:last-child td { border-bottom: none; }
    .num { text-align: right !important; font-variant-numeric: tabular-nums; }
    .path { max-width: 22rem; overflow: hidden; text-overflow: ellipsis; }
    .state { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; border: 1px solid currentColor; }
    .state-running { color: var(--ok); }
    .state-starting, .state-stopping { color: var(--warn); }
    .state-created { color: var(--muted); }
    h1 .state, h1 .health { font-size: .8rem; font-weight: normal; }
    .health { color: var(--muted); }
    .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 1rem; margin-top: 1rem; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.1rem; min-width: 0; }
    .wide { margin-top: 1rem; }
    .kv th, .kv td { text-align: left; vertical-align: top; padding: .3rem .4rem; border-bottom: 1px solid var(--line); }
    .kv th { width: 40%; color: var(--muted); font-weight: normal; }
    .kv td { word-break: break-all; }
    .kv tr:last-child th, .kv tr:last-child td { border-bottom: none; }
    .masked { color: var(--muted); }
    .stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: .6rem 1rem; margin: 0; }
    .stats dt { color: var(--muted); font-size: .8rem; }
    .stats dd { margin: 0; font-size: 1.15rem; font-variant-numeric: tabular-nums; }
    .sparks { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 1rem; margin-top: 1rem; }
    figure { margin: 0; }
    figcaption { color: var(--muted); font-size: .8rem; margin-bottom: .2rem; }
    .spark { width: 100%; height: 48px; background: var(--code); border-radius: 6px; }
    .spark polyline { fill: none; stroke: var(--spark); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
    .console { background: var(--code); padding: .8rem; border-radius: 6px; max-height: 26rem; overflow: auto; white-space: pre-wrap; word-break: break-all; margin: 0; }
    """

    static let js = """
    // Polls the VM's stats every 3 s and updates the numbers and sparklines;
    // the page already shows the numbers of its render without this.
    (function () {
      'use strict';
      var body = document.body;
      var id = body.getAttribute('data-vm');
      if (!id) { return; }
      var polls = 0;
      function percent(v) { return (Math.round(v * 10) / 10).toFixed(1) + '%'; }
      function seconds(v) { return v.toFixed(2) + ' s'; }
      function bytes(v) {
        if (v < 1024) { return v + ' B'; }
        var units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
        var scaled = v / 1024, unit = 0;
        while (scaled >= 1024 && unit < units.length - 1) { scaled /= 1024; unit += 1; }
        return scaled.toFixed(1) + ' ' + units[unit];
      }
      function show(key, value, format) {
        var el = document.querySelector('[data-stat="' + key + '"]');
        if (el) { el.textContent = (value === null || value === undefined) ? '-' : format(value); }
      }
      function points(values) {
        var measured = [], top = 1e-9, step = 120 / Math.max(values.length - 1, 1);
        values.forEach(function (v, i) { if (v !== null && v !== undefined) { measured.push([i, v]); top = Math.max(top, v); } });
        if (measured.length < 2) { return ''; }
        return measured.map(function (p) { return (p[0] * step).toFixed(1) + ',' + (30 - p[1] / top * 26).toFixed(1); }).join(' ');
      }
      function spark(key, values) {
        var el = document.getElementById('spark-' + key);
        if (el) { el.setAttribute('points', points(values)); }
      }
      function network(samples) {
        var rates = [];
        for (var i = 1; i < samples.length; i++) {
          var a = samples[i - 1], b = samples[i];
          var ok = a.network_rx_bytes !== null && a.network_tx_bytes !== null && b.network_rx_bytes !== null && b.network_tx_bytes !== null;
          var dt = (Date.parse(b.sampled_at) - Date.parse(a.sampled_at)) / 1000;
          var moved = ok ? (b.network_rx_bytes + b.network_tx_bytes) - (a.network_rx_bytes + a.network_tx_bytes) : -1;
          rates.push(moved >= 0 && dt > 0 ? moved / dt : null);
        }
        return rates;
      }
      function update(history) {
        var s = history.current;
        show('cpu_percent', s.cpu_percent, percent);
        show('cpu_seconds', s.cpu_seconds, seconds);
        ['memory_rss_bytes', 'network_rx_bytes', 'network_tx_bytes', 'disk_read_bytes', 'disk_written_bytes'].forEach(function (key) {
          show(key, s[key], bytes);
        });
        show('samples', history.recent.length, String);
        show('sampled_at', s.sampled_at, function (v) { return v.substr(11, 8) + ' UTC'; });
        show('status', '', String);
        spark('cpu', history.recent.map(function (r) { return r.cpu_percent; }));
        spark('memory', history.recent.map(function (r) { return r.memory_rss_bytes; }));
        spark('network', network(history.recent));
      }
      function poll() {
        fetch('/ui/api/vm/' + encodeURIComponent(id) + '/stats', { cache: 'no-store' })
          .then(function (response) {
            return response.json().then(function (json) {
              if (response.ok) { update(json); } else { show('status', json.error || 'not running', String); }
            });
          })
          .catch(function () { show('status', 'unreachable', String); })
          .then(function () {
            polls += 1;
            body.setAttribute('data-polls', String(polls));
            setTimeout(poll, 3000);
          });
      }
      setTimeout(poll, 3000);
    })();
    """
}
