import Foundation
import Logging
import Testing
import UniCLI
import UniHTTP
@testable import UniKit
import UniKitTesting

extension Integration {
    /// Telemetry end to end: real VMs, a real Prometheus server scraping unid,
    /// a real OTLP/gRPC receiver collecting the spans of `uni` and `unid`.
    @Suite("Telemetry end to end", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct TelemetryIntegrationTests {
        @Test("per-VM CPU seconds and RSS come from /proc of a real QEMU; the series go with the VM")
        func perVMNumbers() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().runWithTelemetry { harness, _, port in
                let vm = try await harness.client.create(VMConfig(name: "busy", image: kernel, memory: .mebibytes(64), kernelCommandLine: "mem=16 burn"))
                let labels = #"{vm_id="\#(vm.id)",name="busy"}"#
                func value(_ name: String, _ text: String) -> Double? {
                    text.split(separator: "\n").first { $0.hasPrefix(name + labels + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
                }
                var metrics = ""
                #expect(await Host.eventually {
                    metrics = await Host.get("http://127.0.0.1:\(port)/metrics").1
                    return (value("uni_vm_cpu_seconds_total", metrics) ?? 0) > 0.05
                })
                let rss = try #require(value("uni_vm_memory_rss_bytes", metrics))
                #expect(rss > 16 * 1024 * 1024, "QEMU's RSS holds the 16 MiB the guest touched")
                #expect(rss < 1024 * 1024 * 1024)
                #expect(value("uni_vm_up", metrics) == 1)
                #expect(metrics.contains("uni_vms_running 1.0"))
                #expect(metrics.contains(#"uni_vm_lifecycle_total{kind="start"} 1"#))
                #expect(metrics.contains("uni_vm_start_duration_seconds_count 1"))
                _ = try await harness.client.kill("busy")
                let stopped = await Host.get("http://127.0.0.1:\(port)/metrics").1
                #expect(value("uni_vm_memory_rss_bytes", stopped) == nil, "a stopped VM's memory is unavailable, not 0")
                #expect(value("uni_vm_up", stopped) == 0)
                try await harness.client.remove("busy")
                let removed = await Host.get("http://127.0.0.1:\(port)/metrics").1
                #expect(!removed.contains(vm.id.rawValue))
                #expect(await Host.get("http://127.0.0.1:\(port)/health") == (200, "OK"))
            }
        }

        @Test("a real Prometheus server scrapes unid and answers uni_vms_total", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus")))
        func prometheusScrape() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().runWithTelemetry { harness, _, port in
                _ = try await harness.client.create(VMConfig(name: "scraped", image: kernel))
                let work = try TemporaryDirectory(prefix: "uni-prom")
                defer { work.remove() }
                let webPort = try Host.freePort()
                try """
                global:
                  scrape_interval: 1s
                scrape_configs:
                  - job_name: unid
                    static_configs:
                      - targets: ['127.0.0.1:\(port)']
                """.write(toFile: work.path + "/prometheus.yml", atomically: true, encoding: .utf8)
                let prometheus = try ChildProcess(executable: "/usr/bin/prometheus", arguments: [
                    "--config.file=\(work.path)/prometheus.yml", "--storage.tsdb.path=\(work.path)/data",
                    "--web.listen-address=127.0.0.1:\(webPort)", "--log.level=warn",
                ]) { _ in }
                defer { prometheus.send(SIGKILL) }
                var answer = ""
                let found = await Host.eventually(timeout: .seconds(60)) {
                    answer = await Host.get("http://127.0.0.1:\(webPort)/api/v1/query?query=uni_vms_total").1
                    return answer.contains(#""__name__":"uni_vms_total""#) && answer.contains(#","1"]"#)
                }
                #expect(found, "\(answer) \(prometheus.standardError)")
                let up = await Host.get("http://127.0.0.1:\(webPort)/api/v1/query?query=up").1
                #expect(up.contains(#","1"]"#), "the scrape itself succeeded: \(up)")
            }
        }

        @Test("uni and unid export one trace over OTLP/gRPC: uni's span, then vm.lifecycle with its child")
        func traces() async throws {
            let kernel = try Host.kernel()
            let python = Host.packageRoot + "/.build/otlp-venv/bin/python"
            try #require(FileManager.default.isExecutableFile(atPath: python), "scripts/setup.sh installs the OTLP receiver's Python packages")
            let work = try TemporaryDirectory(prefix: "uni-otlp")
            defer { work.remove() }
            let spansFile = work.path + "/spans.jsonl"
            let (portLine, portContinuation) = AsyncStream<String>.makeStream()
            let receiver = try ChildProcess(executable: python, arguments: [Host.packageRoot + "/Tests/Support/otlp_receiver.py", spansFile, "--max-seconds", "120"]) {
                portContinuation.yield(String(decoding: $0, as: UTF8.self))
            }
            defer { receiver.send(SIGKILL) }
            var receiverPort = ""
            for await line in portLine {
                if let found = line.split(separator: "\n").first(where: { $0.hasPrefix("PORT ") }) { receiverPort = String(found.dropFirst(5)); break }
            }
            let port = receiverPort
            var logger = Logger(label: "otel")
            logger.logLevel = .error
            let backend = try #require(try TraceExport.makeBackend(serviceName: "unid", address: "127.0.0.1:\(port)", logger: logger))
            try await DaemonHarness().runWithTelemetry(traces: backend) { harness, _, _ in
                let run = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "run", "--attach", "--rm", "--trace-addr", "127.0.0.1:\(port)", kernel, "--cmdline", "exit=3"])
                #expect(run.status == 3, "\(run.stderr)")
                var spans: [[String: Any]] = []
                let complete = await Host.eventually(timeout: .seconds(30)) {
                    let text = (try? String(contentsOfFile: spansFile, encoding: .utf8)) ?? ""
                    spans = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                    let names = spans.compactMap { $0["name"] as? String }
                    return names.contains("uni run") && names.contains("vm.create") && names.contains("vm.start")
                }
                #expect(complete, "spans received: \(spans.map { $0["name"] ?? "?" })")
                let cli = try #require(spans.first { $0["name"] as? String == "uni run" })
                let create = try #require(spans.first { $0["name"] as? String == "vm.create" })
                let lifecycle = try #require(spans.first { $0["span_id"] as? String == create["parent_span_id"] as? String })
                #expect(lifecycle["name"] as? String == "vm.lifecycle")
                #expect(create["trace_id"] as? String == cli["trace_id"] as? String, "one trace: the CLI and the daemon")
                // The chain from vm.lifecycle up reaches uni's span (through async-http-client's client span).
                var ancestor = lifecycle
                var reached = false
                for _ in 0..<4 {
                    guard let parent = spans.first(where: { $0["span_id"] as? String == ancestor["parent_span_id"] as? String }) else { break }
                    if parent["span_id"] as? String == cli["span_id"] as? String { reached = true; break }
                    ancestor = parent
                }
                #expect(reached, "vm.lifecycle descends from uni's span")
                let attributes = create["attributes"] as? [String: Any]
                #expect((attributes?["vm.id"] as? String)?.count == 12)
                #expect(attributes?["vm.image"] as? String == kernel)
                let resource = create["resource"] as? [String: String]
                #expect(resource?["service.name"] == "unid")
                #expect(resource?["service.version"] == UniVersion.current)
                #expect(resource?["service.instance.id"]?.isEmpty == false)
                #expect((cli["resource"] as? [String: String])?["service.name"] == "uni")
            }
        }

        @Test("a collector that is down never breaks VM operations")
        func collectorDown() async throws {
            let kernel = try Host.kernel()
            var logger = Logger(label: "otel")
            logger.logLevel = .critical
            let deadPort = try Host.freePort()
            let backend = try #require(try TraceExport.makeBackend(serviceName: "unid", address: "127.0.0.1:\(deadPort)", logger: logger))
            try await DaemonHarness().runWithTelemetry(traces: backend) { harness, _, _ in
                for index in 0..<3 {
                    let vm = try await harness.client.create(VMConfig(name: "vm\(index)", image: kernel, kernelCommandLine: "exit=0"))
                    #expect(try await harness.client.wait(vm.id.rawValue).exitCode == 0)
                    try await harness.client.remove(vm.id.rawValue)
                }
            }
        }
    }
}
