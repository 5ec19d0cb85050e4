import Synchronization
import UniKit

/// A ``VMStore`` in memory, for tests and embedders that need no durability.
/// It records every write, so a test can check what was saved and how.
public final class InMemoryVMStore: VMStore {
    /// One save: the record's id and state, and whether it was asked to be durable.
    public struct Write: Sendable, Hashable {
        /// The VM saved.
        public let id: VMID
        /// Its state in that save.
        public let state: VMState
        /// `false` for ``VMStore/saveTransient(_:)``.
        public let durable: Bool

        /// A write, to compare with ``InMemoryVMStore/writes``.
        public init(id: VMID, state: VMState, durable: Bool) {
            self.id = id
            self.state = state
            self.durable = durable
        }
    }

    private let records: Mutex<[VMID: VM]>
    private let failure: Mutex<UniError?>
    private let log = Mutex<[Write]>([])

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

    /// Every save so far, oldest first.
    public var writes: [Write] { log.withLock { $0 } }

    public func save(_ vm: VM) async throws {
        try write(vm, durable: true)
    }

    public func saveTransient(_ vm: VM) async throws {
        try write(vm, durable: false)
    }

    private func write(_ vm: VM, durable: Bool) throws {
        if let error = failure.withLock({ $0 }) { throw error }
        records.withLock { $0[vm.id] = vm }
        log.withLock { $0.append(Write(id: vm.id, state: vm.state, durable: durable)) }
    }

    public func delete(_ id: VMID) async throws {
        if let error = failure.withLock({ $0 }) { throw error }
        _ = records.withLock { $0.removeValue(forKey: id) }
    }
}
