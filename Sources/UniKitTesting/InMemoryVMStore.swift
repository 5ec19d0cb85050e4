import Synchronization
import UniKit

/// A ``VMStore`` in memory, for tests and embedders that need no durability.
/// It records every write, and can be made to fail or to suspend on demand,
/// so races and full disks are tested without timing luck.
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

    /// A write that ``InMemoryVMStore`` holds until its point is released.
    private struct Hold: Sendable {
        let matches: @Sendable (Write?) -> Bool
        /// The VM it holds; `nil`: any.
        let id: VMID?
        let point: SuspensionPoint
    }

    private struct State {
        var records: [VMID: VM]
        var failure: (error: UniError, matches: @Sendable (Write?) -> Bool)?
        var holds: [Hold] = []
        var log: [Write] = []
        var deletes: [VMID] = []
    }
    private let state: Mutex<State>

    /// A store holding `vms`.
    public init(_ vms: [VM] = []) {
        state = Mutex(State(records: Dictionary(uniqueKeysWithValues: vms.map { ($0.id, $0) })))
    }

    /// Every record currently stored.
    public var vms: [VM] { state.withLock { Array($0.records.values) } }

    /// The stored record of `id`.
    public func record(_ id: VMID) -> VM? { state.withLock { $0.records[id] } }

    /// Every save so far, oldest first.
    public var writes: [Write] { state.withLock { $0.log } }

    /// Every delete so far, oldest first.
    public var deletes: [VMID] { state.withLock { $0.deletes } }

    /// Makes every following `save` and `delete` throw `error` (`nil` heals the store).
    public func failWrites(with error: UniError?) {
        state.withLock { $0.failure = error.map { ($0, { _ in true }) } }
    }

    /// Makes the following saves for which `matches` is true throw `error`,
    /// as a full disk would; deletes go through. ``failWrites(with:)`` with `nil` heals it.
    public func failSaves(with error: UniError, where matches: @escaping @Sendable (Write) -> Bool) {
        state.withLock { $0.failure = (error, { write in write.map(matches) ?? false }) }
    }

    /// Holds the next save for which `matches` is true (before it is
    /// stored) until the returned point is released.
    public func suspendNextSave(where matches: @escaping @Sendable (Write) -> Bool) -> SuspensionPoint {
        let point = SuspensionPoint()
        state.withLock { $0.holds.append(Hold(matches: { write in write.map(matches) ?? false }, id: nil, point: point)) }
        return point
    }

    /// Holds the next delete of `id` (before it happens) until the returned point is released.
    public func suspendNextDelete(of id: VMID) -> SuspensionPoint {
        let point = SuspensionPoint()
        state.withLock { $0.holds.append(Hold(matches: { $0 == nil }, id: id, point: point)) }
        return point
    }

    public func loadAll() async throws -> VMStoreSnapshot {
        VMStoreSnapshot(vms: vms)
    }

    public func save(_ vm: VM) async throws {
        try await write(vm, durable: true)
    }

    public func saveTransient(_ vm: VM) async throws {
        try await write(vm, durable: false)
    }

    public func delete(_ id: VMID) async throws {
        await holdIfAsked(id, nil)
        try state.withLock { state in
            if let failure = state.failure, failure.matches(nil) { throw failure.error }
            state.records[id] = nil
            state.deletes.append(id)
        }
    }

    private func write(_ vm: VM, durable: Bool) async throws {
        let write = Write(id: vm.id, state: vm.state, durable: durable)
        await holdIfAsked(vm.id, write)
        try state.withLock { state in
            if let failure = state.failure, failure.matches(write) { throw failure.error }
            state.records[vm.id] = vm
            state.log.append(write)
        }
    }

    /// `write` is `nil` for a delete.
    private func holdIfAsked(_ id: VMID, _ write: Write?) async {
        let hold = state.withLock { state -> Hold? in
            guard let index = state.holds.firstIndex(where: { ($0.id == nil || $0.id == id) && $0.matches(write) }) else { return nil }
            return state.holds.remove(at: index)
        }
        await hold?.point.suspend()
    }
}
