import Foundation
import NIOCore
import NIOExtras
import NIOPosix
import Synchronization

/// A QEMU Machine Protocol client over a VM's `qmp.sock`.
///
/// Each call opens a connection, negotiates capabilities, runs its commands
/// and closes: QEMU serves one QMP client at a time, and short sessions leave
/// the socket free for the next caller (stats sampling, throttling).
public struct QMPClient: Sendable {
    /// The socket path.
    public let socketPath: String
    /// How long one session may take, greeting included: a QEMU that does
    /// not answer (stopped, wedged on a file) must not hold its caller, and
    /// with it the VM's gate, forever.
    public let timeout: Duration
    private let eventLoopGroup: any EventLoopGroup

    /// A client for the socket at `socketPath`.
    public init(socketPath: String, timeout: Duration = .seconds(5), eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.eventLoopGroup = eventLoopGroup
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    /// - Throws: ``UniError`` (`hypervisorFailed`) when QEMU answers with an
    ///   error, the socket cannot be reached, or no answer comes within ``timeout``.
    public func execute(_ command: String, arguments: [String: JSONValue]? = nil) async throws -> JSONValue {
        try await session(named: "QMP \(command)") { try await $0.execute(command, arguments: arguments) }
    }

    /// Runs `command` like ``execute(_:arguments:)``, giving up after `timeout`
    /// instead of ``timeout``: QEMU serves one client at a time, so a caller
    /// that must not wait long (stats sampling) bounds its wait for the socket.
    /// - Throws: ``UniError`` (`hypervisorFailed`) as ``execute(_:arguments:)``.
    public func execute(_ command: String, arguments: [String: JSONValue]? = nil, timeout: Duration) async throws -> JSONValue {
        try await QMPClient(socketPath: socketPath, timeout: timeout, eventLoopGroup: eventLoopGroup).execute(command, arguments: arguments)
    }

    /// Opens one session and runs `body` in it, within ``timeout``.
    public func session<Result: Sendable>(_ body: (QMPSession) async throws -> Result) async throws -> Result {
        try await session(named: "QMP session", body)
    }

    /// `what` names the work in the timeout's message.
    private func session<Result: Sendable>(named what: String, _ body: (QMPSession) async throws -> Result) async throws -> Result {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw UniError(.hypervisorFailed, "cannot connect to QMP socket '\(socketPath)': \(error)")
        }
        // Closing the channel ends the session's reads, whatever they wait on
        // (a QEMU that is stopped, wedged on a file, or serving another client).
        let expired = Mutex(false)
        let timeout = timeout
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            expired.withLock { $0 = true }
            channel.channel.close(promise: nil)
        }
        defer { watchdog.cancel() }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                let session = QMPSession(inbound: inbound.makeAsyncIterator(), outbound: outbound)
                _ = try await session.readMessage(skippingEvents: false)  // greeting
                _ = try await session.execute("qmp_capabilities", arguments: nil)
                return try await body(session)
            }
        } catch where expired.withLock({ $0 }) {
            throw UniError(.hypervisorFailed, "\(what) got no answer within \(timeout)", cause: error)
        }
    }
}

/// One negotiated QMP connection; valid only inside ``QMPClient/session(_:)``.
public final class QMPSession {
    // Lives inside one session closure, used by one task.
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Runs one command and returns its `return` value; events in between are skipped.
    public func execute(_ command: String, arguments: [String: JSONValue]?) async throws -> JSONValue {
        var message: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { message["arguments"] = .object(arguments) }
        var data = try JSONEncoder().encode(message)
        data.append(UInt8(ascii: "\n"))
        try await outbound.write(ByteBuffer(bytes: data))
        let reply = try await readMessage(skippingEvents: true)
        if let error = reply["error"] {
            throw UniError(.hypervisorFailed, "QMP \(command) failed: \(error["desc"]?.stringValue ?? "unknown error")")
        }
        return reply["return"] ?? .null
    }

    func readMessage(skippingEvents: Bool) async throws -> JSONValue {
        while true {
            guard let line = try await inbound.next() else {
                throw UniError(.hypervisorFailed, "QMP connection closed by QEMU")
            }
            guard let message = try? JSONDecoder().decode(JSONValue.self, from: Data(line.readableBytesView)),
                  case .object = message else {
                throw UniError(.hypervisorFailed, "QMP sent a line that is not a JSON object")
            }
            if skippingEvents, message["event"] != nil { continue }
            return message
        }
    }
}
