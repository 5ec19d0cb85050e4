import Synchronization
import UniKit

/// A ``VMStore`` in memory, for tests and embedders that need no durability.
public final class InMemoryVMStore: VMStore {
    private let records: Mutex<[VMID: VM]>
    private let failure: Mutex<UniError?>

    /// A store holding `vms`.
    public init(_ vms: [VM] = []) {
        records = Mutex(Dictionary(uniqueKeysWithValues: vms.map { ($0.id, $0) }))
        failure = Mutex(nil)
    }

    /// Every record currently stored.
    public var vms: [VM] { records.withLock { Array($0.values) } }

    /// Makes every following `save` and `delete` throw `error` (`nil` heals the store).
    public func failWrites(with error: UniError?) { failure.withLock { $0 = error } }

    public func loadAll() async throws -> VMStoreSnapshot {
        VMStoreSnapshot(vms: records.withLock { Array($0.values) })
    }

    public func save(_ vm: VM) async throws {
        if let error = failure.withLock({ $0 }) { throw error }
        records.withLock { $0[vm.id] = vm }
    }

    public func delete(_ id: VMID) async throws {
        if let error = failure.withLock({ $0 }) { throw error }
        _ = records.withLock { $0.removeValue(forKey: id) }
    }
}
