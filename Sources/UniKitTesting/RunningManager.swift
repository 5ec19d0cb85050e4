import Logging
import UniKit

extension VMManager {
    /// Runs `body` while the manager's service loop runs, then shuts it down
    /// (stopping its VMs) before returning.
    public func withRunning<Result: Sendable>(_ body: @Sendable (VMManager) async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            // The body starts once exits are watched, as in a daemon that is ready.
            while await !isSupervising { await Task.yield() }
            do {
                let result = try await body(self)
                group.cancelAll()
                try? await group.waitForAll()
                return result
            } catch {
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}
