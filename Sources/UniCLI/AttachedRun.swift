import UniCore

/// `uni run --attach`: one request creates the VM, subscribes to its console
/// and starts it, so no output is missed however fast the guest is; `wait`
/// then gives the exit code (or the reason the start failed).
public enum AttachedRun {
    /// Runs `config` attached, handing console bytes to `output` as they
    /// arrive, on the calling thread.
    /// - Parameter created: called with the VM's id as soon as the daemon
    ///   has created it, before any console byte (`uni run` forwards its
    ///   signals to that VM).
    /// - Returns: the VM's exit code.
    /// - Throws: the daemon's ``UniError``; a VM whose start failed is removed
    ///   and its `last_error` is the message.
    public static func run(client: UniClient, config: VMConfig, created: (String) -> Void = { _ in },
                           output: ([UInt8]) -> Void) throws -> Int32 {
        let (id, console) = try client.createAttached(config)
        created(id)
        while let chunk = try console.next() { output(chunk) }
        return try outcome(client.wait(id))
    }

    /// The same for async callers: the console is read on a thread of its own.
    public static func run(client: UniClient, config: VMConfig, output: @Sendable ([UInt8]) -> Void) async throws -> Int32 {
        let (id, console) = try await client.createAttached(config)
        for try await chunk in console { output(chunk) }
        return try outcome(await client.wait(id))
    }

    private static func outcome(_ final: VM) throws -> Int32 {
        if final.stopReason == .failedToStart {
            throw UniError(.hypervisorFailed, final.lastError ?? "vm \(final.name) failed to start")
        }
        return final.exitCode ?? 0
    }
}
