import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Stores each VM as `<data-dir>/vms/<id>/state.json`.
///
/// Writes are atomic: a temporary file in the same folder is written,
/// fsynced and renamed over the record, then the folder is fsynced, so a
/// crash leaves either the old record or the new one, never half of one.
/// ``saveTransient(_:)`` writes and renames the same way but skips both
/// fsyncs: a daemon that crashes still reads the record (the page cache
/// outlives the process), and the durable save that follows covers a power loss.
public struct FileVMStore: VMStore {
    /// The data dir whose `vms/` folder holds the records.
    public let dataDirectory: DataDirectory

    /// A store over `dataDirectory`.
    public init(dataDirectory: DataDirectory) {
        self.dataDirectory = dataDirectory
    }

    /// The record file of `id`.
    public func recordPath(_ id: VMID) -> String { dataDirectory.files(of: id).recordPath }

    public func loadAll() async throws -> VMStoreSnapshot {
        try load(reportingMissing: true)
    }

    /// Reads every `<id>/state.json`.
    /// - Parameter reportingMissing: whether a VM folder without a record
    ///   is a problem (it is for this store; under ``SQLiteVMStore`` every
    ///   imported folder lacks one).
    func load(reportingMissing: Bool) throws -> VMStoreSnapshot {
        let folder = dataDirectory.vmsDirectory
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch CocoaError.fileReadNoSuchFile {
            return VMStoreSnapshot(vms: [])
        } catch {
            throw UniError(.storeFailed, "cannot list '\(folder)': \(error.localizedDescription)", cause: error)
        }
        var snapshot = VMStoreSnapshot(vms: [])
        let decoder = RecordDecoder()
        for entry in entries.sorted() {
            // Only `<id>/state.json` is read: temporary files of an
            // interrupted write (`state.json.tmp.*`), the SQLite store's
            // `vms.db` and migrated records (`state.json.migrated`) are
            // never taken for records.
            guard VMID.isWellFormed(entry) else { continue }
            let path = VMDirectory(path: folder + "/" + entry).recordPath
            guard let data = FileManager.default.contents(atPath: path) else {
                if reportingMissing || FileManager.default.fileExists(atPath: path) {
                    snapshot.problems.append(UnreadableRecord(id: try? VMID(entry), path: path, reason: missingRecordReason(path)))
                }
                continue
            }
            snapshot.add(record: data, storedID: entry, path: path, decoder: decoder)
        }
        return snapshot
    }

    /// Why the folder of `path` has no readable record, in one line.
    private func missingRecordReason(_ path: String) -> String {
        let migrated = path + SQLiteVMStore.migratedSuffix
        guard FileManager.default.fileExists(atPath: migrated) else {
            return "missing or unreadable"
        }
        return "missing; \((migrated as NSString).lastPathComponent) holds the record as it was imported into \(dataDirectory.databasePath) (docs/architecture.md, \"Going back to files\")"
    }

    public func save(_ vm: VM) async throws {
        try writeRecord(vm, sync: true)
    }

    public func saveTransient(_ vm: VM) async throws {
        try writeRecord(vm, sync: false)
    }

    private func writeRecord(_ vm: VM, sync: Bool) throws {
        let folder = dataDirectory.vmDirectory(vm.id)
        let path = recordPath(vm.id)
        do {
            try FileVMStore.makeFolder(folder)
            let data = try JSONCoding.makeEncoder(pretty: true).encode(vm)
            try FileVMStore.writeAtomically(data, to: path, sync: sync)
        } catch let error as UniError {
            throw error
        } catch {
            throw UniError(.storeFailed, "cannot write '\(path)': \(error.localizedDescription)", cause: error)
        }
    }

    /// Deletes the record of `id`, and any temporary file a crashed write
    /// left next to it, so the folder can be removed.
    public func delete(_ id: VMID) async throws {
        let path = recordPath(id)
        FileVMStore.removeTemporaries(of: path)
        guard FileManager.default.fileExists(atPath: path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw UniError(.storeFailed, "cannot delete '\(path)': \(error.localizedDescription)", cause: error)
        }
    }

    /// Creates `path` (mode 0700) and any missing parent; an existing folder is fine.
    /// One `mkdir(2)` in the common case: this is on the way to every VM's boot.
    static func makeFolder(_ path: String) throws {
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Removes the folder at `path` and everything in it; a folder that is
    /// already gone is fine.
    ///
    /// Unlike `FileManager.removeItem`, an entry that vanishes meanwhile
    /// (a FIFO its reader removes, say) is not an error, and one that
    /// appears meanwhile is removed by another pass instead of leaving
    /// the folder behind.
    /// - Throws: ``UniError`` (`storeFailed`) naming the entry that could not be removed.
    static func removeFolder(_ path: String) throws {
        for _ in 0..<3 {
            guard let folder = opendir(path) else {
                if errno == ENOENT { return }
                throw UniError(.storeFailed, "cannot remove '\(path)': \(String(cString: strerror(errno)))")
            }
            var names: [String] = []
            while let entry = readdir(folder) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(folder)
            for name in names {
                let entry = path + "/" + name
                var status = stat()
                if lstat(entry, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR {
                    try removeFolder(entry)
                } else if unlink(entry) != 0, errno != ENOENT {
                    throw UniError(.storeFailed, "cannot remove '\(entry)': \(String(cString: strerror(errno)))")
                }
            }
            if rmdir(path) == 0 || errno == ENOENT { return }
            guard errno == ENOTEMPTY else {
                throw UniError(.storeFailed, "cannot remove '\(path)': \(String(cString: strerror(errno)))")
            }
        }
        throw UniError(.storeFailed, "cannot remove '\(path)': files keep appearing in it")
    }

    /// Writes `data` to `path` through a temporary file and a rename; with
    /// `sync`, the file is fsynced before the rename and the folder after it.
    ///
    /// Each call writes its own temporary file (``temporaryPrefix(of:)``
    /// plus pid and counter, created with `O_EXCL`), so concurrent writers
    /// of one path never share one: the last rename wins whole.
    static func writeAtomically(_ data: Data, to path: String, sync: Bool = true) throws {
        let (temporary, fd) = try createTemporary(for: path)
        var failure = data.withUnsafeBytes { POSIXIO.writeAll(fd, $0) }.map { String(cString: strerror($0)) }
        if failure == nil, sync, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if let failure {
            unlink(temporary)
            throw UniError(.storeFailed, "cannot write '\(temporary)': \(failure)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw UniError(.storeFailed, "cannot rename '\(temporary)' to '\(path)': \(reason)")
        }
        guard sync else { return }
        syncFolder((path as NSString).deletingLastPathComponent)
    }

    /// Fsyncs the folder at `path`, so the renames and unlinks in it are
    /// durable; best effort.
    static func syncFolder(_ path: String) {
        let folder = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
    }

    /// What every temporary file of `path` starts with: `state.json.tmp.`.
    static func temporaryPrefix(of path: String) -> String { path + ".tmp." }

    private static let temporaryCounter = Atomic<UInt64>(0)

    /// Creates a new temporary file next to `path`; a name left by a crashed
    /// process with the same pid is skipped, not reused.
    private static func createTemporary(for path: String) throws -> (path: String, descriptor: Int32) {
        while true {
            let number = temporaryCounter.wrappingAdd(1, ordering: .relaxed).oldValue
            let temporary = temporaryPrefix(of: path) + "\(getpid()).\(number)"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { return (temporary, fd) }
            if errno == EEXIST || errno == EINTR { continue }
            throw UniError(.storeFailed, "cannot write '\(temporary)': \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the temporary files a crash left next to `path`; best effort.
    static func removeTemporaries(of path: String) {
        let folder = (path as NSString).deletingLastPathComponent
        let prefix = (temporaryPrefix(of: path) as NSString).lastPathComponent
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for entry in entries where entry.hasPrefix(prefix) { unlink(folder + "/" + entry) }
    }
}
