import CUniSystem
import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// What moving the records of `vms.db` back to `state.json` files did.
public struct FileExportReport: Sendable, Equatable {
    /// The VMs written as `state.json`.
    public var exported: [VMID] = []
    /// One line per row that was not written (its id is not a VM id); it
    /// stays in the renamed database.
    public var problems: [String] = []
    /// Where the database was renamed to (`vms.db.exported-<UTC time>`).
    public var databaseBackupPath = ""

    /// Creates an empty report.
    public init() {}
}

extension SQLiteVMStore {
    /// Moves the records of `<data-dir>/vms/vms.db` back to one
    /// `state.json` per VM, for `unid --vm-store file` after `sqlite`.
    ///
    /// Each row's `record` is written as it is stored, byte for byte, so a
    /// record this build cannot read moves too (the file store then reports
    /// it). The files are flushed (`syncfs`) before the database is renamed
    /// `vms.db.exported-<UTC time>` (kept, never deleted): a crash before
    /// the rename leaves the database in place, and the next start of
    /// either store takes it as the truth again.
    /// - Parameter now: the clock of the backup's name.
    /// - Throws: ``UniError`` (`storeFailed`): the database is corrupt or
    ///   newer (the same refusals as ``init(path:now:)``), or a file
    ///   cannot be written; the database is then left in place.
    public static func exportRecords(of dataDirectory: DataDirectory, now: Date = Date()) async throws -> FileExportReport {
        let path = dataDirectory.databasePath
        let queue = try openQueue(path: path)
        let store = try SQLiteVMStore(writer: queue)
        var report = FileExportReport()
        let rows = try await store.records()
        for (id, record) in rows {
            guard let vmID = try? VMID(id) else {
                report.problems.append("\(path) vm '\(id)': not a vm id; left in the database")
                continue
            }
            let folder = dataDirectory.vmDirectory(vmID)
            try FileVMStore.makeFolder(folder)
            try FileVMStore.writeAtomically(record, to: dataDirectory.files(of: vmID).recordPath, sync: false)
            report.exported.append(vmID)
        }
        // One flush of the filesystem rather than an fsync per file.
        let vms = open(dataDirectory.vmsDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let flushed = vms >= 0 && cuni_syncfs(vms) == 0
        let reason = String(cString: strerror(errno))
        if vms >= 0 { close(vms) }
        guard flushed else {
            throw UniError(.storeFailed, "cannot flush the state.json files written from '\(path)': \(reason); the database is left in place")
        }
        do {
            // Rollback journal mode folds the WAL into the file and removes it,
            // so the renamed database is whole on its own.
            try await queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            try queue.close()
        } catch {
            throw store.failure(error, doing: "close")
        }
        let stamp = RFC3339.string(from: now).filter { $0 != "-" && $0 != ":" }.replacingOccurrences(of: #"\.\d+"#, with: "", options: .regularExpression)
        report.databaseBackupPath = path + ".exported-" + stamp
        guard rename(path, report.databaseBackupPath) == 0 else {
            throw UniError(.storeFailed, "cannot rename '\(path)' to '\(report.databaseBackupPath)': \(String(cString: strerror(errno))); its records are also in state.json files now")
        }
        FileVMStore.syncFolder(dataDirectory.vmsDirectory)
        return report
    }
}
