import Foundation
import Synchronization
import Testing
@testable import UniCore
@testable import UniKit
import UniKitTesting

@Suite("Console logs")
struct ConsoleLogTests {
    @Test("tail returns the last N lines, counting an unterminated last line")
    func tail() async throws {
        try await TemporaryDirectory.with { dir in
            let log = ConsoleLog(path: dir.path + "/console.log")
            log.append(Array("one\ntwo\nthree\n".utf8))
            #expect(String(decoding: log.tail(lines: 2), as: UTF8.self) == "two\nthree\n")
            #expect(String(decoding: log.tail(lines: nil), as: UTF8.self) == "one\ntwo\nthree\n")
            #expect(log.tail(lines: 0).isEmpty)
            log.append(Array("four".utf8))
            #expect(String(decoding: log.tail(lines: 1), as: UTF8.self) == "four")
        }
    }

    @Test("rotation keeps the disk bounded and the newest output")
    func rotation() async throws {
        try await TemporaryDirectory.with { dir in
            let log = ConsoleLog(path: dir.path + "/console.log", maximumFileBytes: 4096)
            for index in 0..<2000 { log.append(Array("line \(index)\n".utf8)) }
            let current = try FileManager.default.attributesOfItem(atPath: dir.path + "/console.log")[.size] as? Int ?? 0
            let rotated = try FileManager.default.attributesOfItem(atPath: dir.path + "/console.log.1")[.size] as? Int ?? 0
            #expect(current <= 4096 && rotated <= 4096)
            #expect(String(decoding: log.tail(lines: 1), as: UTF8.self) == "line 1999\n")
        }
    }

    @Test("hasPrintedLine: set by the first newline of a boot, reset by prepare")
    func firstLine() async throws {
        try await TemporaryDirectory.with { dir in
            let log = ConsoleLog(path: dir.path + "/console.log")
            log.prepare()
            log.append(Array("uni-gu".utf8))
            #expect(!log.hasPrintedLine)
            log.append(Array("est: booted\r\nmore".utf8))
            #expect(log.hasPrintedLine)
            log.prepare()
            #expect(!log.hasPrintedLine)
        }
    }

    @Test("follow delivers the tail then new output, with nothing lost between")
    func follow() async throws {
        try await TemporaryDirectory.with { dir in
            let log = ConsoleLog(path: dir.path + "/console.log")
            log.append(Array("before\n".utf8))
            let stream = log.follow(tail: nil)
            log.append(Array("after\n".utf8))
            log.finishFollowers()
            var received = [UInt8]()
            for await chunk in stream { received += chunk }
            #expect(String(decoding: received, as: UTF8.self) == "before\nafter\n")
        }
    }

    @Test("a full disk: bytes are counted as dropped, reported once, and still reach followers")
    func fullDisk() async throws {
        try await TemporaryDirectory.with { dir in
            // Writes to /dev/full fail with ENOSPC, even for root.
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/console.log", withDestinationPath: "/dev/full")
            let failures = Mutex<[ConsoleLog.WriteFailure]>([])
            let log = ConsoleLog(path: dir.path + "/console.log") { failure in failures.withLock { $0.append(failure) } }
            let stream = log.follow(tail: 0)
            let chunks = ["boot\n", "more output\n", "end\n"]
            for chunk in chunks { log.append(Array(chunk.utf8)) }
            log.finishFollowers()
            var received = [UInt8]()
            for await chunk in stream { received += chunk }

            #expect(String(decoding: received, as: UTF8.self) == chunks.joined())
            #expect(log.droppedBytes == chunks.joined().utf8.count)
            let path = dir.path + "/console.log"
            #expect(failures.withLock { $0 } == [
                ConsoleLog.WriteFailure(path: path, reason: "No space left on device", droppedBytes: 5, isFirstOfRun: true),
                ConsoleLog.WriteFailure(path: path, reason: "No space left on device", droppedBytes: 12, isFirstOfRun: false),
                ConsoleLog.WriteFailure(path: path, reason: "No space left on device", droppedBytes: 4, isFirstOfRun: false),
            ])
        }
    }

    @Test("a file that cannot be opened is reported once per run of failures; a reopen starts a new run")
    func openFailure() async throws {
        try await TemporaryDirectory.with { dir in
            let folder = dir.path + "/gone"
            let path = folder + "/console.log"
            let failures = Mutex<[ConsoleLog.WriteFailure]>([])
            let log = ConsoleLog(path: path) { failure in failures.withLock { $0.append(failure) } }
            log.append(Array("one\n".utf8))
            log.append(Array("two\n".utf8))
            #expect(log.droppedBytes == 8)
            #expect(failures.withLock { $0.filter(\.isFirstOfRun).map(\.reason) } == ["No such file or directory"])

            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            log.append(Array("three\n".utf8))
            #expect(String(decoding: log.tail(lines: nil), as: UTF8.self) == "three\n")

            log.finishFollowers()
            try FileManager.default.removeItem(atPath: folder)
            log.append(Array("four\n".utf8))
            #expect(log.droppedBytes == 13)
            #expect(failures.withLock { $0.filter(\.isFirstOfRun).map(\.droppedBytes) } == [4, 5])
        }
    }
}

@Suite("File VM store")
struct FileVMStoreTests {
    func sampleVM(name: String = "web") -> VM {
        VM(id: VMID.random(), name: name, config: VMConfig(image: "/k", memory: VMConfig.defaultMemory, cpus: 1, ports: [PortMapping(hostPort: 8080, guestPort: 80)], environment: ["A": "1"]),
           imageKind: .kernel, createdAt: Date(timeIntervalSince1970: 1_790_000_000.5))
    }

    @Test("records round-trip through state.json as snake_case")
    func roundTrip() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let vm = sampleVM()
            try await store.save(vm)
            let text = try String(contentsOfFile: store.recordPath(vm.id), encoding: .utf8)
            #expect(text.contains("\"created_at\" : \"2026-09-21T14:13:20.500Z\""))
            #expect(text.contains("\"memory_bytes\" : 268435456"))
            #expect(text.contains("\"host_port\" : 8080"))
            let loaded = try await store.loadAll()
            #expect(loaded.vms == [vm])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/vms/\(vm.id)") == ["state.json"])
            let mode = try FileManager.default.attributesOfItem(atPath: store.recordPath(vm.id))[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test("concurrent writes of one record all succeed and leave one whole file, no temporary")
    func concurrentWrites() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let base = sampleVM()
            let versions = (0..<64).map { index in
                var vm = base
                vm.name = "web-\(index)"
                return vm
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, vm) in versions.enumerated() {
                    group.addTask { index.isMultiple(of: 2) ? try await store.save(vm) : try await store.saveTransient(vm) }
                }
                try await group.waitForAll()
            }
            let folder = dir.path + "/vms/\(base.id)"
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["state.json"])
            let snapshot = try await store.loadAll()
            #expect(snapshot.problems.isEmpty)
            #expect(snapshot.vms.count == 1)
            #expect(versions.contains(snapshot.vms.first ?? base))
        }
    }

    @Test("a temporary file left by a crash is not read as a record and is removed by delete")
    func leftoverTemporary() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let vm = sampleVM()
            try await store.save(vm)
            let leftover = store.recordPath(vm.id) + ".tmp.4242.7"
            try "{ half a rec".write(toFile: leftover, atomically: false, encoding: .utf8)
            let snapshot = try await store.loadAll()
            #expect(snapshot.vms == [vm])
            #expect(snapshot.problems.isEmpty)
            try await store.delete(vm.id)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/vms/\(vm.id)").isEmpty)
        }
    }

    @Test("timestamps are RFC 3339 UTC, rounded to the millisecond")
    func timestamps() {
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 1_790_000_000.1229)) == "2026-09-21T14:13:20.123Z")
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.date(from: "2026-09-21T14:13:20.500Z") == Date(timeIntervalSince1970: 1_790_000_000.5))
    }

    @Test("the hand-read RFC 3339 form gives Foundation's dates; other forms still go to Foundation")
    func timestampParsing() throws {
        let foundation = { (text: String) in try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            // 2001-01-01 to 2100-01-01, milliseconds.
            let milliseconds = Int64.random(in: 978_307_200_000..<4_102_444_800_000, using: &generator)
            let text = RFC3339.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
            let date = try #require(RFC3339.canonicalDate(text), "\(text)")
            #expect(abs(date.timeIntervalSince(try foundation(text))) < 1e-6, "\(text)")
            #expect(RFC3339.string(from: date) == text)
        }
        #expect(RFC3339.canonicalDate("2026-09-21T14:13:20Z") == Date(timeIntervalSince1970: 1_790_000_000))
        #expect(RFC3339.canonicalDate("2024-02-29T23:59:59.999Z") == (try foundation("2024-02-29T23:59:59.999Z")))
        // Left to Foundation: an offset, another fraction length, a day it rolls over, a year before 2001, garbage.
        for text in ["2026-09-21T16:13:20.123+02:00", "2026-09-21T14:13:20.5Z", "2026-02-29T00:00:00.000Z", "1999-12-31T23:59:59.000Z",
                     "2026-13-01T00:00:00.000Z", "2026-09-21T14:13:2a.123Z", "2026-09-21 14:13:20.123Z", ""] {
            #expect(RFC3339.canonicalDate(text) == nil, "\(text)")
        }
        #expect(RFC3339.date(from: "2026-09-21T16:13:20.123+02:00") == (try foundation("2026-09-21T14:13:20.123Z")))
        #expect(RFC3339.date(from: "2026-02-29T00:00:00.000Z") == (try? foundation("2026-02-29T00:00:00.000Z")))
        #expect(RFC3339.date(from: "yesterday") == nil)
    }

    @Test("a truncated, a garbage and a missing state.json are each reported with their path and id, skipped and left on disk")
    func corrupt() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let good = sampleVM()
            try await store.save(good)
            // A record cut short by a full disk or a crash of another tool.
            let truncatedVM = sampleVM(name: "truncated")
            try await store.save(truncatedVM)
            let whole = try #require(FileManager.default.contents(atPath: store.recordPath(truncatedVM.id)))
            try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: store.recordPath(truncatedVM.id)))
            let garbage = VMID.random(), empty = VMID.random()
            for id in [garbage, empty] {
                try FileManager.default.createDirectory(atPath: dir.path + "/vms/\(id)", withIntermediateDirectories: true)
            }
            try Data([0xff, 0x00, 0x7b, 0x13]).write(to: URL(fileURLWithPath: store.recordPath(garbage)))
            let snapshot = try await store.loadAll()
            #expect(snapshot.vms.map(\.id) == [good.id])
            let expected = [
                UnreadableRecord(id: truncatedVM.id, path: store.recordPath(truncatedVM.id), reason: "not a valid VM record (not valid JSON)"),
                UnreadableRecord(id: garbage, path: store.recordPath(garbage), reason: "not a valid VM record (not valid JSON)"),
                UnreadableRecord(id: empty, path: store.recordPath(empty), reason: "missing or unreadable"),
            ]
            #expect(Set(snapshot.problems) == Set(expected))
            #expect(snapshot.problems.first { $0.id == garbage }?.description
                    == "\(store.recordPath(garbage)): not a valid VM record (not valid JSON); skipped and left as it is")
            #expect(FileManager.default.contents(atPath: store.recordPath(truncatedVM.id)) == whole.prefix(whole.count / 2))
            #expect(FileManager.default.contents(atPath: store.recordPath(garbage)) == Data([0xff, 0x00, 0x7b, 0x13]))
        }
    }

    @Test("a record from a newer schema is refused with its version, typed with its id and path")
    func newerSchema() async throws {
        try await TemporaryDirectory.with { dir in
            let store = FileVMStore(dataDirectory: DataDirectory(root: dir.path))
            let vm = sampleVM()
            try await store.save(vm)
            let text = try String(contentsOfFile: store.recordPath(vm.id), encoding: .utf8)
            try text.replacingOccurrences(of: "\"schema_version\" : 1", with: "\"schema_version\" : 9").write(toFile: store.recordPath(vm.id), atomically: true, encoding: .utf8)
            let snapshot = try await store.loadAll()
            #expect(snapshot.vms.isEmpty)
            #expect(snapshot.problems == [UnreadableRecord(id: vm.id, path: store.recordPath(vm.id),
                                                           reason: "record schema_version 9 is newer than this build understands (1)")])
        }
    }

    @Test("a VM folder is removed with its FIFOs and subfolders; a folder already gone is fine; a failure names the entry")
    func removeFolder() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let folder = dir.path + "/vm"
        try FileManager.default.createDirectory(atPath: folder + "/sub/deeper", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/state.json"))
        try Data("y".utf8).write(to: URL(fileURLWithPath: folder + "/sub/deeper/file"))
        #expect(mkfifo(folder + "/net-received.fifo", 0o600) == 0)
        #expect(symlink("/nonexistent", folder + "/dangling") == 0)
        try FileVMStore.removeFolder(folder)
        #expect(!FileManager.default.fileExists(atPath: folder))
        try FileVMStore.removeFolder(folder)

        // Under a file rather than a folder (root ignores modes): the path is named.
        let notAFolder = dir.path + "/file"
        try Data().write(to: URL(fileURLWithPath: notAFolder))
        let error = try #require(throws: UniError.self) { try FileVMStore.removeFolder(notAFolder + "/x") }
        #expect(error.code == .storeFailed)
        #expect(error.message.contains("cannot remove '\(notAFolder)/x'"))
    }

    @Test("one daemon per data dir: a second lock names the data dir and pid")
    func daemonLock() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let dataDirectory = DataDirectory(root: dir.path)
        try dataDirectory.prepare()
        let first = try DaemonLock(dataDirectory: dataDirectory)
        let error = try #require(throws: UniError.self) { try DaemonLock(dataDirectory: dataDirectory) }
        #expect(error.code == .conflict)
        #expect(error.message.contains("another unid is already running on data dir '\(dir.path)' (pid \(getpid()))"))
        withExtendedLifetime(first) {}
    }
}
