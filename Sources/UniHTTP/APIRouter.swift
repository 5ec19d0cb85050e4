import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import NIOCore
import Tracing
import UniKit

/// The daemon's API over `<data-dir>/unid.sock`: the routes `uni` uses.
///
/// Every route is documented in `docs/api.md`. Bodies are snake_case JSON;
/// errors are `{"error", "code"}` with the status of ``APIErrorMiddleware``.
public enum APIRouter {
    /// The largest request body accepted (a VM config is a few KiB).
    static let maximumBodyBytes = 1 << 20

    /// Builds the router over `manager`.
    /// Incoming W3C `traceparent` headers make the daemon's spans children of the caller's.
    public static func build(manager: VMManager, info: DaemonInfo, tracer: any Tracer = NoOpTracer()) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: TraceContextMiddleware(tracer: tracer))
        router.add(middleware: APIErrorMiddleware())
        let v1 = router.group("v1")

        v1.get("info") { _, _ in try json(info) }

        v1.get("vms") { request, _ in
            // `GET /v1/vms/` is this route to the router: an inspect with an empty reference.
            if request.uri.path.hasSuffix("/") { try VMReference.check("") }
            let all = try flag(request, "all")
            return try json(await manager.list(all: all))
        }

        // Records the store could not read: no VMs, so not in `GET /v1/vms`,
        // whose array of VM records keeps its shape (docs/api.md).
        v1.get("records/unreadable") { _, _ in
            try json(await manager.unreadableRecords())
        }

        v1.post("vms") { request, _ in
            let start = try request.uri.queryParameters["start"].map { try parseBool("start", String($0)) } ?? true
            let body = try await collectBody(request)
            let config: VMConfig
            do {
                config = try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(buffer: body))
            } catch {
                throw UniError.invalid("invalid VM config body: \(JSONCoding.describe(error))")
            }
            if try flag(request, "attach") { return try await attach(manager: manager, config: config) }
            let vm = start ? try await manager.run(config) : try await manager.create(config)
            return try json(vm, status: .created)
        }

        v1.get("stats") { _, _ in
            try json(await manager.stats())
        }

        v1.get("vms/:ref/stats") { _, context in
            try json(await manager.stats(try reference(context)))
        }

        v1.get("vms/:ref") { _, context in
            try json(await manager.inspect(try reference(context)))
        }

        // Docker's habit: a start of a running VM and a stop of a stopped
        // (or never started) one change nothing and succeed, answering the
        // VM as it is. The manager still refuses them (its callers race on
        // purpose); `kill` of a stopped VM stays an error.
        v1.post("vms/:ref/start") { _, context in
            let reference = try reference(context)
            return try await unchanged(manager, reference, when: [.running]) { try await manager.start(reference) }
        }

        v1.post("vms/:ref/stop") { request, context in
            let timeout = try request.uri.queryParameters["timeout"].map { try DurationParser.parse(String($0), flag: "timeout") }
            let reference = try reference(context)
            return try await unchanged(manager, reference, when: [.stopped, .created]) { try await manager.stop(reference, timeout: timeout) }
        }

        v1.post("vms/:ref/kill") { _, context in
            try json(await manager.kill(try reference(context)))
        }

        v1.post("vms/:ref/update") { request, context in
            let body = try await collectBody(request)
            // A misspelt field next to a valid one must not be dropped silently.
            if let fields = try? JSONDecoder().decode([String: JSONValue].self, from: Data(buffer: body)) {
                let allowed: Set = ["cpu_shares", "memory_max_bytes", "disk_iops", "disk_bps"]
                if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
                    throw UniError.invalid("invalid update body: unknown field '\(unknown)' (allowed: cpu_shares, memory_max_bytes, disk_iops, disk_bps)")
                }
            }
            let update: ResourceUpdate
            do {
                update = try JSONCoding.makeDecoder().decode(ResourceUpdate.self, from: Data(buffer: body))
            } catch {
                throw UniError.invalid("invalid update body: \(JSONCoding.describe(error))")
            }
            return try json(await manager.update(try reference(context), update))
        }

        v1.post("vms/:ref/wait") { _, context in
            try json(await manager.wait(try reference(context)))
        }

        v1.delete("vms/:ref") { request, context in
            try await manager.remove(try reference(context), force: try flag(request, "force"))
            return Response(status: .noContent)
        }

        v1.get("images") { _, _ in
            try json(try manager.images.list())
        }

        v1.post("images/import") { request, _ in
            let body: ImageImportRequest = try await decodeBody(request, as: "image import")
            return try json(try await manager.images.importImage(body), status: .created)
        }

        v1.post("images/tag") { request, _ in
            let body: ImageTagRequest = try await decodeBody(request, as: "image tag")
            return try json(try manager.images.tag(body.source, as: body.target), status: .created)
        }

        v1.post("images/pull") { request, _ in
            let body: ImagePullRequest = try await decodeBody(request, as: "image pull")
            let reference = try ImageReference.parsePullable(body.reference)
            return transferResponse { progress in
                try await manager.images.pull(reference, insecure: body.insecure, progress: progress)
            }
        }

        v1.post("images/push") { request, _ in
            let body: ImagePushRequest = try await decodeBody(request, as: "image push")
            // The checks that need no registry answer before the stream starts.
            let (source, _) = try manager.images.pushPlan(body.source, to: body.destination)
            return transferResponse { progress in
                let pushed = try await manager.images.push(body.source, to: body.destination, insecure: body.insecure, progress: progress)
                return StoredImage(reference: pushed.destination, digest: pushed.digest, created: source.created, size: source.size)
            }
        }

        v1.post("auth") { request, _ in
            let body: RegistryLoginRequest = try await decodeBody(request, as: "login")
            try await manager.images.login(registry: body.registry, credentials: RegistryCredentials(username: body.username, password: body.password),
                                           insecure: body.insecure)
            return try json(["registry": body.registry, "username": body.username])
        }

        v1.delete("auth") { request, _ in
            guard let registry = request.uri.queryParameters["registry"].map(String.init) else {
                throw UniError.invalid("missing registry: give it as ?registry=HOST[:PORT]")
            }
            guard try manager.images.logout(registry: registry) else { throw UniError(.notFound, "not logged in to \(registry)") }
            return Response(status: .noContent)
        }

        // References have '/' and ':' in them: they travel in the query.
        v1.delete("images") { request, _ in
            guard let reference = request.uri.queryParameters["ref"].map(String.init) else {
                throw UniError.invalid("missing ref: give the image to remove, as ?ref=NAME:TAG")
            }
            return try json(try await manager.removeImage(reference, force: try flag(request, "force")))
        }

        v1.get("events") { request, _ in
            var filter = VMEventFilter()
            let query = request.uri.queryParameters
            filter.since = try query["since"].map { try VMEventFilter.time(String($0), flag: "since") }
            filter.until = try query["until"].map { try VMEventFilter.time(String($0), flag: "until") }
            for vm in query.getAll("vm") { try filter.addVM(String(vm)) }
            let encoder = JSONCoding.makeEncoder()
            func line(_ event: VMEvent) -> ByteBuffer {
                var data = (try? encoder.encode(event)) ?? Data()
                data.append(UInt8(ascii: "\n"))
                return ByteBuffer(bytes: data)
            }
            let headers: HTTPFields = [.contentType: "application/x-ndjson"]
            guard try flag(request, "follow") else {
                var buffer = ByteBuffer()
                for event in manager.events.events(matching: filter) { buffer.writeImmutableBuffer(line(event)) }
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: buffer))
            }
            // Ends at unid's graceful shutdown: the API server stops first and
            // waits for its responses, so a stream left open would hold it.
            let stream = manager.events.follow(matching: filter).cancelOnGracefulShutdown()
            return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: stream.map(line)))
        }

        v1.get("vms/:ref/logs") { request, context in
            let tail = try request.uri.queryParameters["tail"].map { try LineCountParser.parse(String($0), flag: "tail") }
            let stream = try await manager.logs(try reference(context), tail: tail, follow: try flag(request, "follow"))
            let body = ResponseBody(asyncSequence: stream.cancelOnGracefulShutdown().map { ByteBuffer(bytes: $0) })
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: body)
        }
        return router
    }

    /// A push or pull as NDJSON: one ``ImageTransferEvent`` per layer step,
    /// then `done` with the image or `error`. The transfer runs inside the
    /// response: a client that leaves cancels it.
    static func transferResponse(_ transfer: @escaping @Sendable (@escaping @Sendable (RegistryProgress) -> Void) async throws -> StoredImage) -> Response {
        let body = ResponseBody { writer in
            let (events, continuation) = AsyncStream.makeStream(of: ImageTransferEvent.self, bufferingPolicy: .bufferingNewest(4096))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        let image = try await transfer { continuation.yield(ImageTransferEvent(progress: $0)) }
                        continuation.yield(ImageTransferEvent(type: "done", image: image))
                    } catch {
                        let failure = (error as? UniError) ?? UniError(.internalError, "\(error)")
                        continuation.yield(ImageTransferEvent(type: "error", error: failure.message, code: failure.code.description))
                    }
                    continuation.finish()
                }
                let encoder = JSONCoding.makeEncoder()
                for await event in events {
                    var line = try encoder.encode(event)
                    line.append(UInt8(ascii: "\n"))
                    try await writer.write(ByteBuffer(bytes: line))
                }
                try await group.waitForAll()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: body)
    }

    /// The header naming the VM of an attached run.
    public static let vmIDHeader = HTTPField.Name("X-Uni-VM-ID")!

    /// `POST /v1/vms?attach=true`: creates the VM, subscribes to its console,
    /// answers at once, and starts the VM while the console streams, so the
    /// first serial line is not held back by the start's QMP check. A failed
    /// start removes the VM; its final record (`stop_reason`, `last_error`)
    /// is still answered by `wait` with the id from the `X-Uni-VM-ID` header.
    static func attach(manager: VMManager, config: VMConfig) async throws -> Response {
        let (vm, console) = try await manager.runAttached(config)
        let body = ResponseBody { writer in
            for await chunk in console.cancelOnGracefulShutdown() { try await writer.write(ByteBuffer(bytes: chunk)) }
            try await writer.finish(nil)
        }
        return Response(status: .created, headers: [.contentType: "text/plain; charset=utf-8", vmIDHeader: vm.id.rawValue], body: body)
    }

    /// Runs `operation`; when the manager refuses it because the VM is
    /// already in one of `states`, answers the VM as it is instead.
    static func unchanged(_ manager: VMManager, _ reference: String, when states: Set<VMState>,
                          _ operation: () async throws -> VM) async throws -> Response {
        do {
            return try json(try await operation())
        } catch let error as UniError where error.code == .invalidState {
            guard let vm = try? await manager.inspect(reference), states.contains(vm.state) else { throw error }
            return try json(vm)
        }
    }

    static func reference(_ context: BasicRequestContext) throws -> String {
        let value = context.parameters.get("ref") ?? ""
        try VMReference.check(value)
        return value
    }

    /// The request body, up to ``maximumBodyBytes``.
    /// - Throws: ``UniError`` (`payloadTooLarge`) for a larger body, instead of NIO's bare error.
    static func collectBody(_ request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: maximumBodyBytes)
        } catch is NIOTooManyBytesError {
            throw UniError(.payloadTooLarge, "request body is larger than \(maximumBodyBytes >> 20) MiB (\(maximumBodyBytes) bytes)")
        }
    }

    /// The request body as `T`; a decoding error names the field, prefixed by `what`.
    static func decodeBody<T: Decodable>(_ request: Request, as what: String) async throws -> T {
        let body = try await collectBody(request)
        do {
            return try JSONCoding.makeDecoder().decode(T.self, from: Data(buffer: body))
        } catch {
            throw UniError.invalid("invalid \(what) body: \(JSONCoding.describe(error))")
        }
    }

    static func flag(_ request: Request, _ name: String) throws -> Bool {
        try request.uri.queryParameters[Substring(name)].map { try parseBool(name, String($0)) } ?? false
    }

    static func parseBool(_ name: String, _ text: String) throws -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "": return true
        case "0", "false", "no": return false
        default: throw UniError.invalid("invalid \(name) '\(text)': expected true or false")
        }
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONCoding.makeEncoder().encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
