import AsyncHTTPClient
import Foundation
import Synchronization
import UniKit
import UniKitTesting
#if canImport(Glibc)
import Glibc
#endif

/// Whether the real-registry tools are installed (scripts/setup.sh installs them).
public enum RegistryTools {
    public static let registryBinary = "/usr/bin/docker-registry"
    public static var available: Bool {
        FileManager.default.isExecutableFile(atPath: registryBinary) && FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/htpasswd")
    }
    public static let missing = "docker-registry, skopeo or htpasswd is not installed: scripts/setup.sh installs them (docker-registry skopeo apache2-utils)"
}

/// A free TCP port on 127.0.0.1 (bound, read, closed).
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw UniError(.internalError, "socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { throw UniError(.internalError, "bind: \(String(cString: strerror(errno)))") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs a tool to its end.
/// - Returns: its exit status, standard output and standard error.
@discardableResult
public func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: Data, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Read both pipes before waiting: a full pipe would block the tool.
    let errorData = Mutex<Data>(Data())
    let errorReader = Thread { errorData.withLock { $0 = error.fileHandleForReading.readDataToEndOfFile() } }
    errorReader.start()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !errorReader.isFinished { usleep(1000) }
    return (process.terminationStatus, outputData, String(decoding: errorData.withLock { $0 }, as: UTF8.self))
}

/// The real CNCF Distribution registry (`docker-registry serve CONFIG`) on
/// an ephemeral 127.0.0.1 port, storing in a temp dir; optionally behind
/// htpasswd basic auth. ``stop()`` kills it and removes the folder.
public final class RegistryProcess: @unchecked Sendable {  // Process: stopped once, by the test that started it
    public let port: Int
    public let directory: TemporaryDirectory
    public let credentials: RegistryCredentials?
    private let process: Process
    public var registry: String { "127.0.0.1:\(port)" }
    public var storagePath: String { directory.path + "/data" }

    /// Starts a registry and waits (up to 15 s) until `/v2/` answers.
    public static func start(credentials: RegistryCredentials? = nil) async throws -> RegistryProcess {
        var lastError: (any Error)?
        for _ in 0..<3 {  // another process may take the free port between the probe and the bind
            do {
                return try await RegistryProcess(credentials: credentials)
            } catch {
                lastError = error
            }
        }
        throw lastError ?? UniError(.internalError, "docker-registry did not start")
    }

    private init(credentials: RegistryCredentials?) async throws {
        self.credentials = credentials
        directory = try TemporaryDirectory(prefix: "uni-registry")
        port = try freePort()
        var config = """
        version: 0.1
        log:
          level: warn
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: \(directory.path)/data
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:\(port)
          secret: uni-registry-test
        """
        if let credentials {
            let made = try runTool("/usr/bin/htpasswd", ["-Bbn", credentials.username, credentials.password])
            guard made.status == 0 else { throw UniError(.internalError, "htpasswd failed: \(made.error)") }
            try made.output.write(to: URL(fileURLWithPath: directory.path + "/htpasswd"))
            config += """

            auth:
              htpasswd:
                realm: uni-test
                path: \(directory.path)/htpasswd
            """
        }
        try Data((config + "\n").utf8).write(to: URL(fileURLWithPath: directory.path + "/config.yml"))
        process = Process()
        process.executableURL = URL(fileURLWithPath: RegistryTools.registryBinary)
        process.arguments = ["serve", directory.path + "/config.yml"]
        _ = FileManager.default.createFile(atPath: directory.path + "/registry.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.path + "/registry.log"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/")
            request.method = .GET
            if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) {
                _ = try? await response.body.collect(upTo: 1 << 16)
                if response.status == .ok || response.status == .unauthorized { break }
            }
            guard process.isRunning, ContinuousClock.now < deadline else {
                let text = (try? String(contentsOfFile: directory.path + "/registry.log", encoding: .utf8)) ?? ""
                stop()
                throw UniError(.internalError, "docker-registry on port \(port) did not answer /v2/ within 15 s: \(text.suffix(500))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Kills the registry, waits for it, and removes its folder.
    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        directory.remove()
    }

    /// Runs `body` with a started registry and stops it afterwards, whatever happens.
    public static func with<T>(credentials: RegistryCredentials? = nil, _ body: (RegistryProcess) async throws -> T) async throws -> T {
        let registry = try await start(credentials: credentials)
        do {
            let result = try await body(registry)
            registry.stop()
            return result
        } catch {
            registry.stop()
            throw error
        }
    }
}

/// `skopeo ARGS`, its output; throws with stderr when it fails.
public func skopeo(_ arguments: [String]) throws -> Data {
    let result = try runTool("/usr/bin/skopeo", arguments)
    guard result.status == 0 else { throw UniError(.internalError, "skopeo \(arguments.joined(separator: " ")) failed: \(result.error)") }
    return result.output
}
