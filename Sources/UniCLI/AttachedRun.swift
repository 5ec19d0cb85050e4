import UniCore

/// `uni run --attach`: one request creates the VM, subscribes to its console
/// and starts it, so no output is missed however fast the guest is; `wait`
/// then gives the exit code (or the reason the start failed).
public enum AttachedRun {
    /// Runs `config` attached, handing console bytes to `output`.
    /// - Returns: the VM's exit code.
    /// - Throws: the daemon's ``UniError``; a VM whose start failed is removed
    ///   and its `last_error` is the message.
    public static func run(client: UniClient, config: VMConfig, output: @Sendable ([UInt8]) -> Void) async throws -> Int32 {
        let (id, console) = try await client.createAttached(config)
        for try await chunk in console { output(chunk) }
        let final = try await client.wait(id)
        if final.stopReason == .failedToStart {
            throw UniError(.hypervisorFailed, final.lastError ?? "vm \(final.name) failed to start")
        }
        return final.exitCode ?? 0
    }
}
