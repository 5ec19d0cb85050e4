import Foundation
import GRDB
import InMemoryLogging
import Logging
import Testing
@testable import UniKit
import UniKitTesting

@Suite("Moving records between the file and SQLite stores")
struct StoreMigrationTests {
    /// Writes `vms` as the state.json files of `dataDirectory`.
    func writeFiles(_ vms: [VM], to dataDirectory: DataDirectory) async throws {
        let files = FileVMStore(dataDirectory: dataDirectory)
        for vm in vms { try await files.save(vm) }
    }

    /// Every file under `vms/`, by path relative to it, with its bytes.
    func contents(of dataDirectory: DataDirectory) throws -> [String: Data] {
        var found: [String: Data] = [:]
        let root = dataDirectory.vmsDirectory
        for entry in FileManager.default.subpaths(atPath: root) ?? [] {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root + "/" + entry, isDirectory: &isFolder), !isFolder.boolValue else { continue }
            found[entry] = FileManager.default.contents(atPath: root + "/" + entry)
        }
        return found
    }

    func count(_ table: String, in store: SQLiteVMStore) async throws -> Int {
        try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") } ?? -1
    }

    func withDataDirectory(_ body: (DataDirectory) async throws -> Void) async throws {
        try await TemporaryDirectory.with { dir in
            let dataDirectory = DataDirectory(root: dir.path)
            try dataDirectory.prepare()
            try await body(dataDirectory)
        }
    }

    @Test("the import takes every state.json in one go and renames it; running it again duplicates nothing")
    func idempotent() async throws {
        try await withDataDirectory { dataDirectory in
            let vms = (0..<3).map { fullySetVM(name: "vm-\($0)") }.sorted { $0.id < $1.id }
            try await writeFiles(vms, to: dataDirectory)
            let written = try contents(of: dataDirectory)
            let store = try SQLiteVMStore(path: dataDirectory.databasePath)

            let first = try await store.importFileRecords(from: dataDirectory)
            #expect(first.imported == vms.map(\.id))
            #expect(first.skipped.isEmpty && first.problems.isEmpty)
            #expect(try await store.loadAll().vms == vms)
            for vm in vms {
                let record = dataDirectory.files(of: vm.id).recordPath
                #expect(!FileManager.default.fileExists(atPath: record))
                #expect(FileManager.default.contents(atPath: record + ".migrated") == written["\(vm.id)/state.json"])
            }
            #expect(try await count("file_import", in: store) == 1)

            let second = try await store.importFileRecords(from: dataDirectory)
            #expect(second == FileImportReport())
            #expect(try await count("vm", in: store) == 3)
            #expect(try await count("file_import", in: store) == 1)

            // A crash between the commit and the renames leaves a state.json
            // whose record the database holds, and has changed since.
            let record = dataDirectory.files(of: vms[1].id).recordPath
            #expect(rename(record + ".migrated", record) == 0)
            var changed = vms[1]
            changed.startCount += 1
            try await store.save(changed)
            let third = try await store.importFileRecords(from: dataDirectory)
            #expect(third.imported.isEmpty)
            #expect(third.skipped == [changed.id])
            #expect(try await store.loadAll().vms == [vms[0], changed, vms[2]])
            #expect(!FileManager.default.fileExists(atPath: record))
            #expect(try await count("vm", in: store) == 3)
            #expect(try store.writer.read { db in try Row.fetchAll(db, sql: "SELECT imported, skipped FROM file_import ORDER BY id") }
                        .map { [$0[0] as Int, $0[1] as Int] } == [[3, 0], [0, 1]])
        }
    }

    @Test("a failed import changes nothing: a name two records share rolls back every insert and renames no file")
    func failedImport() async throws {
        try await withDataDirectory { dataDirectory in
            func vm(_ id: String, _ name: String) throws -> VM {
                VM(id: try VMID(id), name: name, config: VMConfig(image: "/k"), imageKind: .kernel, createdAt: Date(timeIntervalSince1970: 1_790_000_000))
            }
            // Read in id order: "db" is inserted before the second "web" fails.
            let vms = [try vm("00000000000a", "db"), try vm("00000000000b", "web"), try vm("00000000000c", "web")]
            try await writeFiles(vms, to: dataDirectory)
            let before = try contents(of: dataDirectory)
            do {
                let store = try SQLiteVMStore(path: dataDirectory.databasePath)
                let error = await #expect(throws: UniError.self) { try await store.importFileRecords(from: dataDirectory) }
                #expect(error?.code == .storeFailed)
                #expect(error?.message == "cannot import the state.json records into '\(store.path)': vms 00000000000b and 00000000000c "
                        + "(\(dataDirectory.files(of: vms[2].id).recordPath)) share the name 'web', which the database keeps unique: "
                        + "start with --vm-store file and remove one (uni rm <id>); nothing was imported and every state.json is left as it was")
                #expect(try await count("vm", in: store) == 0)
                #expect(try await count("file_import", in: store) == 0)
                #expect(try contents(of: dataDirectory).filter { !$0.key.hasPrefix("vms.db") } == before)
            }

            // The remedy the message gives: the file store still has all
            // three (the empty database goes aside), one is removed, and
            // the import goes through.
            let files = try await VMStoreKind.file.open(dataDirectory: dataDirectory, logger: Logger(label: "test"))
            #expect(try await files.loadAll().vms == vms)
            #expect(try contents(of: dataDirectory).filter { !$0.key.hasPrefix("vms.db") } == before)
            try await files.delete(vms[2].id)
            try FileVMStore.removeFolder(dataDirectory.vmDirectory(vms[2].id))
            let store = try await VMStoreKind.sqlite.open(dataDirectory: dataDirectory, logger: Logger(label: "test"))
            #expect(try await store.loadAll().vms == [vms[0], vms[1]])
        }
    }

    @Test("a corrupt state.json is reported and left on disk; the rest migrate")
    func corruptFile() async throws {
        try await withDataDirectory { dataDirectory in
            let good = [fullySetVM(name: "a"), fullySetVM(name: "b")].sorted { $0.id < $1.id }
            try await writeFiles(good, to: dataDirectory)
            let broken = VMID.random()
            try FileManager.default.createDirectory(atPath: dataDirectory.vmDirectory(broken), withIntermediateDirectories: false)
            let brokenPath = dataDirectory.files(of: broken).recordPath
            try Data("{ \"id\": \"trunc".utf8).write(to: URL(fileURLWithPath: brokenPath))
            let store = try SQLiteVMStore(path: dataDirectory.databasePath)

            for _ in 0..<2 {
                let report = try await store.importFileRecords(from: dataDirectory)
                #expect(report.problems == ["\(brokenPath): not a valid VM record (not valid JSON); skipped and left as it is"])
                #expect(FileManager.default.contents(atPath: brokenPath) == Data("{ \"id\": \"trunc".utf8))
            }
            #expect(try await store.loadAll().vms == good)

            // unid logs it at each start, with the path.
            let handler = InMemoryLogHandler()
            _ = try await VMStoreKind.sqlite.open(dataDirectory: dataDirectory, logger: Logger(label: "test") { _ in handler })
            #expect(handler.entries.map(\.level) == [.warning])
            #expect(handler.entries.first?.message.description == "vm record not moved between stores")
            #expect(handler.entries.first?.metadata["error"] == "\(brokenPath): not a valid VM record (not valid JSON); skipped and left as it is")
        }
    }

    @Test("going back: --vm-store file after sqlite writes the database's records as state.json and keeps the database aside")
    func goingBack() async throws {
        try await withDataDirectory { dataDirectory in
            let handler = InMemoryLogHandler()
            let logger = Logger(label: "test") { _ in handler }
            let kept = fullySetVM(name: "kept"), removed = fullySetVM(name: "removed")
            try await writeFiles([kept, removed], to: dataDirectory)
            var changed = kept
            let added = fullySetVM(name: "added")
            do {
                let store = try await VMStoreKind.sqlite.open(dataDirectory: dataDirectory, logger: logger)
                #expect(store is SQLiteVMStore)
                changed.state = .running
                changed.startCount += 1
                try await store.save(changed)
                try await store.save(added)
                // What VMManager does on `rm`: the record, then the folder.
                try await store.delete(removed.id)
                try FileVMStore.removeFolder(dataDirectory.vmDirectory(removed.id))
            }
            #expect(handler.entries.map(\.message.description) == ["imported state.json vm records into the sqlite store"])

            let files = try await VMStoreKind.file.open(dataDirectory: dataDirectory, logger: logger)
            let snapshot = try await files.loadAll()
            #expect(snapshot.problems.isEmpty)
            #expect(Set(snapshot.vms) == [changed, added])
            let left = try FileManager.default.contentsOfDirectory(atPath: dataDirectory.vmsDirectory).filter { $0.hasPrefix("vms.db") }
            #expect(left.count == 1)
            let backup = try #require(left.first)
            #expect(backup.hasPrefix("vms.db.exported-") && backup.hasSuffix("Z"), "\(backup)")
            #expect(handler.entries.last?.message.description == "moved the vm records of the sqlite store back to state.json files")
            #expect(handler.entries.last?.metadata["database_backup"] == "\(dataDirectory.vmsDirectory)/\(backup)")
            // The backup is whole on its own: no -wal beside it.
            let old = try SQLiteVMStore(path: dataDirectory.vmsDirectory + "/" + backup)
            #expect(Set(try await old.loadAll().vms) == [changed, added])

            // And forth again: a fresh database takes the files.
            let again = try await VMStoreKind.sqlite.open(dataDirectory: dataDirectory, logger: logger)
            #expect(Set(try await again.loadAll().vms) == [changed, added])
        }
    }

    @Test("going back refuses a corrupt database and writes nothing")
    func goingBackCorrupt() async throws {
        try await withDataDirectory { dataDirectory in
            try Data("not a database at all, just text".utf8).write(to: URL(fileURLWithPath: dataDirectory.databasePath))
            let error = await #expect(throws: UniError.self) {
                try await VMStoreKind.file.open(dataDirectory: dataDirectory, logger: Logger(label: "test"))
            }
            #expect(error?.message.contains("is corrupt (file is not a database)") == true)
            #expect(try contents(of: dataDirectory).keys.sorted() == ["vms.db"])
        }
    }

    @Test("the file store points at state.json.migrated when a folder holds only that")
    func migratedOnly() async throws {
        try await withDataDirectory { dataDirectory in
            let vm = fullySetVM()
            try await writeFiles([vm], to: dataDirectory)
            let record = dataDirectory.files(of: vm.id).recordPath
            #expect(rename(record, record + ".migrated") == 0)
            let snapshot = try await FileVMStore(dataDirectory: dataDirectory).loadAll()
            #expect(snapshot.vms.isEmpty)
            #expect(snapshot.problems.map(\.description) == ["\(record): missing; state.json.migrated holds the record as it was imported into \(dataDirectory.databasePath) (docs/architecture.md, \"Going back to files\"); skipped and left as it is"])
        }
    }
}
