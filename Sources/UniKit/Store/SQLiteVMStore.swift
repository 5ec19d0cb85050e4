import Foundation
import GRDB
import Synchronization

/// Stores VM records in one SQLite database, `<data-dir>/vms/vms.db`
/// (`unid --vm-store sqlite`), through GRDB.
///
/// One row per VM in table `vm`: columns for what one queries with the
/// `sqlite3` shell (state, name, timestamps, ...) and `record`, the VM's
/// JSON exactly as `state.json` holds it. `record` is the source of truth:
/// ``loadAll()`` reads only it, so a field added to ``VM`` is kept by both
/// stores with no schema change. The schema is documented in
/// docs/architecture.md ("The SQLite store").
///
/// **Durability.** The database runs in WAL mode. ``save(_:)`` and
/// ``delete(_:)`` commit with `synchronous = FULL`: the WAL is fsynced at
/// each commit, so the write survives a power failure. ``saveTransient(_:)``
/// commits with `synchronous = NORMAL`: the WAL is written but not fsynced,
/// so the write survives a crash of the process (the next one reads the
/// WAL) and may be lost with the machine. SQLite changes the level only
/// outside a transaction ("Safety level may not be changed inside a
/// transaction"), so each write sets its own level before it begins, inside
/// the one write access GRDB serialises it in: concurrent writes never
/// commit at another write's level.
///
/// **Refusals.** Opening checks the file (`PRAGMA quick_check`) and its
/// schema version (`PRAGMA user_version`): a corrupt database or one
/// written by a newer `unid` stops the daemon with a message, and is never
/// recreated or migrated over.
public struct SQLiteVMStore: VMStore {
    /// The database schema this build writes and reads, kept in
    /// `PRAGMA user_version`; each migration that changes the schema bumps it.
    public static let schemaVersion = 1

    /// Where the database lives, for messages (`:memory:` for an in-memory one).
    public let path: String
    let writer: any DatabaseWriter
    let now: @Sendable () -> Date
    /// `state.json` files the import at start could not read
    /// (``FileImportReport/unreadable``): they stay in their folders, and
    /// ``loadAll()`` reports them with the rows it cannot read, so
    /// `uni ps -a` shows them under either store.
    public var unimportedFiles: [UnreadableRecord] = []

    /// Opens the database at `path`, creating it when missing, and brings
    /// its schema up to date.
    /// - Parameter now: the clock of the `updated_at` column.
    /// - Throws: ``UniError`` (`storeFailed`): the file is corrupt (with a
    ///   hint), was written by a newer `unid`, or cannot be opened or written.
    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) throws {
        try self.init(writer: SQLiteVMStore.openQueue(path: path), now: now)
    }

    /// One connection to the database at `path`, in WAL mode.
    static func openQueue(path: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.journalMode = .wal
        // One unid per data dir (its lock), but a `sqlite3` shell may hold
        // the database for a moment.
        configuration.busyMode = .timeout(5)
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw SQLiteVMStore.failure(error, path: path, doing: "open vm database")
        }
    }

    /// A store over an opened database (tests pass an in-memory
    /// `DatabaseQueue()`): checks it and brings its schema up to date.
    /// - Throws: ``UniError`` (`storeFailed`), as ``init(path:now:)``.
    public init(writer: any DatabaseWriter, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.writer = writer
        self.path = writer.path
        self.now = now
        do {
            try writer.writeWithoutTransaction { db in
                // GRDB sets NORMAL with WAL; the migrations below are durable.
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try SQLiteVMStore.checkIntegrity(db, path: writer.path)
                try SQLiteVMStore.checkVersion(db, path: writer.path)
            }
            try SQLiteVMStore.migrator.migrate(writer)
            // Takes the write lock once: a file or folder that cannot be
            // written fails here, at start, rather than at the first VM.
            try writer.writeWithoutTransaction { db in try db.inTransaction(.immediate) { .commit } }
        } catch {
            throw SQLiteVMStore.failure(error, path: writer.path, doing: "open vm database")
        }
    }

    /// Every row's `record`, decoded; a record that cannot be decoded (or
    /// holds another id than its row) is reported and left in its row.
    ///
    /// Decoding the JSON is most of the cost (~10 us a record with
    /// ``RecordDecoder``, against ~1 us to read a row), so the rows are
    /// decoded in slices on every core: four per core, so that a core
    /// taken away for a moment does not hold the rest back
    /// (docs/performance.md, "VM stores").
    public func loadAll() async throws -> VMStoreSnapshot {
        let rows = try await records()
        // Dispatch's workers, not a task group: the decoding is CPU work
        // for every core, whatever else the cooperative pool is running.
        let path = path
        let slices = max(1, min(4 * ProcessInfo.processInfo.activeProcessorCount, rows.count / 256))
        let size = (rows.count + slices - 1) / slices
        let parts = Mutex([VMStoreSnapshot](repeating: VMStoreSnapshot(vms: []), count: slices))
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            var part = VMStoreSnapshot(vms: [])
            let decoder = RecordDecoder()
            for (id, record) in rows[min(rows.count, slice * size)..<min(rows.count, (slice + 1) * size)] {
                part.add(record: record, storedID: id, path: path, rowID: id, decoder: decoder)
            }
            parts.withLock { $0[slice] = part }
        }
        return parts.withLock { parts in
            var snapshot = VMStoreSnapshot(vms: [], problems: unimportedFiles)
            snapshot.vms.reserveCapacity(rows.count)
            for part in parts {
                snapshot.vms += part.vms
                snapshot.problems += part.problems
            }
            return snapshot
        }
    }

    /// Every row's id and `record` (its bytes, undecoded), by id.
    func records() async throws -> [(id: String, record: Data)] {
        do {
            return try await writer.read { db in
                try Row.fetchCursor(db, VMRow.select(VMRow.Columns.id, VMRow.Columns.record).order(VMRow.Columns.id))
                    .map { row in (id: row[0] as String, record: row[1] as Data) }
                    .reduce(into: []) { $0.append($1) }
            }
        } catch {
            throw failure(error, doing: "read the vm records of")
        }
    }

    /// Inserts or replaces the row of `vm`, committed at `synchronous = FULL`.
    /// - Throws: ``UniError``: `conflict` when another row holds its name,
    ///   `storeFailed` when the database refuses the write.
    public func save(_ vm: VM) async throws {
        try await upsert(vm, durable: true)
    }

    /// Commits with `synchronous = NORMAL`: no fsync; see the type's "Durability".
    public func saveTransient(_ vm: VM) async throws {
        try await upsert(vm, durable: false)
    }

    /// Deletes the row of `id`, committed at `synchronous = FULL`.
    public func delete(_ id: VMID) async throws {
        do {
            try await transaction(durable: true) { db in
                _ = try VMRow.deleteOne(db, key: id.rawValue)
            }
        } catch {
            throw failure(error, doing: "delete vm \(id) from")
        }
    }

    private func upsert(_ vm: VM, durable: Bool) async throws {
        // Encoded before the write access: other writes need not wait for JSON.
        let row = try VMRow(vm, updatedAt: now())
        do {
            try await transaction(durable: durable) { db in try row.upsert(db) }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            let holder = (try? await writer.read { db in try row.nameHolder(db) }) ?? "?"
            throw UniError(.conflict, "the name '\(vm.name)' is already used by vm \(holder) in '\(path)'", cause: error)
        } catch {
            throw failure(error, doing: "save vm \(vm.name) in")
        }
    }

    /// Runs `body` in one transaction, committed at the durability asked
    /// for: `synchronous = FULL` (fsync of the WAL) or `NORMAL` (none).
    func transaction<T: Sendable>(durable: Bool, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.writeWithoutTransaction { db in
            try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            guard let result else { throw UniError(.internalError, "a transaction on \(path) ended without a result") }
            return result
        }
    }

    /// `error` as a one-line ``UniError`` saying what could not be done.
    func failure(_ error: any Error, doing what: String) -> UniError {
        SQLiteVMStore.failure(error, path: path, doing: what)
    }
}

// MARK: - Checks at open

extension SQLiteVMStore {
    /// The one message of a corrupt database: unid never recreates it.
    static func corruption(path: String, detail: String) -> UniError {
        UniError(.storeFailed, "vm database '\(path)' is corrupt (\(detail)); unid does not recreate it: restore it from a backup, "
                 + "or move it aside and start with --vm-store file, renaming each vms/<id>/state.json\(migratedSuffix) back to state.json to recover the records as they were imported")
    }

    /// `error` on the database at `path` as a one-line ``UniError``:
    /// ``UniError``s pass through, corruption gets its hint, anything else
    /// is `cannot <what> '<path>': <SQLite's words>`.
    static func failure(_ error: any Error, path: String, doing what: String) -> UniError {
        if let error = error as? UniError { return error }
        if let error = error as? DatabaseError, error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB {
            return corruption(path: path, detail: error.message ?? "\(error.resultCode)")
        }
        return UniError(.storeFailed, "cannot \(what) '\(path)': \(describe(error))", cause: error)
    }

    /// SQLite's own words for `error` (`unable to open database file`), without GRDB's SQL echo.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DatabaseError else { return "\(error)" }
        return error.message ?? "SQLite error \(error.extendedResultCode.rawValue)"
    }

    /// `PRAGMA quick_check`: every page and record readable (not the
    /// index/table agreement a full `integrity_check` also reads).
    static func checkIntegrity(_ db: Database, path: String) throws {
        let findings = try String.fetchAll(db, sql: "PRAGMA quick_check")
        guard findings != ["ok"] else { return }
        throw corruption(path: path, detail: findings.prefix(3).joined(separator: "; "))
    }

    /// Refuses a database whose schema is newer than this build's: one
    /// written by a newer `unid` would be misread, or migrated over.
    static func checkVersion(_ db: Database, path: String) throws {
        let found = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if found > schemaVersion {
            throw UniError(.storeFailed, "vm database '\(path)' has schema version \(found), newer than this unid understands (\(schemaVersion)): run the newer unid that wrote it")
        }
        if try migrator.hasBeenSuperseded(db) {
            let unknown = try migrator.appliedIdentifiers(db).subtracting(migrator.migrations).sorted()
            throw UniError(.storeFailed, "vm database '\(path)' was migrated by a newer unid (migrations \(unknown.joined(separator: ", ")); this unid understands schema version \(schemaVersion)): run the newer unid that wrote it")
        }
    }
}
