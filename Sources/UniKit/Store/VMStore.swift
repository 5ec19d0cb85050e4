/// Where VM records live. `VMManager` is its only writer.
///
/// Implementations are named for their mechanism: ``FileVMStore`` (one
/// `state.json` per VM) in UniKit, `InMemoryVMStore` in UniKitTesting.
public protocol VMStore: Sendable {
    /// Every readable record. Records that cannot be read are reported in
    /// ``VMStoreSnapshot/problems`` and left untouched on disk.
    func loadAll() async throws -> VMStoreSnapshot
    /// Writes `vm` durably (replacing any record with its id).
    func save(_ vm: VM) async throws
    /// Writes `vm` so that a restarted daemon reads it, without waiting for
    /// the disk: for a transient state (`starting`) that no caller is told
    /// about and that a durable ``save(_:)`` always follows. The default
    /// implementation saves durably.
    func saveTransient(_ vm: VM) async throws
    /// Deletes the record of `id`; deleting a missing record succeeds.
    func delete(_ id: VMID) async throws
}

extension VMStore {
    /// Saves durably: a store without a cheaper write loses nothing.
    public func saveTransient(_ vm: VM) async throws {
        try await save(vm)
    }
}

/// What a store held at load time.
public struct VMStoreSnapshot: Sendable {
    /// The records that were read.
    public var vms: [VM]
    /// One line per record that could not be read, naming where and why.
    public var problems: [String]

    /// Creates a snapshot.
    public init(vms: [VM], problems: [String] = []) {
        self.vms = vms
        self.problems = problems
    }
}
