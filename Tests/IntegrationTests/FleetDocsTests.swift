import Foundation
import Testing
import UniKit
import UniKitTesting

extension Integration {
    /// The alert rules and the Grafana dashboard of docs/fleet.md, read the
    /// way Prometheus and Grafana read them. The check against a real
    /// daemon's `/metrics` is in ``FleetIntegrationTests``.
    @Suite("Fleet docs: alert rules and Grafana dashboard", .serialized)
    struct FleetDocsTests {
        static let hasPromtool = FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")

        /// Runs promtool and returns its status and combined output.
        static func promtool(_ arguments: [String]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }

        /// What the rules and the dashboard may name: unid's metrics (a
        /// histogram by its series) and Prometheus' own.
        static var knownNames: Set<String> {
            var names = FleetDocs.builtIns
            for name in MetricNames.help.keys {
                names.insert(name)
                if name == MetricNames.vmStartDuration { names.formUnion(FleetDocs.histogramSeries(name)) }
            }
            return names
        }

        @Test("promtool check rules accepts docs/alerts.yml, and its unit tests pass", .enabled(if: hasPromtool, "promtool is missing (Debian package prometheus; scripts/setup.sh)"))
        func promtoolChecks() throws {
            let (status, output) = try Self.promtool(["check", "rules", FleetDocs.alertsPath])
            #expect(status == 0, "\(output)")
            #expect(output.contains("SUCCESS: 7 rules found"), "\(output)")
            let (tested, testOutput) = try Self.promtool(["test", "rules", Host.packageRoot + "/docs/alerts-tests.yml"])
            #expect(tested == 0, "\(testOutput)")
        }

        @Test("the alerts docs/fleet.md promises exist, each with a for, a severity and a summary")
        func ruleShape() throws {
            let rules = try FleetDocs.rules()
            #expect(Set(rules.map(\.alert)) == ["UnidDown", "UnidStoreWriteFailures", "UniVMDown", "UniVMRestartLoop", "UniVMUnhealthy", "UniVMMemoryHigh", "UniVMMemoryNearCeiling"])
            let text = try String(contentsOfFile: FleetDocs.alertsPath, encoding: .utf8)
            #expect(rules.allSatisfy { $0.duration != nil }, "every rule says its for")
            #expect(text.components(separatedBy: "severity: ").count - 1 == rules.count)
            #expect(text.components(separatedBy: "summary: ").count - 1 == rules.count)
            #expect(rules.first { $0.alert == "UniVMDown" }?.expr == "uni_vm_desired_up{job=\"unid\"} > uni_vm_up{job=\"unid\"}")
        }

        @Test("the dashboard is JSON with a templated Prometheus data source and host variable; every panel has a query")
        func dashboardShape() throws {
            let dashboard = try FleetDocs.dashboard()
            let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
            let datasource = try #require(variables.first { $0["name"] as? String == "datasource" })
            #expect(datasource["type"] as? String == "datasource" && datasource["query"] as? String == "prometheus")
            let instance = try #require(variables.first { $0["name"] as? String == "instance" })
            #expect(instance["multi"] as? Bool == true && instance["includeAll"] as? Bool == true, "several hosts at once")
            let panels = FleetDocs.panelQueries(dashboard)
            #expect(panels.count >= 20)
            for panel in panels {
                #expect(!panel.exprs.isEmpty && panel.exprs.allSatisfy { !$0.isEmpty }, "panel \(panel.title) has no query")
            }
            for panel in dashboard["panels"] as? [[String: Any]] ?? [] where panel["type"] as? String != "row" {
                #expect((panel["datasource"] as? [String: String])?["uid"] == "${datasource}", "\(panel["title"] ?? "?")")
            }
        }

        @Test("every query of the rules and the dashboard parses (promtool) and names only unid's metrics and Prometheus' own", .enabled(if: hasPromtool, "promtool is missing (Debian package prometheus; scripts/setup.sh)"))
        func queriesNameKnownMetrics() throws {
            let panels = FleetDocs.panelQueries(try FleetDocs.dashboard())
            let dashboardQueries = panels.flatMap(\.exprs).map(FleetDocs.substitutingVariables)
            var used = Set<String>()
            for expr in try FleetDocs.rules().map(\.expr) + dashboardQueries {
                let names = FleetDocs.metricNames(in: expr)
                #expect(!names.isEmpty, "\(expr) selects no metric")
                #expect(names.isSubset(of: Self.knownNames), "\(expr) names \(names.subtracting(Self.knownNames))")
                used.formUnion(names)
            }
            // The dashboard covers every documented metric.
            let undrawn = Set(MetricNames.help.keys).subtracting(used).subtracting([MetricNames.vmStartDuration])
            #expect(undrawn.isEmpty, "no panel shows \(undrawn.sorted())")
            #expect(Set(FleetDocs.conditional.keys).isSubset(of: Set(MetricNames.help.keys)))

            // promtool parses recording rules: one per dashboard query.
            let work = try TemporaryDirectory(prefix: "uni-dash")
            defer { work.remove() }
            var yaml = "groups:\n  - name: dashboard\n    rules:\n"
            for (index, expr) in dashboardQueries.enumerated() {
                let quoted = expr.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                yaml += "      - record: dashboard:query_\(index)\n        expr: \"\(quoted)\"\n"
            }
            try yaml.write(toFile: work.path + "/dashboard-rules.yml", atomically: true, encoding: .utf8)
            let (status, output) = try Self.promtool(["check", "rules", work.path + "/dashboard-rules.yml"])
            #expect(status == 0, "\(output)")
        }

        @Test("metric names are read from PromQL, not its functions, labels or keywords")
        func extraction() {
            #expect(FleetDocs.metricNames(in: #"sum by (instance, le) (rate(a_bucket{x="y{z}"}[5m])) / on(vm_id) group_left b > bool 0.9 and up offset 5m"#) == ["a_bucket", "b", "up"])
            #expect(FleetDocs.metricNames(in: #"histogram_quantile(0.99, c)"#) == ["c"])
            #expect(FleetDocs.exposedNames("# HELP a x\n# TYPE a gauge\na 1\nb{l=\"v\"} 2\nc_bucket{le=\"+Inf\"} 3") == ["a", "b", "c_bucket"])
        }
    }
}
