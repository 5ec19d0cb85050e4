import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Synchronization
import Testing
import UniHTTP
import UniKit
import UniKitTesting

@Suite("Observability adapters: Prometheus text, JSON logs")
struct ObservabilityTests {
    func renderedTelemetry() -> (String, PrometheusCollectorRegistry) {
        let factory = PrometheusHelpFactory()
        let telemetry = VMTelemetry(factory: factory, version: "1.2.3")
        var vm = VM(id: try! VMID("0123456789ab"), name: "web", config: VMConfig(image: "/k"), imageKind: .kernel, createdAt: Date())
        vm.state = .running
        vm.startCount = 2
        telemetry.update(vms: [vm])
        let target = StatsTarget(id: vm.id, name: vm.name, pid: 1, instance: ScriptedInstance(pid: 1))
        telemetry.record(VMStatsSampler().record(VMStatsReading(source: .proc, cpuSeconds: 1.25, memoryRSSBytes: 1 << 20), for: target, at: Date(), instant: .now))
        telemetry.recordOperation(.create)
        telemetry.recordStart(duration: .milliseconds(40))
        return (MetricsRouter.render(factory.registry), factory.registry)
    }

    @Test("the seven reference metrics have HELP and TYPE; registry counters are present at 0")
    func referenceMetrics() {
        let (text, _) = renderedTelemetry()
        for (name, type) in [("uni_vms_total", "gauge"), ("uni_vms_running", "gauge"), ("uni_vms_stopped", "gauge"),
                             ("uni_vm_lifecycle_total", "counter"), ("uni_registry_push_total", "counter"),
                             ("uni_registry_pull_total", "counter"), ("uni_build_info", "gauge")] {
            #expect(text.contains("# HELP \(name) "), "\(name)")
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name)")
        }
        for result in ["success", "failure"] {
            #expect(text.contains("uni_registry_push_total{result=\"\(result)\"} 0\n"))
            #expect(text.contains("uni_registry_pull_total{result=\"\(result)\"} 0\n"))
        }
        #expect(text.contains(#"uni_build_info{version="1.2.3"} 1"#))
        #expect(text.contains(#"uni_vm_lifecycle_total{kind="create"} 1"#))
        #expect(text.contains(#"uni_vm_lifecycle_total{kind="kill"} 0"#))
        #expect(text.contains("uni_vms_running 1.0\n"))
        #expect(text.contains(#"uni_vm_cpu_seconds_total{vm_id="0123456789ab",name="web"} 1.25"#))
        #expect(text.contains(#"uni_vm_memory_rss_bytes{vm_id="0123456789ab",name="web"} 1048576.0"#))
        #expect(text.contains(#"uni_vm_restarts_total{vm_id="0123456789ab",name="web"} 1"#))
        #expect(text.contains(#"uni_vm_start_duration_seconds_bucket{le="0.05"} 1"#))
        #expect(!text.contains("uni_vm_network"), "network bytes are not measured yet, so they are not reported")
    }

    /// The reference docs fix `uni_vms_total` as a gauge; promtool's linter
    /// flags that one name (a gauge ending in `_total`), and nothing else may appear.
    @Test("promtool check metrics finds nothing but the reference name uni_vms_total", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")))
    func promtool() throws {
        let (text, _) = renderedTelemetry()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(report == "uni_vms_total non-counter metrics should not have \"_total\" suffix\n", "\(report)")
        let withoutReferenceGauge = text.split(separator: "\n").filter { !$0.contains("uni_vms_total") }.joined(separator: "\n") + "\n"
        let clean = Process()
        clean.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        clean.arguments = ["check", "metrics"]
        let cleanInput = Pipe()
        clean.standardInput = cleanInput
        try clean.run()
        cleanInput.fileHandleForWriting.write(Data(withoutReferenceGauge.utf8))
        try cleanInput.fileHandleForWriting.close()
        clean.waitUntilExit()
        #expect(clean.terminationStatus == 0)
    }

    @Test("OpenMetrics: counter families lose _total in HELP/TYPE; the body ends with # EOF")
    func openMetrics() {
        let converted = MetricsRouter.openMetricsText(from: "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# TYPE g gauge\ng 2\n")
        #expect(converted == "# HELP a A.\n# TYPE a counter\na_total 1\n# TYPE g gauge\ng 2\n# EOF\n")
    }

    @Test("/metrics and /health over a real TCP socket, with the negotiated content type")
    func endpoints() async throws {
        let (_, registry) = renderedTelemetry()
        let problem = Mutex<String?>(nil)
        let router = MetricsRouter.build(registry: registry) { problem.withLock { $0 } }
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { readyContinuation.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var port = 0
            for await bound in ready { port = bound; break }
            func get(_ path: String, accept: String? = nil) async throws -> (Int, String, String) {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                if let accept { request.headers.add(name: "Accept", value: accept) }
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                let body = try await response.body.collect(upTo: 1 << 22)
                return (Int(response.status.code), response.headers.first(name: "Content-Type") ?? "", String(buffer: body))
            }
            let text = try await get("/metrics")
            #expect(text.0 == 200)
            #expect(text.1 == "text/plain; version=0.0.4; charset=utf-8")
            #expect(text.2.contains("uni_vms_total 1.0"))
            let openMetrics = try await get("/metrics", accept: "application/openmetrics-text; version=1.0.0")
            #expect(openMetrics.1.hasPrefix("application/openmetrics-text"))
            #expect(openMetrics.2.hasSuffix("# EOF\n"))
            #expect(try await get("/health") == (200, "text/plain; charset=utf-8", "OK"))
            problem.withLock { $0 = "store: disk full" }
            let unhealthy = try await get("/health")
            #expect(unhealthy.0 == 503)
            #expect(unhealthy.2 == "UNHEALTHY: store: disk full\n")
            group.cancelAll()
        }
    }

    @Test("a JSON log line: ts, upper-case level, msg, then metadata flattened and escaped")
    func jsonLine() throws {
        let line = JSONLogHandler.line(date: Date(timeIntervalSince1970: 1_790_000_000.5), level: .warning, message: "vm \"web\"\nstate",
                                       metadata: ["vm_id": "0123456789ab", "to": "running", "msg": "clash", "tags": ["a", "b"]])
        let text = String(decoding: line, as: UTF8.self)
        #expect(text == #"{"ts":"2026-09-21T14:13:20.500Z","level":"WARN","msg":"vm \"web\"\nstate","meta_msg":"clash","tags":["a","b"],"to":"running","vm_id":"0123456789ab"}"# + "\n")
        let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
        #expect(object?["level"] as? String == "WARN")
        #expect(JSONLogHandler.levelName(.info) == "INFO")
        #expect(JSONLogHandler.levelName(.critical) == "CRITICAL")
    }

    @Test("numbers and booleans logged as values stay numbers and booleans in JSON; text that looks like one stays text")
    func jsonNumbers() throws {
        let line = JSONLogHandler.line(date: Date(timeIntervalSince1970: 0), level: .info, message: "vm state transition",
                                       metadata: ["exit_code": .stringConvertible(Int32(137)), "delay_ms": .stringConvertible(Int64(500)),
                                                  "ratio": .stringConvertible(0.5), "live": .stringConvertible(true), "vm_name": "42"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["exit_code"] as? Int == 137)
        #expect(object["delay_ms"] as? Int == 500)
        #expect(object["ratio"] as? Double == 0.5)
        #expect(object["live"] as? Bool == true)
        #expect(object["vm_name"] as? String == "42")
        #expect(String(decoding: line, as: UTF8.self).contains(#""exit_code":137,"#))
    }

    @Test("the rate-limited handler passes one line per interval and counts the rest")
    func rateLimit() {
        let recorder = RecordingHandler()
        var logger = Logger(label: "x")
        logger.handler = RateLimitedLogHandler(wrapping: recorder, interval: .seconds(60))
        for index in 0..<5 { logger.error("export failed \(index)") }
        #expect(recorder.box.value.withLock { $0 } == ["export failed 0"])
    }
}

struct RecordingHandler: LogHandler {
    final class Box: Sendable { let value = Mutex<[String]>([]) }
    let box = Box()
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { box.value.withLock { $0.append("\(event.message)") } }
}
