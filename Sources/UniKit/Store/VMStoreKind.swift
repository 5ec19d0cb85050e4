import Foundation
import Logging

/// Where `unid` keeps VM records: `--vm-store file|sqlite`.
public enum VMStoreKind: String, Sendable, CaseIterable {
    /// One `<data-dir>/vms/<id>/state.json` per VM (``FileVMStore``); the default.
    case file
    /// One SQLite database, `<data-dir>/vms/vms.db` (``SQLiteVMStore``).
    case sqlite

    /// Opens the store of this kind over `dataDirectory`, first taking over
    /// the records the other kind left there, so a switch of `--vm-store`
    /// loses nothing and never shows stale records:
    /// - `sqlite` imports every `state.json` in one transaction and renames
    ///   it `state.json.migrated` (``SQLiteVMStore/importFileRecords(from:)``);
    /// - `file` finding a `vms.db` writes its records back as `state.json`
    ///   files and renames it `vms.db.exported-<UTC time>`
    ///   (``SQLiteVMStore/exportRecords(of:now:)``).
    ///
    /// Call it holding the data dir's ``DaemonLock``. Files that cannot be
    /// read are logged as warnings and left as they are.
    /// - Throws: ``UniError``: the data dir cannot be prepared, the database
    ///   is corrupt, newer or cannot be written, or the import or export
    ///   failed (which then changed nothing).
    public func open(dataDirectory: DataDirectory, logger: Logger) async throws -> any VMStore {
        try dataDirectory.prepare()
        switch self {
        case .file:
            if FileManager.default.fileExists(atPath: dataDirectory.databasePath) {
                let report = try await SQLiteVMStore.exportRecords(of: dataDirectory)
                logger.notice("moved the vm records of the sqlite store back to state.json files", metadata: [
                    "vms": .stringConvertible(report.exported.count), "database_backup": "\(report.databaseBackupPath)",
                ])
                warn(report.problems, logger: logger)
            }
            return FileVMStore(dataDirectory: dataDirectory)
        case .sqlite:
            var store = try SQLiteVMStore(path: dataDirectory.databasePath)
            let report = try await store.importFileRecords(from: dataDirectory)
            store.unimportedFiles = report.unreadable
            if !report.imported.isEmpty || !report.skipped.isEmpty {
                logger.notice("imported state.json vm records into the sqlite store", metadata: [
                    "imported": .stringConvertible(report.imported.count), "skipped": .stringConvertible(report.skipped.count), "database": "\(store.path)",
                ])
            }
            warn(report.problems, logger: logger)
            return store
        }
    }

    private func warn(_ problems: [String], logger: Logger) {
        for problem in problems {
            logger.warning("vm record not moved between stores", metadata: [LogKeys.error: "\(problem)"])
        }
    }
}
