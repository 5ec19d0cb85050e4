import AsyncHTTPClient
import Foundation
import NIOCore
import Logging
import Synchronization
import Testing
import Tracing
import UniCLI
import UniHTTP
@testable import UniKit
import UniKitTesting

/// What the integration tests need from the host: QEMU, the guests built
/// from source, and the built `uni`/`unid` binaries.
enum Host {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Integration tests skip only when QEMU itself is missing (`.ci/run` installs it).
    static let hasQEMU = (try? QEMUHypervisor.locateBinary()) != nil

    /// The folder of the built products (`uni`, `unid`), next to the test bundle.
    static let binDirectory: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
        if url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The test guests, built once per test process with the host toolchain.
    static let guests: Result<(kernel: String, disk: String), any Error> = buildGuests("native").map { ($0 + "/uni-test-kernel.elf", $0 + "/boot.img") }

    /// Runs `Tests/Guests/build.sh` for `target` and returns the output folder.
    static func buildGuests(_ target: String) -> Result<String, any Error> {
        let output = packageRoot + "/.build/guests"
        return runBuild("/bin/bash", [packageRoot + "/Tests/Guests/build.sh", output, target], what: "building the \(target) test guests").map { output }
    }

    /// Runs a build step to its end; its output is the failure's message.
    static func runBuild(_ executable: String, _ arguments: [String], what: String) -> Result<Void, any Error> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            return .failure(error)
        }
        // Read before waiting: a chatty step must not fill the pipe and hang.
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return .failure(UniError(.internalError, "\(what) failed (status \(process.terminationStatus)): \(text)"))
        }
        return .success(())
    }

    static func kernel() throws -> String { try guests.get().kernel }
    /// The test kernel with a multiboot header and no PVH note (`Tests/Guests/build.sh`).
    static func multibootKernel() throws -> String { (try kernel() as NSString).deletingLastPathComponent + "/uni-test-kernel-multiboot.elf" }
    static func disk() throws -> String { try guests.get().disk }
    /// The boot sector that reads its disk in a loop (`Tests/Guests/bootsector/diskloop.S`).
    static func diskLoop() throws -> String { (try disk() as NSString).deletingLastPathComponent + "/diskloop.img" }

    /// Starts the built `unid` on `dataDir` (TCG, 2 s stop timeout) in its
    /// own process group: a SIGKILL reaches only it, not its QEMUs.
    static func startDaemon(dataDir: String, arguments: [String] = []) throws -> ChildProcess {
        try ChildProcess(executable: binDirectory + "/unid",
                         arguments: ["--data-dir", dataDir, "--accel", "tcg", "--stop-timeout", "2s", "--log-level", "warning"] + arguments) { _ in }
    }

    /// QEMU processes whose command line mentions `directory`.
    static func qemuProcesses(under directory: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let cmdline = String(decoding: data, as: UTF8.self)
            return cmdline.hasPrefix("/") && cmdline.contains("qemu-system") && cmdline.contains(directory + "/") ? pid : nil
        }
    }

    /// Polls `condition` every 10 ms until it holds or `timeout` passes.
    static func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return try await condition()
    }

    /// A free TCP port on 127.0.0.1 (bound, read and released).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return UInt16(bigEndian: address.sin_port)
    }

    /// GETs `url` and returns the status and body (0 and "" when nothing answers).
    static func get(_ url: String) async -> (Int, String) {
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 16 << 20)
            return (Int(response.status.code), String(buffer: body))
        } catch {
            return (0, "")
        }
    }

    /// Runs a built product and returns its exit status, stdout and stderr.
    static func runProduct(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runExecutable(binDirectory + "/" + name, arguments, environment: environment)
    }

    /// Runs the executable at `path` to its end and returns its exit status, stdout and stderr.
    static func runExecutable(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

/// A real daemon (QEMU hypervisor, file store, API socket) running in this
/// process on a temporary data dir, with TCG.
struct DaemonHarness {
    let directory: TemporaryDirectory
    var dataDirectory: DataDirectory { DataDirectory(root: directory.path) }
    var client: UniClient { UniClient(socketPath: dataDirectory.socketPath) }

    init() throws { directory = try TemporaryDirectory(prefix: "uni-it") }

    /// Runs `body` against the daemon, then shuts it down and checks that no
    /// QEMU process of this data dir is left.
    func run(stopTimeout: Duration = .seconds(5), _ body: @escaping @Sendable (DaemonHarness, VMManager) async throws -> Void) async throws {
        try await runWithTelemetry(stopTimeout: stopTimeout) { harness, manager, _ in try await body(harness, manager) }
    }

    /// Like ``run(stopTimeout:_:)`` with a metrics server on 127.0.0.1 (its
    /// port handed to `body`), a fast stats poller, and optional trace export.
    func runWithTelemetry(stopTimeout: Duration = .seconds(5), traces: TraceExport.Backend? = nil,
                          _ body: @escaping @Sendable (DaemonHarness, VMManager, Int) async throws -> Void) async throws {
        defer { directory.remove() }
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let (metricsReady, metricsContinuation) = AsyncStream<Int>.makeStream()
        var quiet = Logger(label: "it")
        quiet.logLevel = .warning
        let logger = quiet
        let daemon = try await Daemon.make(
            configuration: DaemonConfiguration(dataDirectory: dataDirectory, accelerator: .tcg, stopTimeout: stopTimeout,
                                               metricsAddress: "127.0.0.1:0", statsInterval: .milliseconds(100)),
            logger: logger, tracer: traces?.tracer ?? NoOpTracer(),
            onReady: { readyContinuation.yield() }, onMetricsReady: { metricsContinuation.yield($0) }
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await daemon.run(logger: logger, first: traces.map { [$0.service] } ?? [], gracefulShutdownSignals: []) }
            for await _ in ready { break }
            var port = 0
            for await bound in metricsReady { port = bound; break }
            defer { group.cancelAll() }
            try await body(self, daemon.manager, port)
        }
        let leftovers = Host.qemuProcesses(under: directory.path)
        #expect(leftovers.isEmpty, "QEMU processes outlived the daemon: \(leftovers)")
        for pid in leftovers { kill(pid, SIGKILL) }
    }

    /// The console text of `reference` so far.
    func logs(_ reference: String, tail: Int? = nil) async throws -> String {
        var text = ""
        for try await chunk in try await client.logs(reference, tail: tail) { text += String(decoding: chunk, as: UTF8.self) }
        return text
    }

    /// Waits until the console of `reference` contains `needle`.
    func waitForConsole(_ reference: String, containing needle: String) async throws -> Bool {
        try await Host.eventually { try await logs(reference).contains(needle) }
    }
}

final class OutputCollector: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    func append(_ chunk: [UInt8]) { bytes.withLock { $0 += chunk } }
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
}

/// Where a child process writes, read without blocking: a pseudo-terminal
/// (the child's `isatty` is true; the terminal turns `\n` into `\r\n`)
/// or a plain pipe.
final class CapturedOutput: @unchecked Sendable {
    /// Hand this to the process as stdin, stdout and stderr.
    let child: FileHandle
    private let parent: Int32
    private(set) var output = ""

    init(terminal: Bool) throws {
        var reading: Int32 = -1
        var writing: Int32 = -1
        var ends: [Int32] = [-1, -1]
        let made = terminal ? openpty(&reading, &writing, nil, nil, nil) : pipe(&ends)
        guard made == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        if !terminal { (reading, writing) = (ends[0], ends[1]) }
        _ = fcntl(reading, F_SETFL, fcntl(reading, F_GETFL) | O_NONBLOCK)
        parent = reading
        child = FileHandle(fileDescriptor: writing, closeOnDealloc: true)
    }

    deinit { close(parent) }

    /// Appends to ``output`` whatever was written so far.
    func read() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(parent, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            output += String(decoding: buffer[0..<count], as: UTF8.self)
        }
    }
}
