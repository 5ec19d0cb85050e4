import Logging

extension VMManager {
    /// Runs `body` while the manager's service loop (``run()``) runs, then
    /// shuts the manager down before returning: every VM still running is
    /// stopped (a graceful stop, then a kill after the stop timeout) and its
    /// exit recorded, whether `body` returned or threw.
    ///
    /// `body` starts once exits are watched, as in a daemon that is ready,
    /// so no exit of a VM it runs is missed. Call ``load()`` first. For a
    /// program that runs other services too, put the manager in a
    /// `ServiceGroup` instead: it is a `Service`, and a graceful shutdown of
    /// the group stops its VMs the same way.
    /// - Parameter body: what to do with the running manager.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws, after the shutdown.
    public func withRunning<Result: Sendable>(_ body: @Sendable (VMManager) async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
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
