import Foundation

/// Where VM records live. `VMManager` is its only writer.
///
/// Implementations are named for their mechanism: ``FileVMStore`` (one
/// `state.json` per VM) and ``SQLiteVMStore`` (`vms/vms.db`) in UniKit,
/// `InMemoryVMStore` in UniKitTesting. `unid --vm-store` picks one
/// (``VMStoreKind``).
///
/// **Durability.** Both writes replace the whole record atomically: a
/// reader finds the old record or the new one, never a mix. They differ in
/// what they survive:
/// - ``save(_:)`` survives a power failure: it returns once the record is
///   on stable storage (fsync).
/// - ``saveTransient(_:)`` survives a crash of the daemon process (the
///   next daemon reads it) but may be lost on a power failure, which takes
///   the VM's process with it anyway. It skips the wait for the disk, for a
///   transient state (`starting`) that no caller is told about and that a
///   durable ``save(_:)`` always follows.
public protocol VMStore: Sendable {
    /// Every readable record. Records that cannot be read are reported in
    /// ``VMStoreSnapshot/problems`` and left untouched.
    func loadAll() async throws -> VMStoreSnapshot
    /// Writes `vm` so that it survives a power failure, replacing any record with its id.
    func save(_ vm: VM) async throws
    /// Writes `vm` so that it survives a crash of the daemon process but
    /// perhaps not a power failure; see the protocol's "Durability". The
    /// default implementation saves durably.
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
    /// The records that could not be read, each naming where and why; the
    /// store leaves them where they are.
    public var problems: [UnreadableRecord]

    /// Creates a snapshot.
    public init(vms: [VM], problems: [UnreadableRecord] = []) {
        self.vms = vms
        self.problems = problems
    }
}

extension VMStoreSnapshot {
    /// Decodes one stored record and adds it, or adds to ``problems`` why
    /// the record was skipped (it is left where it is): the one reading of
    /// a record both stores share.
    /// - Parameters:
    ///   - data: the record's JSON, as `state.json` holds it.
    ///   - storedID: the id the store files it under (folder name, row id);
    ///     a record holding another id is skipped.
    ///   - path: the file it was read from (`state.json`, `vms.db`).
    ///   - rowID: the row it was read from, for a database; `nil` for a file.
    mutating func add(record data: Data, storedID: String, path: String, rowID: String? = nil, decoder: RecordDecoder) {
        func skip(_ reason: String) {
            problems.append(UnreadableRecord(id: try? VMID(storedID), path: path, rowID: rowID, reason: reason))
        }
        do {
            let vm = try decoder.decode(VM.self, from: data)
            guard vm.id.rawValue == storedID else {
                skip("holds id \(vm.id) but is stored as \(storedID.escapingControlCharacters)")
                return
            }
            vms.append(vm)
        } catch let error as UniError {
            skip(error.message)
        } catch {
            skip("not a valid VM record (\(JSONCoding.describe(error)))")
        }
    }
}
