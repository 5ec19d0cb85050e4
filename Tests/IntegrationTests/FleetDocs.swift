import Foundation
import UniKit
import Yams

/// The queries of `docs/alerts.yml` and `docs/grafana-dashboard.json`, and
/// the metric names they use, for the tests that hold them to what unid serves.
enum FleetDocs {
    static let alertsPath = Host.packageRoot + "/docs/alerts.yml"
    static let dashboardPath = Host.packageRoot + "/docs/grafana-dashboard.json"

    /// One alert rule of `docs/alerts.yml`.
    struct Rule {
        let alert: String
        let expr: String
        let duration: String?
    }

    /// Series Prometheus makes itself: the scrape's health and the alerts' state.
    static let builtIns: Set<String> = ["up", "ALERTS"]

    /// unid metrics a daemon serves only once there is something to
    /// measure, so a `/metrics` of a kernel-image VM without a health check
    /// lacks them (docs/observability.md: "absent, never 0").
    static let conditional: [String: String] = [
        MetricNames.vmNetworkReceiveBytes: "needs a VM with a network counter (a guest that sent or received)",
        MetricNames.vmNetworkTransmitBytes: "needs a VM with a network counter (a guest that sent or received)",
        MetricNames.vmDiskReadBytes: "needs a disk image (QMP query-blockstats)",
        MetricNames.vmDiskWrittenBytes: "needs a disk image (QMP query-blockstats)",
        MetricNames.vmHealth: "needs a VM with a health check",
        MetricNames.vmPressureWaiting: "needs cgroups with PSI",
        MetricNames.vmPressureStalled: "needs cgroups with PSI",
    ]

    static func rules() throws -> [Rule] {
        let text = try String(contentsOfFile: alertsPath, encoding: .utf8)
        let root = try Yams.load(yaml: text) as? [String: Any]
        let groups = root?["groups"] as? [[String: Any]] ?? []
        return groups.flatMap { group in
            (group["rules"] as? [[String: Any]] ?? []).map { rule in
                Rule(alert: rule["alert"] as? String ?? "", expr: rule["expr"] as? String ?? "", duration: rule["for"] as? String)
            }
        }
    }

    static func dashboard() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dashboardPath))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// Every panel that is not a row, with the expressions of its targets.
    static func panelQueries(_ dashboard: [String: Any]) -> [(title: String, exprs: [String])] {
        let panels = dashboard["panels"] as? [[String: Any]] ?? []
        return panels.filter { $0["type"] as? String != "row" }.map { panel in
            let targets = panel["targets"] as? [[String: Any]] ?? []
            return (panel["title"] as? String ?? "?", targets.compactMap { $0["expr"] as? String })
        }
    }

    /// The dashboard's variables, replaced by values Prometheus parses.
    static func substitutingVariables(_ expr: String) -> String {
        expr.replacingOccurrences(of: "$__rate_interval", with: "1m")
            .replacingOccurrences(of: "$job", with: "unid")
            .replacingOccurrences(of: "$instance", with: ".*")
            .replacingOccurrences(of: "$vm", with: ".*")
    }

    /// The metric names an expression selects: what is left once strings,
    /// label matchers, ranges and grouping clauses are gone, less functions
    /// (a name before `(`) and PromQL's keywords.
    static func metricNames(in expr: String) -> Set<String> {
        var text = expr
        for pattern in [#""([^"\\]|\\.)*""#, #"'([^'\\]|\\.)*'"#, #"\{[^}]*\}"#, #"\[[^\]]*\]"#,
                        #"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        let keywords: Set<String> = ["and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring", "group_left", "group_right"]
        let identifier = try! NSRegularExpression(pattern: #"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*"#)
        let source = text as NSString
        var names = Set<String>()
        for match in identifier.matches(in: text, range: NSRange(location: 0, length: source.length)) {
            let name = source.substring(with: match.range)
            let rest = source.substring(from: match.range.upperBound).drop { $0 == " " || $0 == "\n" }
            guard rest.first != "(", !keywords.contains(name.lowercased()) else { continue }
            names.insert(name)
        }
        return names
    }

    /// The metric names in a `/metrics` page (each sample's name, so a
    /// histogram gives its `_bucket`, `_sum` and `_count`).
    static func exposedNames(_ metrics: String) -> Set<String> {
        Set(metrics.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
    }

    /// Every name a histogram family `name` may be queried by.
    static func histogramSeries(_ name: String) -> [String] { [name + "_bucket", name + "_sum", name + "_count"] }
}
