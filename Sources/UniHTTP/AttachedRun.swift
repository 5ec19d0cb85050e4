import AsyncHTTPClient

typealias HTTPClientResponseBody = HTTPClientResponse.Body

import UniKit

/// `uni run --attach`: create, subscribe to the console and to the exit,
/// then start, so no output and no exit is missed however fast the guest is.
public enum AttachedRun {
    /// Runs `config` attached, handing console bytes to `output`.
    /// - Returns: the VM's exit code.
    /// - Throws: the daemon's ``UniError``; a VM whose start was refused is removed.
    public static func run(client: UniClient, config: VMConfig, output: @Sendable ([UInt8]) -> Void) async throws -> Int32 {
        let vm = try await client.create(config, start: false)
        let reference = vm.id.rawValue
        let console: HTTPClientResponseBody
        do {
            console = try await client.logs(reference, follow: true)
        } catch {
            try? await client.remove(reference, force: true)
            throw error
        }
        async let final = client.wait(reference)
        do {
            _ = try await client.start(reference)
        } catch {
            try? await client.remove(reference, force: true)
            throw error
        }
        for try await chunk in console { output(Array(chunk.readableBytesView)) }
        return try await final.exitCode ?? 0
    }
}
