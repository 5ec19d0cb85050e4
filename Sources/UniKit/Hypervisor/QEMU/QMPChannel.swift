import Foundation

/// The one owner of a VM's QMP traffic: its start check, stop request,
/// stats samples and throttle changes queue here, first come first served.
///
/// QEMU serves one QMP client at a time and leaves the next one waiting in
/// the socket's backlog; queueing in unid instead keeps the order fair,
/// bounds each caller's whole wait (queue included) by its own timeout, and
/// gives a sampler that cannot wait the answer "busy" rather than a stall.
actor QMPChannel {
    /// The client each command's session goes through.
    nonisolated let client: QMPClient
    private var busy = false
    private var waiters: [(ticket: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
    private var nextTicket: UInt64 = 0

    init(client: QMPClient) {
        self.client = client
    }

    /// Whether a command runs now.
    var isBusy: Bool { busy }

    /// The socket's path.
    nonisolated var socketPath: String { client.socketPath }

    /// Runs `command` once the commands queued before it are done.
    /// - Parameter timeout: the whole wait, queue included; the client's
    ///   own timeout when `nil`.
    /// - Throws: ``UniError`` (`hypervisorFailed`) when QEMU answers with an
    ///   error, cannot be reached, or the time runs out.
    func execute(_ command: String, arguments: [String: JSONValue]? = nil, timeout: Duration? = nil) async throws -> JSONValue {
        let timeout = timeout ?? client.timeout
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        guard await acquire(until: deadline) else {
            throw UniError(.hypervisorFailed, "QMP \(command) waited \(timeout) for the VM's earlier QMP commands")
        }
        defer { release() }
        // What the queue left, in whole milliseconds (it shows in messages).
        let left = max((deadline - clock.now).wholeMilliseconds, 1)
        return try await client.execute(command, arguments: arguments, timeout: .milliseconds(left))
    }

    /// Waits for the channel; `false` when `deadline` passed first.
    private func acquire(until deadline: ContinuousClock.Instant) async -> Bool {
        guard busy else {
            busy = true
            return true
        }
        nextTicket += 1
        let ticket = nextTicket
        let expiry = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            await self?.expire(ticket)
        }
        defer { expiry.cancel() }
        return await withCheckedContinuation { waiters.append((ticket, $0)) }
    }

    /// Hands the channel to the next waiter, or frees it.
    private func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().continuation.resume(returning: true)
        }
    }

    private func expire(_ ticket: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.ticket == ticket }) else { return }
        waiters.remove(at: index).continuation.resume(returning: false)
    }
}
