import Foundation
import Testing
@testable import UniKit
import UniKitTesting

extension Integration {
    /// docs/fleet.md on one machine: two `unid` on two data dirs stand for
    /// two hosts, one real Prometheus scrapes both and evaluates
    /// docs/alerts.yml, and a real Alertmanager (when installed) receives
    /// what fires.
    @Suite("Fleet: two hosts, Prometheus and Alertmanager", .serialized,
           .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"),
           .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"), "prometheus is not installed (scripts/setup.sh installs it)"))
    struct FleetIntegrationTests {
        static let alertmanagerBinary = "/usr/bin/prometheus-alertmanager"

        /// Everything the test started, stopped whatever happened.
        final class Started {
            var daemons: [ChildProcess] = []
            var others: [ChildProcess] = []
            var directories: [TemporaryDirectory] = []

            /// unid gets SIGTERM so it stops its VMs; anything left after
            /// its deadline, and any QEMU of these data dirs, gets SIGKILL.
            func stop() async {
                for process in others { process.send(SIGKILL) }
                for daemon in daemons { daemon.send(SIGTERM) }
                for daemon in daemons where !(await Host.eventually(timeout: .seconds(15)) { daemon.termination != nil }) {
                    daemon.send(SIGKILL)
                }
                for directory in directories {
                    for pid in Host.qemuProcesses(under: directory.path) { kill(pid, SIGKILL) }
                    directory.remove()
                }
            }
        }

        /// `/api/v1/alerts`' alerts named `name` that are firing, as their labels.
        static func firing(_ name: String, prometheus: Int) async -> [[String: String]] {
            let body = await Host.get("http://127.0.0.1:\(prometheus)/api/v1/alerts").1
            let root = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            let alerts = (root?["data"] as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
            return alerts.filter { $0["state"] as? String == "firing" }.compactMap { $0["labels"] as? [String: String] }.filter { $0["alertname"] == name }
        }

        @Test("a crashed VM on one host fires UniVMDown for that host only, and Alertmanager receives it; the docs' queries name what unid serves")
        func vmDownOnOneHost() async throws {
            let kernel = try Host.kernel()
            let started = Started()
            do {
                try await run(kernel: kernel, started)
            } catch {
                await started.stop()
                throw error
            }
            await started.stop()
        }

        private func run(kernel: String, _ started: Started) async throws {
            var hosts: [(dir: String, metrics: Int, vm: String)] = []
            for name in ["host-a", "host-b"] {
                let dir = try TemporaryDirectory(prefix: "uni-fleet")
                started.directories.append(dir)
                let port = Int(try Host.freePort())
                started.daemons.append(try Host.startDaemon(dataDir: dir.path, arguments: ["--metrics-addr", "127.0.0.1:\(port)"]))
                let healthy = await Host.eventually { await Host.get("http://127.0.0.1:\(port)/health").0 == 200 }
                try #require(healthy, "unid \(name): \(started.daemons.last?.standardError ?? "")")
                // A ceiling, so the memory_max series exists for the name check.
                let run = try Host.runProduct("uni", ["--data-dir", dir.path, "run", "--name", "web-\(name)", "--memory", "64M", "--memory-max", "256M", kernel])
                try #require(run.status == 0, "\(run.stderr)")
                hosts.append((dir.path, port, "web-\(name)"))
            }
            let (crashing, surviving) = (hosts[0], hosts[1])

            // Names from the real daemons, once each VM is up and sampled.
            var exposed = Set<String>()
            for host in hosts {
                var metrics = ""
                let sampled = await Host.eventually(timeout: .seconds(30)) {
                    metrics = await Host.get("http://127.0.0.1:\(host.metrics)/metrics").1
                    return metrics.contains(#"uni_vm_up{vm_id=""#) && metrics.contains("uni_vm_memory_rss_bytes{")
                }
                try #require(sampled, "\(metrics)")
                exposed.formUnion(FleetDocs.exposedNames(metrics))
            }
            let allowed = exposed.union(FleetDocs.builtIns).union(FleetDocs.conditional.keys)
            let queries = try FleetDocs.rules().map(\.expr) + FleetDocs.panelQueries(try FleetDocs.dashboard()).flatMap(\.exprs).map(FleetDocs.substitutingVariables)
            for expr in queries {
                let names = FleetDocs.metricNames(in: expr)
                #expect(names.isSubset(of: allowed), "\(expr) names \(names.subtracting(allowed)), which a real unid does not serve")
            }

            let work = try TemporaryDirectory(prefix: "uni-fleet-prom")
            started.directories.append(work)
            // The rules' `for` (1 m for UniVMDown) is cut to 0 s in this copy:
            // the test checks which VM the expression picks, not the grace.
            let rules = try String(contentsOfFile: FleetDocs.alertsPath, encoding: .utf8)
                .replacingOccurrences(of: #"for: \w+"#, with: "for: 0s", options: .regularExpression)
            try rules.write(toFile: work.path + "/alerts.yml", atomically: true, encoding: .utf8)

            var alerting = ""
            var alertmanagerPort = 0
            if FileManager.default.isExecutableFile(atPath: Self.alertmanagerBinary) {
                alertmanagerPort = Int(try Host.freePort())
                try "route:\n  receiver: default\n  group_wait: 0s\nreceivers:\n  - name: default\n"
                    .write(toFile: work.path + "/alertmanager.yml", atomically: true, encoding: .utf8)
                // An empty cluster address turns gossip off: nothing listens beyond 127.0.0.1.
                started.others.append(try ChildProcess(executable: Self.alertmanagerBinary, arguments: [
                    "--config.file=\(work.path)/alertmanager.yml", "--storage.path=\(work.path)/alertmanager",
                    "--web.listen-address=127.0.0.1:\(alertmanagerPort)", "--cluster.listen-address=", "--log.level=warn",
                ]) { _ in })
                alerting = "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:\(alertmanagerPort)']\n"
            } else {
                print("FleetIntegrationTests: \(Self.alertmanagerBinary) is missing (Debian package prometheus-alertmanager); the delivery check is skipped")
            }
            let webPort = Int(try Host.freePort())
            try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files: [alerts.yml]
            \(alerting)scrape_configs:
              - job_name: unid
                static_configs:
                  - targets: ['127.0.0.1:\(crashing.metrics)', '127.0.0.1:\(surviving.metrics)']
            """.write(toFile: work.path + "/prometheus.yml", atomically: true, encoding: .utf8)
            let prometheus = try ChildProcess(executable: "/usr/bin/prometheus", arguments: [
                "--config.file=\(work.path)/prometheus.yml", "--storage.tsdb.path=\(work.path)/data",
                "--web.listen-address=127.0.0.1:\(webPort)", "--log.level=warn",
            ]) { _ in }
            started.others.append(prometheus)
            let api = "http://127.0.0.1:\(webPort)/api/v1"
            var answer = ""
            let bothUp = await Host.eventually(timeout: .seconds(60)) {
                answer = await Host.get(api + "/query?query=count(uni_vm_up%20==%201)").1
                return answer.contains(#","2"]"#)
            }
            try #require(bothUp, "\(answer) \(prometheus.standardError)")
            // Every dashboard query runs on a real Prometheus.
            for expr in FleetDocs.panelQueries(try FleetDocs.dashboard()).flatMap(\.exprs).map(FleetDocs.substitutingVariables) {
                let encoded = expr.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                let result = await Host.get(api + "/query?query=" + encoded)
                #expect(result.0 == 200 && result.1.contains(#""status":"success""#), "\(expr): \(result.1)")
            }
            #expect(await Self.firing("UniVMDown", prometheus: webPort).isEmpty, "nothing is down yet")

            // A crash: QEMU killed by a signal nobody asked unid for.
            let qemu = Host.qemuProcesses(under: crashing.dir)
            try #require(qemu.count == 1)
            kill(qemu[0], SIGKILL)
            var alerts: [[String: String]] = []
            let fired = await Host.eventually(timeout: .seconds(60)) {
                alerts = await Self.firing("UniVMDown", prometheus: webPort)
                return !alerts.isEmpty
            }
            #expect(fired, "UniVMDown never fired: \(prometheus.standardError)")
            #expect(alerts.map { $0["instance"] } == ["127.0.0.1:\(crashing.metrics)"], "\(alerts)")
            #expect(alerts.first?["name"] == crashing.vm)
            #expect(alerts.first?["severity"] == "critical")
            let inspect = try Host.runProduct("uni", ["--data-dir", crashing.dir, "inspect", crashing.vm])
            let record = try JSONCoding.makeDecoder().decode([VM].self, from: Data(inspect.stdout.utf8)).first
            #expect(record?.stopReason == .crashed, "\(inspect.stdout)")

            guard alertmanagerPort != 0 else { return }
            var received = ""
            let delivered = await Host.eventually(timeout: .seconds(60)) {
                received = await Host.get("http://127.0.0.1:\(alertmanagerPort)/api/v2/alerts?filter=alertname%3D%22UniVMDown%22").1
                return received.contains(#""instance":"127.0.0.1:\#(crashing.metrics)""#)
            }
            #expect(delivered, "Alertmanager never got UniVMDown: \(received)")
            #expect(!received.contains("127.0.0.1:\(surviving.metrics)"), "\(received)")
        }
    }
}
