import Foundation
import GRDB

/// What one import of `state.json` files into the SQLite store did.
public struct FileImportReport: Sendable, Equatable {
    /// The VMs inserted into the database.
    public var imported: [VMID] = []
    /// The VMs whose id the database already held (an import interrupted
    /// before its renames): the database's record is kept.
    public var skipped: [VMID] = []
    /// One line per `state.json` that could not be read (left on disk as it
    /// is), or imported but not renamed (it is skipped next time).
    public var problems: [String] = []
    /// The `state.json` files that could not be read, typed: left in their
    /// folders, and shown beside the database's unreadable rows
    /// (``SQLiteVMStore/unimportedFiles``).
    public var unreadable: [UnreadableRecord] = []

    /// Creates an empty report.
    public init() {}
}

extension SQLiteVMStore {
    /// Imports every `<data-dir>/vms/<id>/state.json` of `dataDirectory`,
    /// all in one transaction, then renames each to `state.json.migrated`.
    ///
    /// - Idempotent: a record whose id the database holds is skipped (the
    ///   database is newer), and each import that found files is recorded
    ///   in table `file_import`. After the renames a second run finds nothing.
    /// - All or nothing: when one insert fails (a name two records share,
    ///   a full disk), the transaction rolls back and no file is renamed.
    /// - A `state.json` that cannot be read is reported and left as it is;
    ///   the others are imported.
    ///
    /// A crash between the commit and the renames leaves files that the next
    /// run skips and renames; the renames are not fsynced for the same reason.
    /// - Throws: ``UniError`` (`storeFailed`) saying why, and that nothing was imported.
    public func importFileRecords(from dataDirectory: DataDirectory) async throws -> FileImportReport {
        let files = FileVMStore(dataDirectory: dataDirectory)
        let snapshot = try files.load(reportingMissing: false)
        var report = FileImportReport()
        report.problems = snapshot.problems.map(\.description)
        report.unreadable = snapshot.problems
        guard !snapshot.vms.isEmpty else { return report }
        let importedAt = now()
        let rows = try snapshot.vms.map { try VMRow($0, updatedAt: importedAt) }
        let recordPath = files.recordPath
        let path = path
        do {
            (report.imported, report.skipped) = try await transaction(durable: true) { db in
                var imported: [VMID] = [], skipped: [VMID] = []
                for (row, vm) in zip(rows, snapshot.vms) {
                    if try VMRow.exists(db, key: row.id) {
                        skipped.append(vm.id)
                        continue
                    }
                    do {
                        try row.insert(db)
                    } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                        let holder = try row.nameHolder(db)
                        throw UniError(.conflict, "vms \(holder) and \(vm.id) (\(recordPath(vm.id))) share the name '\(vm.name)', which the database keeps unique: "
                                       + "start with --vm-store file and remove one (uni rm <id>)", cause: error)
                    }
                    imported.append(vm.id)
                }
                try db.execute(sql: "INSERT INTO file_import (imported_at, imported, skipped) VALUES (?, ?, ?)",
                               arguments: [RFC3339.string(from: importedAt), imported.count, skipped.count])
                return (imported, skipped)
            }
        } catch {
            let reason = (error as? UniError)?.message ?? SQLiteVMStore.describe(error)
            throw UniError(.storeFailed, "cannot import the state.json records into '\(path)': \(reason); nothing was imported and every state.json is left as it was", cause: error)
        }
        for id in report.imported + report.skipped {
            let source = recordPath(id)
            if rename(source, source + SQLiteVMStore.migratedSuffix) != 0 {
                report.problems.append("\(source): imported but not renamed to state.json\(SQLiteVMStore.migratedSuffix) (\(String(cString: strerror(errno)))); the next start skips it")
            }
        }
        return report
    }
}
