import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Testing
import UniCore
import UniHTTP
@testable import UniKit
import UniKitTesting
import Yams

extension Integration {
    /// `docs/openapi.yaml` against the API that exists: the router's own
    /// route table, and a real `unid` answering on its socket.
    @Suite("OpenAPI document (docs/openapi.yaml)")
    struct OpenAPIIntegrationTests {
        /// The HTTP methods an OpenAPI path item may hold.
        static let methods: Set = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

        /// Every (method, path) of the document, as `GET /v1/vms/{ref}`.
        static func documentedOperations() throws -> Set<String> {
            let text = try String(contentsOfFile: Host.packageRoot + "/docs/openapi.yaml", encoding: .utf8)
            let document = try #require(try Yams.load(yaml: text) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: Any])
            var operations: Set<String> = []
            for (path, item) in paths {
                let item = try #require(item as? [String: Any], "path item \(path) is not a mapping")
                for method in item.keys where methods.contains(method) {
                    operations.insert("\(method.uppercased()) \(path)")
                }
            }
            return operations
        }

        @Test("every route APIRouter registers is in the document, and nothing else")
        func routerRoutesAreDocumented() async throws {
            let directory = try TemporaryDirectory(prefix: "uni-openapi")
            defer { directory.remove() }
            let dataDirectory = DataDirectory(root: directory.path)
            let manager = VMManager(configuration: VMManagerConfiguration(dataDirectory: dataDirectory),
                                    backends: VMManagerBackends(store: InMemoryVMStore(), hypervisor: ScriptedHypervisor()),
                                    logger: Logger(label: "openapi-test"))
            let info = DaemonInfo(version: UniVersion.current, accelerator: .tcg, dataDirectory: directory.path, pid: getpid())
            let router = APIRouter.build(manager: manager, info: info)
            // Hummingbird writes a capture as `{ref}`, as OpenAPI does.
            let served = Set(router.routes.map { "\($0.method) \($0.path)" })
            #expect(served.count > 15, "the router's table looks empty: \(served.sorted())")
            let documented = try Self.documentedOperations()
            #expect(served.subtracting(documented).sorted() == [], "routes missing from docs/openapi.yaml")
            #expect(documented.subtracting(served).sorted() == [], "operations in docs/openapi.yaml that the router does not serve")
        }

        @Test("a real unid answers every documented operation with something other than its unknown-route 404")
        func documentedOperationsAreServed() async throws {
            let directory = try TemporaryDirectory(prefix: "uni-openapi")
            defer { directory.remove() }
            let unid = try Host.startDaemon(dataDir: directory.path)
            defer { unid.send(SIGKILL) }
            let socket = directory.path + "/unid.sock"
            #expect(await Host.eventually { FileManager.default.fileExists(atPath: socket) })

            // The control: an unknown route gets the router's own 404, which
            // is what the checks below must never see.
            let unknown = try await Self.request("GET", "/v1/no-such-route", socket: socket)
            #expect(unknown.status == 404)
            #expect(Self.isUnknownRoute(unknown), "\(unknown.body)")
            // A VM that does not exist is a 404 too, but not that one.
            let missingVM = try await Self.request("GET", "/v1/vms/openapi-probe", socket: socket)
            #expect(missingVM.status == 404)
            #expect(!Self.isUnknownRoute(missingVM), "\(missingVM.body)")

            for operation in try Self.documentedOperations().sorted() {
                let parts = operation.split(separator: " ", maxSplits: 1).map(String.init)
                // No bodies and an unknown VM: nothing is created or started.
                let path = parts[1].replacingOccurrences(of: "{ref}", with: "openapi-probe")
                let answer = try await Self.request(parts[0], path, socket: socket)
                #expect(!Self.isUnknownRoute(answer), "\(operation) is not served: \(answer.status) \(answer.body)")
                #expect(answer.status != 405, "\(operation): method not allowed")
            }
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
        }

        /// The answer of ``APIErrorMiddleware`` for a route the router lacks.
        static func isUnknownRoute(_ answer: (status: Int, body: String)) -> Bool {
            answer.status == 404 && answer.body.contains("no such endpoint")
        }

        static func request(_ method: String, _ path: String, socket: String) async throws -> (status: Int, body: String) {
            let url = try #require(URL(httpURLWithSocketPath: socket, uri: path))
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = HTTPMethod(rawValue: method)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), String(buffer: bytes))
        }
    }
}
