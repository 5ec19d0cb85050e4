import Foundation

/// The VMs a manager knows: the current records by id, how a reference
/// finds one, the names taken, and a short history of removed records.
///
/// A plain value with no I/O, so every rule of naming and lookup is unit-tested
/// on its own; ``VMManager`` owns one and is its only writer.
struct VMTable: Sendable {
    private(set) var records: [VMID: VM] = [:]
    /// Names held by a create whose record is not in ``records`` yet (a
    /// durable create writes before the VM becomes visible).
    private var reservedNames: [String: VMID] = [:]
    private var removed: [VMID: VM] = [:]
    /// The records the store could not read at load: not VMs, but their
    /// ids stay taken and references to them get a message naming the file.
    private(set) var unreadable: [UnreadableRecord] = []
    private var removedOrder: [VMID] = []
    /// How many removed records are kept for `wait`.
    let removedRecordsKept: Int

    init(removedRecordsKept: Int) {
        self.removedRecordsKept = removedRecordsKept
    }

    subscript(id: VMID) -> VM? { records[id] }

    /// Every current record.
    var all: [VM] { Array(records.values) }

    /// Whether `id` is taken by a current record.
    func contains(_ id: VMID) -> Bool { records[id] != nil }

    /// Whether `id` is the id of a record the store could not read: a new
    /// VM never gets it (its write would replace the record left on disk).
    func isUnreadable(_ id: VMID) -> Bool { unreadable.contains { $0.id == id } }

    /// Keeps the records the store could not read, sorted by id and place.
    mutating func setUnreadable(_ records: [UnreadableRecord]) {
        unreadable = records.sorted { ($0.id?.rawValue ?? "", $0.location) < ($1.id?.rawValue ?? "", $1.location) }
    }

    /// Puts `vm` in the table (new or replacing its earlier record).
    mutating func put(_ vm: VM) {
        records[vm.id] = vm
        if reservedNames[vm.name] == vm.id { reservedNames[vm.name] = nil }
    }

    /// Takes `id` out of the table and keeps its last record for ``removedRecord(_:)``.
    mutating func remove(_ id: VMID) {
        guard let vm = records.removeValue(forKey: id) else { return }
        removed[id] = vm
        removedOrder.append(id)
        if removedOrder.count > removedRecordsKept { removed[removedOrder.removeFirst()] = nil }
    }

    /// The final record of a VM removed lately, by full id.
    func removedRecord(_ id: VMID) -> VM? { records[id] == nil ? removed[id] : nil }

    /// Holds `name` for `id` until ``put(_:)`` or ``releaseName(_:)``.
    /// - Throws: ``UniError`` (`conflict`) naming the VM that has the name.
    mutating func reserveName(_ name: String, for id: VMID) throws {
        if let owner = records.values.first(where: { $0.name == name })?.id ?? reservedNames[name] {
            throw UniError(.conflict, "the name '\(name)' is already used by vm \(owner)")
        }
        reservedNames[name] = id
    }

    /// Gives back a name a failed create reserved.
    mutating func releaseName(_ name: String) { reservedNames[name] = nil }

    /// Names used by more than one record (records written by different
    /// daemons, or one that was unreadable while another took its name).
    var duplicateNames: [String: [VMID]] {
        Dictionary(grouping: records.values, by: \.name).filter { $0.value.count > 1 }.mapValues { $0.map(\.id).sorted() }
    }

    /// Finds the VM a reference names: a full id, a name, or a unique id prefix.
    /// - Throws: ``UniError``: `invalidArgument` for an empty or ambiguous
    ///   reference (a name two VMs share, a prefix of several ids),
    ///   `notFound` when nothing matches.
    func resolve(_ reference: String) throws -> VMID {
        try VMReference.check(reference)
        if let id = try? VMID(reference), records[id] != nil { return id }
        let named = records.values.filter { $0.name == reference }.map(\.id)
        if named.count == 1 { return named[0] }
        if named.count > 1 {
            throw UniError.invalid("vm name '\(reference)' is ambiguous: vms \(named.sorted().map(\.rawValue).joined(separator: ", ")) share it; use an id")
        }
        let lowered = reference.lowercased()
        if lowered.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            let matches = records.keys.filter { $0.rawValue.hasPrefix(lowered) }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw UniError.invalid("vm reference '\(reference)' is ambiguous: it matches \(matches.sorted().map(\.rawValue).joined(separator: ", "))")
            }
            let broken = unreadable.filter { $0.id?.rawValue.hasPrefix(lowered) == true }
            if broken.count == 1 { throw VMTable.refusal(broken[0]) }
        }
        throw UniError(.notFound, "no such vm: \(reference)")
    }
}

extension VMTable {
    /// Why an operation on an unreadable record is refused, and what a
    /// person can do: unid never changes or deletes a record it cannot read.
    static func refusal(_ record: UnreadableRecord) -> UniError {
        let id = record.id?.rawValue ?? record.rowID ?? "?"
        let removal: String
        if let rowID = record.rowID {
            removal = "sqlite3 '\(record.path)' \"DELETE FROM vm WHERE id = '\(rowID.escapingControlCharacters)'\""
        } else {
            removal = "rm -r '\((record.path as NSString).deletingLastPathComponent)'"
        }
        return UniError(.invalidState, "vm \(id) cannot be used: its record \(record.location) cannot be read (\(record.reason)); "
                        + "unid leaves it as it is: repair it or delete it by hand (\(removal)), then restart unid")
    }
}
