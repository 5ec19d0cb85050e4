import Mustache

/// The dashboard's Mustache templates, as string constants so the binary
/// needs no resource bundle next to it.
///
/// Every value is written with double mustaches, which escape HTML: VM
/// names, images, environment values and console output are user data, so
/// a triple mustache (no escaping) must never appear here. No inline
/// script or style either: the Content-Security-Policy forbids both.
enum DashboardTemplates {
    static let head = """
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="color-scheme" content="light dark">
    <title>{{title}} · uni</title>
    <link rel="stylesheet" href="/ui/static/app.css">
    </head>
    """

    static let nav = """
    <header class="top"><a class="brand" href="/ui">uni</a><span class="sub">dashboard</span></header>
    """

    static let list = """
    {{> head}}
    <body>
    {{> nav}}
    <main>
    <h1>Virtual machines</h1>
    {{#empty}}<p class="muted">No VMs yet. Start one with <code>uni run IMAGE</code>.</p>{{/empty}}
    {{^empty}}
    <div class="scroll">
    <table class="vms">
    <thead><tr><th>Name</th><th>ID</th><th>State</th><th>Health</th><th>Image</th><th>Uptime</th><th class="num">CPU</th><th class="num">Memory</th></tr></thead>
    <tbody>
    {{#rows}}
    <tr><td><a href="/ui/vm/{{id}}">{{name}}</a></td><td><code>{{shortID}}</code></td><td><span class="state state-{{state}}">{{state}}</span></td><td>{{health}}</td><td class="path">{{image}}</td><td>{{uptime}}</td><td class="num">{{cpu}}</td><td class="num">{{memory}}</td></tr>
    {{/rows}}
    </tbody>
    </table>
    </div>
    {{/empty}}
    </main>
    </body>
    </html>
    """

    static let detail = """
    {{> head}}
    <body data-vm="{{id}}">
    {{> nav}}
    <main>
    <p class="crumbs"><a href="/ui">VMs</a> / {{name}}</p>
    <h1>{{name}} <span class="state state-{{state}}">{{state}}</span> <span class="health">health: {{health}}</span></h1>
    <section class="card wide">
    <h2>Live stats <span class="muted" data-stat="status">{{^running}}not running{{/running}}</span></h2>
    <dl class="stats">
    {{#stats}}<div><dt>{{label}}</dt><dd data-stat="{{key}}">{{value}}</dd></div>{{/stats}}
    </dl>
    <div class="sparks">
    {{#sparklines}}<figure><figcaption>{{label}}</figcaption><svg class="spark" viewBox="0 0 120 32" preserveAspectRatio="none" role="img" aria-label="{{label}}"><polyline id="spark-{{key}}" points="{{points}}"></polyline></svg></figure>{{/sparklines}}
    </div>
    </section>
    <div class="grid">
    <section class="card"><h2>Configuration</h2><table class="kv">{{#config}}<tr><th>{{label}}</th><td>{{value}}</td></tr>{{/config}}</table></section>
    <section class="card"><h2>Restarts</h2><table class="kv">{{#restart}}<tr><th>{{label}}</th><td>{{value}}</td></tr>{{/restart}}</table></section>
    <section class="card"><h2>Ports</h2>{{#noPorts}}<p class="muted">No ports published.</p>{{/noPorts}}<table class="kv">{{#ports}}<tr><th>{{label}}</th><td><code>{{value}}</code></td></tr>{{/ports}}</table></section>
    <section class="card"><h2>Environment</h2>{{#noEnvironment}}<p class="muted">No variables.</p>{{/noEnvironment}}<table class="kv env">{{#environment}}<tr><th><code>{{label}}</code></th><td{{#masked}} class="masked"{{/masked}}><code>{{value}}</code></td></tr>{{/environment}}</table></section>
    </div>
    <section class="card wide"><h2>Serial console <span class="muted">(last lines)</span></h2>{{#noConsole}}<p class="muted">No output yet.</p>{{/noConsole}}{{^noConsole}}<pre class="console">{{console}}</pre>{{/noConsole}}</section>
    </main>
    <script src="/ui/static/app.js"></script>
    </body>
    </html>
    """

    static let error = """
    {{> head}}
    <body>
    {{> nav}}
    <main>
    <h1>{{status}} · {{title}}</h1>
    <p>{{message}}</p>
    <p><a href="/ui">Back to the VM list</a></p>
    </main>
    </body>
    </html>
    """

    /// The parsed templates; a template that does not parse is a bug caught by every test.
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [("head", head), ("nav", nav), ("list", list), ("detail", detail), ("error", error)] {
            try library.register(text, named: name)
        }
        return library
    }
}
