import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore
import Synchronization
import UniKit

/// `--ui-addr`: the read-only dashboard. Pages under `/ui`, their JSON under
/// `/ui/api`, their script and stylesheet under `/ui/static`.
///
/// Pages are rendered from ``VMManager`` queries and the stats poller's
/// newest samples; secret-looking environment values are masked in pages
/// and JSON alike (``DashboardRedaction``).
public enum DashboardRouter {
    /// The console lines a detail page shows.
    public static let pageConsoleLines = 60
    /// The console lines `GET /ui/api/vm/{id}/logs` answers without `?tail=`, and the most it answers.
    public static let defaultLogLines = 200, maximumLogLines = 10_000

    /// Builds the router.
    /// - Parameter now: the wall clock uptimes are measured against.
    /// - Throws: a template that does not parse (a bug: every test would fail).
    public static func build(manager: VMManager, now: @escaping @Sendable () -> Date = { Date() }) throws -> Router<BasicRequestContext> {
        let library = try DashboardTemplates.library()
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: DashboardHeadersMiddleware())
        router.add(middleware: DashboardErrorMiddleware(library: library))
        let listCache = EncodedCache<[DashboardVMSummary]>()

        router.get("ui") { _, _ in
            let vms = await manager.list(all: true)
            let date = now()
            let rows = vms.map { ListRow(vm: $0, latest: manager.sampler.latest($0.id), now: date) }
            return try render(library, ListPage(rows: rows, empty: rows.isEmpty), "list")
        }

        router.get("ui/vm/:ref") { _, context in
            let vm = try await manager.inspect(try APIRouter.reference(context))
            let history = try await currentStats(manager, vm)
            let console = try await consoleText(manager, vm.id.rawValue, lines: pageConsoleLines)
            return try render(library, DetailPage(vm: vm, history: history, console: printable(console), now: now()), "detail")
        }

        router.get("ui/static/app.js") { _, _ in
            asset(DashboardAssets.js, type: "text/javascript; charset=utf-8")
        }

        router.get("ui/static/app.css") { _, _ in
            asset(DashboardAssets.css, type: "text/css; charset=utf-8")
        }

        let api = router.group("ui/api")

        api.get("vms") { _, _ in
            try await jsonResponse(listCache.bytes {
                await manager.list(all: true).map { DashboardVMSummary(vm: $0, latest: manager.sampler.latest($0.id)) }
            })
        }

        api.get("vm/:ref") { _, context in
            let vm = try await manager.inspect(try APIRouter.reference(context))
            return try APIRouter.json(DashboardVMDetail(vm: DashboardRedaction.masked(vm)))
        }

        api.get("vm/:ref/logs") { request, context in
            let tail = try request.uri.queryParameters["tail"].map { try LineCountParser.parse(String($0), flag: "tail") } ?? defaultLogLines
            guard tail <= maximumLogLines else {
                throw UniError.invalid("invalid tail '\(tail)': at most \(maximumLogLines) lines")
            }
            let vm = try await manager.inspect(try APIRouter.reference(context))
            let output = try await consoleText(manager, vm.id.rawValue, lines: tail)
            return try APIRouter.json(DashboardLogs(vmID: vm.id, tail: tail, output: output))
        }

        api.get("vm/:ref/stats") { _, context in
            try APIRouter.json(await manager.stats(try APIRouter.reference(context)))
        }
        return router
    }

    /// The VM's stats, or `nil` when it has no process (the page says "not running").
    static func currentStats(_ manager: VMManager, _ vm: VM) async throws -> VMStatsHistory? {
        guard vm.state.hasProcess else { return nil }
        do {
            return try await manager.stats(vm.id.rawValue)
        } catch let error as UniError where error.code == .invalidState {
            return nil
        }
    }

    /// The console's last `lines`, decoded leniently.
    static func consoleText(_ manager: VMManager, _ id: String, lines: Int) async throws -> String {
        var bytes: [UInt8] = []
        for await chunk in try await manager.logs(id, tail: lines) { bytes += chunk }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The text without terminal control sequences' control characters
    /// (newlines and tabs kept): a guest's colour codes are noise in a page.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { $0 == "\n" || $0 == "\t" || !($0.properties.generalCategory == .control) }))
    }

    static func render(_ library: MustacheLibrary, _ page: Any, _ template: String) throws -> Response {
        guard let html = library.render(page, withTemplate: template) else {
            throw UniError(.internalError, "no dashboard template \(template)")
        }
        return self.html(html)
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func asset(_ text: String, type: String) -> Response {
        // The assets change only with the binary; an hour saves reloads without hiding an upgrade for long.
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=3600"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func jsonResponse(_ bytes: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: bytes))
    }
}

/// The JSON of the last value encoded, answered again while it is younger
/// than ``maximumAge`` (without asking for the value) or equal to a new
/// value: the list changes every poll interval at most, and a flood of
/// requests must not each sort 100 records and encode them (docs/performance.md).
final class EncodedCache<Value: Encodable & Equatable & Sendable>: Sendable {
    /// A VM started or stopped shows in the list at most this late; the
    /// page polls every 3 s and the numbers are 5 s samples.
    static var maximumAge: Duration { .milliseconds(250) }

    private let last = Mutex<(value: Value, bytes: ByteBuffer, at: ContinuousClock.Instant)?>(nil)

    func bytes(_ make: () async throws -> Value) async throws -> ByteBuffer {
        let now = ContinuousClock.now
        if let fresh = last.withLock({ entry in entry.flatMap { now - $0.at < Self.maximumAge ? $0.bytes : nil } }) { return fresh }
        let value = try await make()
        let unchanged = last.withLock { entry -> ByteBuffer? in
            guard let old = entry, old.value == value else { return nil }
            entry = (old.value, old.bytes, now)
            return old.bytes
        }
        if let unchanged { return unchanged }
        let bytes = ByteBuffer(bytes: try JSONCoding.makeEncoder().encode(value))
        last.withLock { $0 = (value, bytes, now) }
        return bytes
    }
}
