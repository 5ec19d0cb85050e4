import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus
import UniKit

/// `--metrics-addr`: `/metrics` (Prometheus text 0.0.4, or OpenMetrics when
/// the scraper's `Accept` asks for it) and `/health`.
///
/// A scrape renders the registry only: the numbers are refreshed by
/// ``VMStatsPoller`` and on every transition, so a scrape never waits on a
/// VM, its QMP socket or the manager's actor.
public enum MetricsRouter {
    /// The content type of the Prometheus text format.
    public static let textContentType = "text/plain; version=0.0.4; charset=utf-8"
    /// The content type of OpenMetrics.
    public static let openMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

    /// Builds the router.
    /// - Parameter health: the reason the daemon is unhealthy, or `nil`.
    public static func build(registry: PrometheusCollectorRegistry, health: @escaping @Sendable () async -> String?) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("metrics") { request, _ in
            let openMetrics = request.headers[.accept]?.contains("application/openmetrics-text") == true
            let text = openMetrics ? openMetricsText(from: render(registry)) : render(registry)
            return Response(status: .ok, headers: [.contentType: openMetrics ? openMetricsContentType : textContentType],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("health") { _, _ in
            if let problem = await health() {
                return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "UNHEALTHY: \(problem)\n")))
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: "OK")))
        }
        return router
    }

    /// The registry in the Prometheus text format 0.0.4.
    public static func render(_ registry: PrometheusCollectorRegistry) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 * 1024)
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Converts the 0.0.4 text to OpenMetrics 1.0: a counter family's HELP
    /// and TYPE name drops the `_total` suffix, and the body ends with `# EOF`.
    public static func openMetricsText(from text: String) -> String {
        var counters = Set<Substring>()
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") && line.hasSuffix(" counter") {
            counters.insert(line.dropFirst(7).dropLast(8))
        }
        var output = ""
        output.reserveCapacity(text.utf8.count + 16)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let prefix = line.prefix(7)
                let rest = line.dropFirst(7)
                let name = rest.prefix { $0 != " " }
                if counters.contains(name), name.hasSuffix("_total") {
                    output += prefix + name.dropLast(6) + rest.dropFirst(name.count) + "\n"
                    continue
                }
            }
            output += line + "\n"
        }
        return output + "# EOF\n"
    }
}
