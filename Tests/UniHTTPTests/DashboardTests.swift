import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing
import UniHTTP
import UniKit
import UniKitTesting

/// The dashboard over a real TCP socket on 127.0.0.1, in front of a manager
/// with a scripted hypervisor and fixed stats.
struct DashboardHarness {
    let api: APIHarness
    let port: Int

    static func run(script: @escaping @Sendable (VM) -> ScriptedHypervisor.Script = { _ in .init(consoleOutput: "booted\n") },
                    _ body: @escaping @Sendable (DashboardHarness) async throws -> Void) async throws {
        try await APIHarness(script: script).run { api in
            let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
            let app = Application(router: try DashboardRouter.build(manager: api.manager),
                                  configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                  onServerRunning: { readyContinuation.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService(gracefulShutdownSignals: []) }
                var port = 0
                for await bound in ready { port = bound; break }
                do {
                    try await body(DashboardHarness(api: api, port: port))
                } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    struct Reply {
        let status: Int
        let headers: [String: String]
        let body: String
    }

    /// A GET of `target` exactly as written (no client-side normalisation of `..`).
    func get(_ target: String) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(target)")
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 22)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), headers: headers, body: String(buffer: body))
    }

    func json(_ target: String) async throws -> (status: Int, object: Any) {
        let reply = try await get(target)
        return (reply.status, try JSONSerialization.jsonObject(with: Data(reply.body.utf8), options: [.fragmentsAllowed]))
    }
}

@Suite("Dashboard (/ui) over a real socket")
struct DashboardTests {
    static let hostile = "<script>alert('x')</script>"

    @Test("the list page shows a running VM with its state, health, image, CPU and memory")
    func listPage() async throws {
        try await DashboardHarness.run { ui in
            let vm = try await ui.api.manager.run(VMConfig(name: "web", image: ui.api.image))
            _ = try await ui.api.manager.stats("web")
            let page = try await ui.get("/ui")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.body.contains("href=\"/ui/vm/\(vm.id.rawValue)\">web</a>"))
            #expect(page.body.contains("state-running"))
            #expect(page.body.contains("<td>none</td>"))
            #expect(page.body.contains(ui.api.image))
            #expect(page.body.contains("48.0 MiB"))
            #expect(page.body.contains("0.0%"))
        }
    }

    @Test("an empty list says how to start a VM")
    func emptyList() async throws {
        try await DashboardHarness.run { ui in
            let page = try await ui.get("/ui")
            #expect(page.status == 200)
            #expect(page.body.contains("No VMs yet"))
        }
    }

    @Test("the detail page escapes <script> in env values and console output, and masks secrets")
    func detailEscapesAndMasks() async throws {
        try await DashboardHarness.run(script: { _ in .init(consoleOutput: "hello \(DashboardTests.hostile)\n") }) { ui in
            let environment = ["GREETING": DashboardTests.hostile, "DB_PASSWORD": "hunter2", "api_token": "t0k3n",
                               "MY_SECRET_X": "s3cr3t", "SSH_KEY": "k3y", "PLAIN": "visible"]
            let vm = try await ui.api.manager.run(VMConfig(name: "x.web", image: ui.api.image, ports: [PortMapping(hostPort: 18081, guestPort: 80)],
                                                           environment: environment))
            let page = try await ui.get("/ui/vm/\(vm.id.rawValue)")
            #expect(page.status == 200)
            #expect(!page.body.contains("<script>alert"))
            #expect(page.body.contains("&lt;script&gt;alert"))
            #expect(page.body.contains("hello &lt;script&gt;"))
            for secret in ["hunter2", "t0k3n", "s3cr3t", "k3y"] { #expect(!page.body.contains(secret)) }
            #expect(page.body.contains("••••••"))
            #expect(page.body.contains("visible"))
            #expect(page.body.contains("18081"))
            #expect(page.body.contains("Start count"))
            #expect(page.body.contains("data-stat=\"cpu_seconds\">1.00 s</dd>"))
            #expect(page.body.contains("<polyline id=\"spark-cpu\""))
            // The only script is the static file: the CSP forbids inline ones.
            #expect(page.body.components(separatedBy: "<script").count == 2)
            #expect(page.body.contains("<script src=\"/ui/static/app.js\"></script>"))

            let detail = try await ui.get("/ui/api/vm/\(vm.id.rawValue)")
            #expect(detail.status == 200)
            for secret in ["hunter2", "t0k3n", "s3cr3t", "k3y"] { #expect(!detail.body.contains(secret)) }
            #expect(detail.body.contains("visible"))
            let decoded = try JSONCoding.makeDecoder().decode(DashboardVMDetail.self, from: Data(detail.body.utf8))
            #expect(decoded.health == "none")
            let env = decoded.vm.config.environment
            #expect(env["DB_PASSWORD"] == "••••••")
            #expect(env["api_token"] == "••••••")
            #expect(env["GREETING"] == DashboardTests.hostile)
        }
    }

    @Test("a stopped VM's page says not running instead of numbers")
    func stoppedVM() async throws {
        try await DashboardHarness.run { ui in
            let vm = try await ui.api.manager.run(VMConfig(name: "gone", image: ui.api.image))
            _ = try await ui.api.manager.stop("gone", timeout: .seconds(2))
            let page = try await ui.get("/ui/vm/gone")
            #expect(page.status == 200)
            #expect(page.body.contains("not running"))
            #expect(page.body.contains("data-stat=\"cpu_percent\">-</dd>"))
            let stats = try await ui.json("/ui/api/vm/\(vm.id.rawValue)/stats")
            #expect(stats.status == 409)
            #expect((stats.object as? [String: Any])?["error"] as? String == "vm gone is not running (state: stopped): it has no stats")
        }
    }

    @Test("the JSON API: list, stats with recent samples, logs with tail")
    func jsonAPI() async throws {
        try await DashboardHarness.run(script: { _ in .init(consoleOutput: "one\ntwo\nthree\n") }) { ui in
            let vm = try await ui.api.manager.run(VMConfig(name: "api", image: ui.api.image, environment: ["TOKEN": "abc"]))
            _ = try await ui.api.manager.stats("api")
            let list = try await ui.get("/ui/api/vms")
            #expect(list.status == 200)
            #expect(list.headers["content-type"] == "application/json")
            let rows = try JSONCoding.makeDecoder().decode([DashboardVMSummary].self, from: Data(list.body.utf8))
            #expect(rows.map(\.name) == ["api"])
            #expect(rows.first?.health == "none")
            #expect(rows.first?.memoryRSSBytes == 48 << 20)
            #expect(rows.first?.cpuPercent == 0)
            // Unchanged VMs answer the same bytes (the encoded cache).
            #expect(try await ui.get("/ui/api/vms").body == (try await ui.get("/ui/api/vms").body))

            let stats = try await ui.get("/ui/api/vm/api/stats")
            #expect(stats.status == 200)
            let history = try JSONCoding.makeDecoder().decode(VMStatsHistory.self, from: Data(stats.body.utf8))
            #expect(history.current.cpuSeconds == 1)
            #expect(history.recent.count >= 2)

            let logs = try await ui.json("/ui/api/vm/\(vm.id.rawValue)/logs?tail=2")
            #expect(logs.status == 200)
            #expect((logs.object as? [String: Any])?["output"] as? String == "two\nthree\n")
            let bad = try await ui.json("/ui/api/vm/api/logs?tail=many")
            #expect(bad.status == 400)
            #expect((bad.object as? [String: Any])?["error"] as? String == "invalid tail 'many': expected a whole number of lines, 0 or more")
            #expect(try await ui.json("/ui/api/vm/api/logs?tail=10001").status == 400)
        }
    }

    @Test("the cached list shows a new VM once the cache's short age has passed")
    func listCacheAge() async throws {
        try await DashboardHarness.run { ui in
            #expect(try await ui.get("/ui/api/vms").body == "[]")
            _ = try await ui.api.manager.run(VMConfig(name: "late", image: ui.api.image))
            try await Task.sleep(for: .milliseconds(300))
            let rows = try JSONCoding.makeDecoder().decode([DashboardVMSummary].self, from: Data(try await ui.get("/ui/api/vms").body.utf8))
            #expect(rows.map(\.name) == ["late"])
        }
    }

    @Test("unknown ids: a 404 page under /ui, a JSON error under /ui/api")
    func notFound() async throws {
        try await DashboardHarness.run { ui in
            let page = try await ui.get("/ui/vm/nosuchvm")
            #expect(page.status == 404)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.body.contains("no such vm: nosuchvm"))
            let api = try await ui.json("/ui/api/vm/nosuchvm")
            #expect(api.status == 404)
            #expect((api.object as? [String: Any])?["error"] as? String == "no such vm: nosuchvm")
            #expect(try await ui.json("/ui/api/vm/nosuchvm/stats").status == 404)
            #expect(try await ui.json("/ui/api/nothing").status == 404)
            let unknownPage = try await ui.get("/ui/nothing")
            #expect(unknownPage.status == 404)
            #expect(unknownPage.body.contains("<!DOCTYPE html>"))
        }
    }

    @Test("traversal-like and malformed paths are refused, never read", arguments: [
        "/ui/static/../../etc/passwd", "/ui/static/%2e%2e/%2e%2e/etc/passwd", "/ui/vm/%2E%2E%2Fetc", "/ui/vm/a%00b",
        "/ui/static/..%5c..%5cwin.ini", "/ui//etc/passwd", "/ui/api/vm/..", "/ui/vm/" + String(repeating: "a", count: 2000),
    ])
    func traversal(target: String) async throws {
        try await DashboardHarness.run { ui in
            let reply = try await ui.get(target)
            #expect([400, 404].contains(reply.status))
            #expect(!reply.body.contains("root:"))
            #expect(reply.headers["content-security-policy"] != nil)
        }
    }

    @Test("security headers on every response: pages, JSON, assets and errors")
    func headers() async throws {
        try await DashboardHarness.run { ui in
            let vm = try await ui.api.manager.run(VMConfig(name: "h", image: ui.api.image))
            for target in ["/ui", "/ui/vm/h", "/ui/api/vms", "/ui/api/vm/\(vm.id.rawValue)", "/ui/static/app.js", "/ui/static/app.css",
                           "/ui/vm/nope", "/ui/api/vm/nope", "/ui/static/../x"] {
                let reply = try await ui.get(target)
                #expect(reply.headers["content-security-policy"] == DashboardHeadersMiddleware<BasicRequestContext>.contentSecurityPolicy, "\(target)")
                #expect(reply.headers["x-content-type-options"] == "nosniff", "\(target)")
                #expect(reply.headers["referrer-policy"] == "no-referrer", "\(target)")
            }
            let js = try await ui.get("/ui/static/app.js")
            #expect(js.status == 200)
            #expect(js.headers["content-type"] == "text/javascript; charset=utf-8")
            #expect(js.body.contains("/ui/api/vm/"))
            let css = try await ui.get("/ui/static/app.css")
            #expect(css.headers["content-type"] == "text/css; charset=utf-8")
            #expect(css.body.contains("prefers-color-scheme: dark"))
        }
    }

    @Test("secret-looking names are matched case-insensitively")
    func redaction() {
        for name in ["PASSWORD", "db_password", "GitHubToken", "aws_secret_access_key", "KEY", "apikey"] {
            #expect(DashboardRedaction.isSecret(name), "\(name)")
        }
        for name in ["PATH", "HOME", "MODE", "PORT"] { #expect(!DashboardRedaction.isSecret(name), "\(name)") }
    }

    @Test("--ui-addr: loopback is told apart from every address; a busy port names the flag")
    func listenAddress() throws {
        #expect(try ListenAddress(parsing: "127.0.0.1:8080", flag: "--ui-addr").isLoopback)
        #expect(try ListenAddress(parsing: "[::1]:8080", flag: "--ui-addr").isLoopback)
        #expect(try ListenAddress(parsing: "localhost:8080", flag: "--ui-addr").isLoopback)
        #expect(try !ListenAddress(parsing: ":8080", flag: "--ui-addr").isLoopback)
        #expect(try !ListenAddress(parsing: "192.168.1.2:8080", flag: "--ui-addr").isLoopback)
        #expect(try ListenAddress.checked(nil, flag: "--ui-addr") == nil)
        let error = #expect(throws: UniError.self) { try ListenAddress.checked("8080", flag: "--ui-addr") }
        #expect(error?.message.hasPrefix("invalid --ui-addr '8080'") == true)
    }

    @Test("a busy --ui-addr port is refused with the flag's name")
    func busyPort() async throws {
        try await DashboardHarness.run { ui in
            let error = #expect(throws: UniError.self) { try ListenAddress.checked("127.0.0.1:\(ui.port)", flag: "--ui-addr") }
            #expect(error?.message == "--ui-addr 127.0.0.1:\(ui.port): host port 127.0.0.1:\(ui.port)/tcp is already in use")
        }
    }
}

@Suite("unid --ui-addr at start")
struct DashboardDaemonTests {
    @Test("binding beyond loopback logs a warning; loopback does not", arguments: [(":0", true), ("127.0.0.1:0", false)])
    func warning(address: String, warns: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let recorder = RecordingHandler()
        let logger = Logger(label: "test") { _ in recorder }
        let configuration = DaemonConfiguration(dataDirectory: DataDirectory(root: directory.path + "/data"), accelerator: .tcg,
                                                qemuBinary: "/bin/true", uiAddress: address)
        let daemon = try await Daemon.make(configuration: configuration, logger: logger)
        let warned = recorder.box.value.withLock { $0 }.contains { $0.hasPrefix("dashboard reachable beyond loopback") }
        #expect(warned == warns)
        withExtendedLifetime(daemon) {}
    }
}

/// Not a test: the dashboard over 100 fake VMs for `scripts/bench-ui.sh debug`,
/// serving until `UNI_BENCH_UI_SECONDS` pass. Runs only when asked for.
@Suite("Dashboard benchmark server")
struct DashboardBenchServer {
    static let portFile = ProcessInfo.processInfo.environment["UNI_BENCH_UI_PORT_FILE"]

    @Test("serves /ui over 100 running VMs", .enabled(if: portFile != nil, "only for scripts/bench-ui.sh"))
    func serve() async throws {
        let seconds = Int(ProcessInfo.processInfo.environment["UNI_BENCH_UI_SECONDS"] ?? "") ?? 60
        try await DashboardHarness.run { ui in
            for index in 0..<100 {
                _ = try await ui.api.manager.run(VMConfig(name: "vm-\(index)", image: ui.api.image,
                                                          ports: [PortMapping(hostPort: UInt16(20_000 + index), guestPort: 80)],
                                                          environment: ["MODE": "bench", "API_TOKEN": "secret-\(index)"]))
            }
            // Two samples: every VM has a CPU % and memory, as after two polls.
            await ui.api.manager.sampleStats()
            await ui.api.manager.sampleStats()
            try "\(ui.port)\n".write(toFile: DashboardBenchServer.portFile ?? "", atomically: true, encoding: .utf8)
            try await Task.sleep(for: .seconds(seconds))
        }
    }
}
