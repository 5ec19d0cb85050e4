import Foundation
import Testing
import UniCLI
import UniKit
import UniKitTesting

/// Headless Chromium (Debian's `chromium`, from `scripts/setup.sh`).
enum Browser {
    static let path = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Loads `url`, lets the page's script run for `budget` of virtual
    /// time, and returns the serialised DOM and Chromium's log (console
    /// messages, CSP violations).
    static func dump(_ url: String, budget: Duration = .seconds(5), profile: String) throws -> (dom: String, log: String) {
        let milliseconds = budget.components.seconds * 1000
        return try run(["--virtual-time-budget=\(milliseconds)", "--dump-dom", url], profile: profile)
    }

    /// Saves a screenshot of `url` to `file`.
    static func screenshot(_ url: String, to file: String, profile: String) throws {
        _ = try run(["--virtual-time-budget=4000", "--window-size=1280,1280", "--hide-scrollbars", "--screenshot=\(file)", url], profile: profile)
    }

    static func run(_ arguments: [String], profile: String) throws -> (dom: String, log: String) {
        guard let path else { throw UniError(.unavailable, "chromium is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                             "--enable-logging=stderr", "--v=0"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Chromium never blocks on a full pipe for long, but a hung one must not hang the suite.
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 90, execute: watchdog)
        let log = err.fileHandleForReading.readDataToEndOfFile()
        let dom = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        return (String(decoding: dom, as: UTF8.self), String(decoding: log, as: UTF8.self))
    }

    /// The text of the element with `data-stat="key"` in a dumped DOM.
    static func stat(_ key: String, in dom: String) -> String? {
        guard let start = dom.range(of: "data-stat=\"\(key)\">") else { return nil }
        let rest = dom[start.upperBound...]
        return rest.range(of: "<").map { String(rest[..<$0.lowerBound]) }
    }

    /// Lines of Chromium's log that report a script error or a CSP violation.
    static func problems(in log: String) -> [String] {
        log.split(separator: "\n").map(String.init).filter {
            $0.contains("Uncaught") || $0.contains("Content Security Policy") || $0.contains("Refused to") || $0.contains("violates")
        }
    }
}

extension Integration {
    /// The dashboard of a real `unid` (the built binary, `--ui-addr`) running a
    /// real QEMU guest, read by a real headless browser.
    @Suite("Dashboard in a browser", .serialized,
           .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed"),
           .enabled(if: Browser.path != nil, "chromium is not installed (scripts/setup.sh installs it)"))
    struct DashboardBrowserTests {
        @Test("the list shows a running VM; the detail page's numbers change between polls; <script> in env is text; no console errors")
        func dashboard() async throws {
            let kernel = try Host.kernel()
            let directory = try TemporaryDirectory(prefix: "uni-ui")
            defer { directory.remove() }
            let port = try Host.freePort()
            let unid = Process()
            unid.executableURL = URL(fileURLWithPath: Host.binDirectory + "/unid")
            unid.arguments = ["--data-dir", directory.path + "/data", "--accel", "tcg", "--ui-addr", "127.0.0.1:\(port)"]
            let unidLog = directory.path + "/unid.log"
            _ = FileManager.default.createFile(atPath: unidLog, contents: nil)
            unid.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: unidLog))
            try unid.run()
            defer {
                if unid.isRunning {
                    unid.terminate()
                    unid.waitUntilExit()
                }
            }
            let base = "http://127.0.0.1:\(port)"
            #expect(await Host.eventually { await Host.get(base + "/ui").0 == 200 })
            let client = UniClient(socketPath: DataDirectory(root: directory.path + "/data").socketPath)
            let hostile = "<script>alert('owned')</script>"
            let vm = try await client.create(VMConfig(name: "burner", image: kernel, memory: .mebibytes(64),
                                                      environment: ["GREETING": hostile, "API_TOKEN": "hunter2"], kernelCommandLine: "burn"))
            #expect(try await Host.eventually {
                var text = ""
                for try await chunk in try await client.logs("burner") { text += String(decoding: chunk, as: UTF8.self) }
                return text.contains("burning cpu")
            })
            let profile = directory.path + "/chromium"

            let list = try Browser.dump(base + "/ui", budget: .seconds(1), profile: profile)
            #expect(list.dom.contains(">burner</a>"))
            #expect(list.dom.contains("state-running"))
            #expect(Browser.problems(in: list.log).isEmpty, "\(Browser.problems(in: list.log))")

            // Each dump lets the page's script poll /ui/api/vm/{id}/stats once
            // (3 s of virtual time); unid samples every 5 s of real time, so two
            // dumps 6 s apart must show a burning guest's CPU time grown.
            let first = try Browser.dump(base + "/ui/vm/\(vm.id.rawValue)", budget: .seconds(4), profile: profile)
            try await Task.sleep(for: .seconds(6))
            let second = try Browser.dump(base + "/ui/vm/\(vm.id.rawValue)", budget: .seconds(4), profile: profile)
            for page in [first, second] {
                #expect(page.dom.contains("data-polls=\"1\""), "the page's script did not poll")
                #expect(Browser.problems(in: page.log).isEmpty, "\(Browser.problems(in: page.log))")
                #expect(page.dom.contains("&lt;script&gt;alert('owned')&lt;/script&gt;"))
                #expect(!page.dom.contains(hostile))
                #expect(!page.dom.contains("hunter2"))
                #expect(Browser.stat("cpu_percent", in: page.dom) != "-")
            }
            let before = try #require(Browser.stat("cpu_seconds", in: first.dom))
            let after = try #require(Browser.stat("cpu_seconds", in: second.dom))
            #expect(before != after, "CPU time did not change between polls: \(before)")
            #expect(Double(before.dropLast(2)) ?? 0 < Double(after.dropLast(2)) ?? 0)
            // The sparkline is drawn from the polled samples.
            #expect(second.dom.contains("id=\"spark-cpu\" points=\""))
            #expect(!second.dom.contains("id=\"spark-cpu\" points=\"\""))

            if let shot = ProcessInfo.processInfo.environment["UNI_DASHBOARD_SCREENSHOT"] {
                try Browser.screenshot(base + "/ui/vm/\(vm.id.rawValue)", to: shot, profile: profile)
            }
            unid.terminate()
            unid.waitUntilExit()
            let log = (try? String(contentsOfFile: unidLog, encoding: .utf8)) ?? ""
            #expect(!log.contains("dashboard reachable beyond loopback"))
            #expect(Host.qemuProcesses(under: directory.path).isEmpty)
        }
    }
}
