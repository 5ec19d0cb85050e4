import Foundation
import InMemoryLogging
import Logging
import Testing
@testable import UniKit
import UniKitTesting

@Suite("Records the store cannot read: kept by the manager, never VMs, left on disk")
struct UnreadableRecordTests {
    /// A manager over a real file store in `dir`, logging to `handler`.
    func manager(_ dir: TemporaryDirectory, store: any VMStore, handler: InMemoryLogHandler) -> VMManager {
        VMManager(configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: dir.path)),
                  store: store, hypervisor: ScriptedHypervisor(), logger: Logger(label: "test") { _ in handler })
    }

    func sampleVM(_ name: String, state: VMState = .stopped) -> VM {
        var vm = VM(id: VMID.random(), name: name, config: VMConfig(name: name, image: "/k"), imageKind: .kernel,
                    createdAt: Date(timeIntervalSince1970: 1_790_000_000))
        vm.state = state
        return vm
    }

    @Test("load keeps a truncated state.json as an unreadable record, logs it with its path, and loads the other VMs")
    func loadKeepsThem() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let good = sampleVM("good"), broken = sampleVM("broken")
            try await store.save(good)
            try await store.save(broken)
            let path = store.recordPath(broken.id)
            let whole = try #require(FileManager.default.contents(atPath: path))
            try whole.prefix(40).write(to: URL(fileURLWithPath: path))

            let handler = InMemoryLogHandler()
            let manager = manager(dir, store: store, handler: handler)
            let expected = UnreadableRecord(id: broken.id, path: path, reason: "not a valid VM record (not valid JSON)")
            #expect(try await manager.load() == [expected])
            #expect(await manager.unreadableRecords() == [expected])
            #expect(await manager.list(all: true).map(\.name) == ["good"])

            let warnings = handler.entries.filter { $0.message.description == "skipping unreadable vm record" }
            #expect(warnings.count == 1)
            #expect(warnings.first?.level == .warning)
            #expect(warnings.first?.metadata[LogKeys.path] == "\(path)")
            #expect(warnings.first?.metadata[LogKeys.vmID] == "\(broken.id)")
            #expect(warnings.first?.metadata[LogKeys.reason] == "not a valid VM record (not valid JSON)")
            #expect(FileManager.default.contents(atPath: path) == whole.prefix(40))
        }
    }

    @Test("rm, rm -f, start, inspect of an unreadable record's id (or a prefix) are refused with the path and how to delete it; the file stays")
    func operationsRefused() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let broken = sampleVM("broken")
            try await store.save(broken)
            let path = store.recordPath(broken.id)
            try Data("{\"schema_version\": 1, \"id\": ".utf8).write(to: URL(fileURLWithPath: path))
            let manager = manager(dir, store: store, handler: InMemoryLogHandler())
            try await manager.load()

            let message = "vm \(broken.id) cannot be used: its record \(path) cannot be read (not a valid VM record (not valid JSON)); "
                + "unid leaves it as it is: repair it or delete it by hand (rm -r '\(dir.path)/vms/\(broken.id)'), then restart unid"
            for reference in [broken.id.rawValue, String(broken.id.rawValue.prefix(5))] {
                let rm = await #expect(throws: UniError.self) { try await manager.remove(reference) }
                #expect(rm?.code == .invalidState)
                #expect(rm?.message == message)
                let force = await #expect(throws: UniError.self) { try await manager.remove(reference, force: true) }
                #expect(force?.message == message)
                let start = await #expect(throws: UniError.self) { try await manager.start(reference) }
                #expect(start?.message == message)
                let inspect = await #expect(throws: UniError.self) { try await manager.inspect(reference) }
                #expect(inspect?.message == message)
            }
            // A name is never taken for an id.
            let byName = await #expect(throws: UniError.self) { try await manager.remove("broken") }
            #expect(byName?.code == .notFound)
            #expect(FileManager.default.contents(atPath: path) == Data("{\"schema_version\": 1, \"id\": ".utf8))
        }
    }

    @Test("an unreadable row of the SQLite store is refused with the database's DELETE; running VMs are recovered beside it")
    func sqliteRow() async throws {
        try await TemporaryDirectory.with { dir in
            let dataDirectory = DataDirectory(root: dir.path)
            try dataDirectory.prepare()
            let store = try SQLiteVMStore(path: dataDirectory.databasePath)
            let running = sampleVM("running", state: .running), broken = sampleVM("broken")
            try await store.save(running)
            try await store.save(broken)
            try await store.writer.write { db in
                try db.execute(sql: "UPDATE vm SET record = 'garbage' WHERE id = ?", arguments: [broken.id.rawValue])
            }
            let manager = manager(dir, store: store, handler: InMemoryLogHandler())
            #expect(try await manager.load() == [UnreadableRecord(id: broken.id, path: store.path, rowID: broken.id.rawValue,
                                                                  reason: "not a valid VM record (not valid JSON)")])
            #expect(try await manager.inspect("running").stopReason == .daemonRecovered)
            let error = await #expect(throws: UniError.self) { try await manager.remove(broken.id.rawValue) }
            #expect(error?.message == "vm \(broken.id) cannot be used: its record \(store.path) vm \(broken.id) cannot be read "
                    + "(not a valid VM record (not valid JSON)); unid leaves it as it is: repair it or delete it by hand "
                    + "(sqlite3 '\(store.path)' \"DELETE FROM vm WHERE id = '\(broken.id)'\"), then restart unid")
            #expect(try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM vm") } == 2)
        }
    }
}
