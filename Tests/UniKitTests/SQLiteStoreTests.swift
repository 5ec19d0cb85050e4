import Foundation
import GRDB
import Testing
@testable import UniKit
import UniKitTesting

/// A VM with every optional field set and no field at its default, so a
/// store that drops or mangles any of them fails the round trip. Its times
/// are whole binary fractions of a second, which survive the millisecond
/// precision of the JSON exactly.
func fullySetVM(name: String = "full") -> VM {
    var vm = VM(id: VMID.random(), name: name,
                config: VMConfig(name: name, image: "/images/app, v2.img", memory: .mebibytes(512), cpus: 3,
                                 ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80),
                                         PortMapping(hostPort: 5353, guestPort: 53, transportProtocol: .udp)],
                                 environment: ["GREETING": "hello world", "EMPTY": ""], kernelCommandLine: "console=ttyS0 quiet",
                                 autoRemove: true, restartPolicy: RestartPolicy(mode: .onFailure, maximumRetries: 4),
                                 healthCheck: HealthCheck(kind: .http, guestPort: 80, path: "/healthz", interval: .seconds(7),
                                                          timeout: .milliseconds(1500), retries: 5, startPeriod: .seconds(2))),
                imageKind: .disk, createdAt: Date(timeIntervalSince1970: 1_790_000_000.125))
    vm.machine = "q35"
    vm.image = ImageBinding(reference: "app:2", digest: "sha256:" + String(repeating: "b", count: 64), kernelPath: "/i/k", initrdPath: "/i/r", diskPath: "/i/d")
    vm.accelerator = .kvm
    vm.state = .stopped
    vm.startedAt = Date(timeIntervalSince1970: 1_790_000_100.375)
    vm.finishedAt = Date(timeIntervalSince1970: 1_790_000_200.625)
    vm.pid = 4242
    vm.exitCode = 137
    vm.qemuExitStatus = 3
    vm.exitSignal = 9
    vm.stopReason = .killed
    vm.lastError = "qemu: 'it' failed\nsecond line ✓"
    vm.startCount = 7
    vm.daemonRecovered = true
    vm.health = .unhealthy
    vm.healthFailures = 3
    vm.lastHealthCheckAt = Date(timeIntervalSince1970: 1_790_000_150.25)
    vm.lastHealthError = "http 503 from /healthz"
    vm.restartCount = 2
    vm.lastRestartAt = Date(timeIntervalSince1970: 1_790_000_120.75)
    vm.cgroup = CgroupStatus(mechanism: .v1, paths: ["/sys/fs/cgroup/cpu/uni/\(vm.id)", "/sys/fs/cgroup/memory/uni/\(vm.id)"], enforced: true)
    // Never saved by the manager; a store keeps whatever JSON it is given.
    vm.pressure = ResourcePressure(cpu: PressureStall(some: PressureLine(avg10: 1.5, avg60: 0.5, avg300: 0.25, totalMicroseconds: 42)))
    vm.recordExit(ExitRecord(finishedAt: Date(timeIntervalSince1970: 1_790_000_110.5), reason: .crashed, exitCode: 139, signal: 11, error: "segfault"))
    vm.recordExit(ExitRecord(finishedAt: Date(timeIntervalSince1970: 1_790_000_200.625), reason: .killed, exitCode: 137, signal: 9))
    return vm
}

/// Labels of `value`'s stored properties that are `nil`.
func nilFields(of value: Any) -> [String] {
    Mirror(reflecting: value).children.compactMap { child in
        let inner = Mirror(reflecting: child.value)
        return inner.displayStyle == .optional && inner.children.isEmpty ? child.label : nil
    }
}

/// One SQLite store on a fresh data dir's `vms/vms.db`.
func withSQLiteStore(_ body: (SQLiteVMStore, DataDirectory) async throws -> Void) async throws {
    try await TemporaryDirectory.with { dir in
        let dataDirectory = DataDirectory(root: dir.path)
        try dataDirectory.prepare()
        try await body(try SQLiteVMStore(path: dataDirectory.databasePath), dataDirectory)
    }
}

@Suite("SQLite VM store")
struct SQLiteVMStoreTests {
    @Test("every field of a record survives a save and a reopen; the columns mirror it and record is state.json's JSON")
    func roundTrip() async throws {
        try await withSQLiteStore { store, dataDirectory in
            let vm = fullySetVM()
            #expect(nilFields(of: vm).isEmpty, "set these fields in fullySetVM: \(nilFields(of: vm))")
            #expect(nilFields(of: vm.config).isEmpty, "set these fields in fullySetVM: \(nilFields(of: vm.config))")
            #expect(nilFields(of: try #require(vm.config.healthCheck)).isEmpty)
            try await store.save(vm)

            let reopened = try SQLiteVMStore(path: dataDirectory.databasePath)
            let snapshot = try await reopened.loadAll()
            #expect(snapshot.problems.isEmpty)
            #expect(snapshot.vms == [vm])

            let row = try #require(try reopened.writer.read { db in try Row.fetchOne(db, sql: "SELECT * FROM vm") })
            #expect(row["id"] as String == vm.id.rawValue)
            #expect(row["name"] as String == "full")
            #expect(row["state"] as String == "stopped")
            #expect(row["schema_version"] as Int == VM.currentSchemaVersion)
            #expect(row["image"] as String == "/images/app, v2.img")
            #expect(row["pid"] as Int32? == 4242)
            #expect(row["exit_code"] as Int32? == 137)
            #expect(row["stop_reason"] as String? == "killed")
            #expect(row["start_count"] as Int == 7)
            #expect(row["restart_count"] as Int == 2)
            #expect(row["health"] as String == "unhealthy")
            #expect(row["last_health_check_at"] as String? == "2026-09-21T14:15:50.250Z")
            #expect(row["last_restart_at"] as String? == "2026-09-21T14:15:20.750Z")
            #expect(row["created_at"] as String == "2026-09-21T14:13:20.125Z")
            #expect(row["started_at"] as String? == "2026-09-21T14:15:00.375Z")
            #expect(row["finished_at"] as String? == "2026-09-21T14:16:40.625Z")
            let fileStore = FileVMStore(dataDirectory: dataDirectory)
            try await fileStore.save(vm)
            #expect(row["record"] as String == (try String(contentsOfFile: fileStore.recordPath(vm.id), encoding: .utf8)))
        }
    }

    @Test("updated_at is the store's clock at each write")
    func updatedAt() async throws {
        let store = try SQLiteVMStore(writer: DatabaseQueue(), now: { Date(timeIntervalSince1970: 1_800_000_000) })
        try await store.save(fullySetVM())
        let updated = try await store.writer.read { db in try String.fetchOne(db, sql: "SELECT updated_at FROM vm") }
        #expect(updated == "2027-01-15T08:00:00.000Z")
    }

    @Test("delete removes the row; deleting a missing record succeeds")
    func delete() async throws {
        try await withSQLiteStore { store, _ in
            let kept = fullySetVM(name: "kept"), gone = fullySetVM(name: "gone")
            try await store.save(kept)
            try await store.save(gone)
            try await store.delete(gone.id)
            try await store.delete(gone.id)
            try await store.delete(VMID.random())
            #expect(try await store.loadAll().vms == [kept])
        }
    }

    @Test("a save replaces the record with its id; a name another row holds is refused, naming that vm")
    func replaceAndNameConflict() async throws {
        try await withSQLiteStore { store, _ in
            var vm = fullySetVM(name: "web")
            try await store.save(vm)
            vm.state = .running
            vm.startCount += 1
            try await store.saveTransient(vm)
            #expect(try await store.loadAll().vms == [vm])

            let other = fullySetVM(name: "web")
            let error = await #expect(throws: UniError.self) { try await store.save(other) }
            #expect(error?.code == .conflict)
            #expect(error?.message == "the name 'web' is already used by vm \(vm.id) in '\(store.path)'")
            #expect(try await store.loadAll().vms == [vm])
        }
    }

    @Test("concurrent saves of one record and of many all land whole")
    func concurrentSaves() async throws {
        try await withSQLiteStore { store, _ in
            let base = fullySetVM(name: "one")
            let versions = (0..<64).map { index in
                var vm = base
                vm.startCount = index
                return vm
            }
            let others = (0..<64).map { fullySetVM(name: "vm-\($0)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, vm) in versions.enumerated() {
                    group.addTask { index.isMultiple(of: 2) ? try await store.save(vm) : try await store.saveTransient(vm) }
                }
                for (index, vm) in others.enumerated() {
                    group.addTask { index.isMultiple(of: 2) ? try await store.saveTransient(vm) : try await store.save(vm) }
                }
                try await group.waitForAll()
            }
            let snapshot = try await store.loadAll()
            #expect(snapshot.problems.isEmpty)
            #expect(snapshot.vms.count == 65)
            #expect(Set(snapshot.vms.filter { $0.id != base.id }) == Set(others))
            #expect(versions.contains(try #require(snapshot.vms.first { $0.id == base.id })))
        }
    }

    @Test("saveTransient commits at synchronous NORMAL and is read by a second connection (a restarted daemon); save commits at FULL")
    func transient() async throws {
        try await withSQLiteStore { store, dataDirectory in
            func level() async throws -> Int? {
                try await store.writer.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
            }
            #expect(try await level() == 2)
            var vm = fullySetVM()
            vm.state = .starting
            try await store.saveTransient(vm)
            #expect(try await level() == 1)
            // The first connection is still open, its WAL not checkpointed:
            // what a daemon killed now leaves behind.
            let next = try SQLiteVMStore(path: dataDirectory.databasePath)
            #expect(try await next.loadAll().vms == [vm])
            vm.state = .running
            try await store.save(vm)
            #expect(try await level() == 2)
            #expect(try await next.loadAll().vms == [vm])
        }
    }

    @Test("loading decodes in slices and keeps the id order and every problem")
    func slicedLoad() async throws {
        try await withSQLiteStore { store, _ in
            let vms = (0..<700).map { fullySetVM(name: "vm-\($0)") }.sorted { $0.id < $1.id }
            for vm in vms { try await store.saveTransient(vm) }
            let broken = vms[400].id
            try await store.writer.write { db in try db.execute(sql: "UPDATE vm SET record = '{' WHERE id = ?", arguments: [broken.rawValue]) }
            let snapshot = try await store.loadAll()
            #expect(snapshot.vms == vms.filter { $0.id != broken })
            #expect(snapshot.problems.map(\.description) == ["\(store.path) vm \(broken): not a valid VM record (not valid JSON); skipped and left as it is"])
        }
    }

    @Test("a database from a newer unid is refused at open, naming both versions, and left as it is")
    func newerDatabase() async throws {
        try await withSQLiteStore { store, dataDirectory in
            try await store.save(fullySetVM())
            try await store.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA user_version = 9") }
            let error = #expect(throws: UniError.self) { try SQLiteVMStore(path: dataDirectory.databasePath) }
            #expect(error?.code == .storeFailed)
            #expect(error?.message == "vm database '\(dataDirectory.databasePath)' has schema version 9, newer than this unid understands (1): run the newer unid that wrote it")
            #expect(try await store.writer.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") } == 9)
        }
    }

    @Test("a database holding a migration this unid does not know is refused at open")
    func unknownMigration() async throws {
        let queue = try DatabaseQueue()
        _ = try SQLiteVMStore(writer: queue)
        try await queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v2: events')") }
        let error = #expect(throws: UniError.self) { try SQLiteVMStore(writer: queue) }
        #expect(error?.message.contains("was migrated by a newer unid (migrations v2: events; this unid understands schema version 1)") == true)
    }

    @Test("a record from a newer unid is reported and left in the database; the others load")
    func newerRecord() async throws {
        try await withSQLiteStore { store, _ in
            let good = fullySetVM(name: "good"), newer = fullySetVM(name: "newer")
            try await store.save(good)
            try await store.save(newer)
            try await store.writer.write { db in
                try db.execute(sql: "UPDATE vm SET record = replace(record, '\"schema_version\" : 1', '\"schema_version\" : 9') WHERE id = ?",
                               arguments: [newer.id.rawValue])
            }
            let snapshot = try await store.loadAll()
            #expect(snapshot.vms == [good])
            #expect(snapshot.problems == [UnreadableRecord(id: newer.id, path: store.path, rowID: newer.id.rawValue,
                                                           reason: "record schema_version 9 is newer than this build understands (1)")])
            #expect(try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM vm") } == 2)
        }
    }

    @Test("rows whose JSON is truncated or garbage are reported by database path and row id, left in their rows; the others load")
    func unreadableRows() async throws {
        try await withSQLiteStore { store, _ in
            let good = fullySetVM(name: "good"), truncated = fullySetVM(name: "truncated"), garbage = fullySetVM(name: "garbage")
            for vm in [good, truncated, garbage] { try await store.save(vm) }
            try await store.writer.write { db in
                try db.execute(sql: "UPDATE vm SET record = substr(record, 1, length(record) / 2) WHERE id = ?", arguments: [truncated.id.rawValue])
                try db.execute(sql: "UPDATE vm SET record = X'FF007B13' WHERE id = ?", arguments: [garbage.id.rawValue])
                // A row id no VM can have, as a hand edit could leave.
                try db.execute(sql: "UPDATE vm SET id = 'Not-An-Id' WHERE id = ?", arguments: [good.id.rawValue])
            }
            let snapshot = try await store.loadAll()
            #expect(snapshot.vms.isEmpty)
            let json = "not a valid VM record (not valid JSON)"
            #expect(Set(snapshot.problems) == [
                UnreadableRecord(id: truncated.id, path: store.path, rowID: truncated.id.rawValue, reason: json),
                UnreadableRecord(id: garbage.id, path: store.path, rowID: garbage.id.rawValue, reason: json),
                UnreadableRecord(id: nil, path: store.path, rowID: "Not-An-Id", reason: "holds id \(good.id) but is stored as Not-An-Id"),
            ])
            #expect(snapshot.problems.first { $0.id == nil }?.location == "\(store.path) vm Not-An-Id")
            #expect(try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM vm") } == 3)
        }
    }

    @Test("garbage in vms.db stops the open with one line and a hint; the file is never recreated")
    func corruptDatabase() async throws {
        try await TemporaryDirectory.with { dir in
            let dataDirectory = DataDirectory(root: dir.path)
            try dataDirectory.prepare()
            let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
            try garbage.write(to: URL(fileURLWithPath: dataDirectory.databasePath))
            let error = #expect(throws: UniError.self) { try SQLiteVMStore(path: dataDirectory.databasePath) }
            #expect(error?.code == .storeFailed)
            let message = error?.message ?? ""
            #expect(message.hasPrefix("vm database '\(dataDirectory.databasePath)' is corrupt (file is not a database); unid does not recreate it: restore it from a backup, or move it aside and start with --vm-store file"))
            #expect(!message.contains("\n"))
            #expect(FileManager.default.contents(atPath: dataDirectory.databasePath) == garbage)
        }
    }

    @Test("a database damaged inside (a page overwritten) is refused by the check at open")
    func damagedPage() async throws {
        try await withSQLiteStore { store, dataDirectory in
            for index in 0..<200 { try await store.save(fullySetVM(name: "vm-\(index)")) }
            try await store.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            // Page 3 onwards holds the table's b-tree; the header (page 1) stays valid.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory.databasePath))
            try handle.seek(toOffset: 4096 * 2)
            try handle.write(contentsOf: Data(repeating: 0xA5, count: 4096))
            try handle.close()
            let error = #expect(throws: UniError.self) { try SQLiteVMStore(path: dataDirectory.databasePath) }
            #expect(error?.message.hasPrefix("vm database '\(dataDirectory.databasePath)' is corrupt (") == true, "\(String(describing: error))")
            #expect(error?.message.contains("restore it from a backup") == true)
        }
    }

    @Test("a vms.db that cannot be opened for writing is an error at open, naming it")
    func unwritable() async throws {
        try await TemporaryDirectory.with { dir in
            let dataDirectory = DataDirectory(root: dir.path)
            try dataDirectory.prepare()
            // A folder where the file should be: SQLite cannot open it, even as root.
            try FileManager.default.createDirectory(atPath: dataDirectory.databasePath, withIntermediateDirectories: false)
            let error = #expect(throws: UniError.self) { try SQLiteVMStore(path: dataDirectory.databasePath) }
            #expect(error?.code == .storeFailed)
            #expect(error?.message == "cannot open vm database '\(dataDirectory.databasePath)': unable to open database file")
        }
    }
}
