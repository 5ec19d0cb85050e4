import Benchmark
import Foundation
import Logging
import Synchronization
import UniHTTP
import UniKit
import UniKitTesting

/// Telemetry hot paths, each next to a baseline measured in the same run:
/// - `/metrics` render at 1,000 and 10,000 VMs (targets: p50 <= 2 ms and <= 20 ms);
/// - one JSON log line (target: p50 <= 2 us), against Foundation's
///   JSONSerialization of the same fields as the baseline;
/// - stats (issue #14): one VM's sample (target <= 100 us) against reading
///   one `/proc` file; a sampling tick of 100 VMs (its cost every 5 s is
///   unid's CPU share, target <= 1% of a core); `stats()` of 1,000 VMs
///   (fake hypervisor and source; target <= 100 ms);
/// - stores (issue #15, `store: ...`): loading 10,000 VMs from each store
///   (targets: SQLite <= 100 ms, files <= 1 s), importing 10,000 state.json
///   files (<= 3 s), and one transition's write in each store, durable and
///   transient, next to a bare write + fsync.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(3), maxIterations: 100_000)

    for count in [1_000, 10_000] {
        let factory = PrometheusHelpFactory()
        let telemetry = VMTelemetry(factory: factory)
        let now = Date()
        let vms: [VM] = (0..<count).map { index in
            var vm = VM(id: VMID.random(), name: "vm-\(index)", config: VMConfig(image: "/images/app.elf"), imageKind: .kernel, createdAt: now)
            vm.state = index % 2 == 0 ? .running : .stopped
            vm.startCount = 1 + index % 3
            return vm
        }
        telemetry.update(vms: vms)
        let sampler = VMStatsSampler()
        for (index, vm) in vms.enumerated() where vm.state == .running {
            let target = StatsTarget(id: vm.id, name: vm.name, pid: Int32(index + 100), instance: ScriptedInstance(pid: Int32(index + 100)))
            let reading = VMStatsReading(source: .proc, cpuSeconds: Double(index) * 0.01, memoryRSSBytes: UInt64(64 << 20))
            telemetry.record(sampler.record(reading, for: target, at: now, instant: .now))
        }
        Benchmark("/metrics render, \(count) VMs", configuration: .init(scalingFactor: .one)) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(MetricsRouter.render(factory.registry))
            }
        }
    }

    let date = Date()
    let metadata: Logger.Metadata = ["vm_id": "3f2a9c1e8b7d", "name": "web", "from": "starting", "to": "running"]
    Benchmark("JSON log line", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(JSONLogHandler.line(date: date, level: .info, message: "vm state transition", metadata: metadata))
        }
    }
    Benchmark("JSON log line baseline: JSONSerialization", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            let object: [String: String] = ["ts": "2026-11-25T06:11:51.123Z", "level": "INFO", "msg": "vm state transition",
                                            "vm_id": "3f2a9c1e8b7d", "name": "web", "from": "starting", "to": "running"]
            blackHole(try? JSONSerialization.data(withJSONObject: object))
        }
    }

    statsBenchmarks()
    storeBenchmarks()
}

/// The stats benchmarks: the real `/proc` reader on this process, and the
/// manager with fakes at 1,000 VMs.
@Sendable func statsBenchmarks() {
    let source = ProcStatsSource()
    let pid = getpid()
    let oneTarget = StatsTarget(id: VMID.random(), name: "self", pid: pid, instance: ScriptedInstance(pid: pid))
    let sampler = VMStatsSampler()
    Benchmark("stats: one VM's sample (/proc stat, record)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            let reading = await source.sample(oneTarget)
            blackHole(sampler.record(reading, for: oneTarget, at: Date(), instant: .now))
        }
    }
    Benchmark("stats baseline: read /proc/self/stat once", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(FileManager.default.contents(atPath: "/proc/self/stat"))
        }
    }
    let hundred = (0..<100).map { StatsTarget(id: VMID.random(), name: "vm-\($0)", pid: pid, instance: ScriptedInstance(pid: pid)) }
    Benchmark("stats: one sampling tick of 100 VMs (real /proc reads)") { benchmark in
        for _ in benchmark.scaledIterations {
            await withTaskGroup(of: Void.self) { group in
                for target in hundred {
                    group.addTask { sampler.record(await source.sample(target), for: target, at: Date(), instant: .now) }
                }
            }
        }
    }
    Benchmark("stats: manager.stats() of 1,000 running VMs (fakes)", configuration: .init(maxDuration: .seconds(5))) { benchmark, manager in
        for _ in benchmark.scaledIterations {
            blackHole(try? await manager.stats())
        }
    } setup: {
        try await StatsFixture.manager(vms: 1_000)
    }
}

/// A manager over fakes with `vms` running VMs, each sampled twice.
enum StatsFixture {
    static func manager(vms count: Int) async throws -> VMManager {
        let directory = try benchmarkDirectory()
        let image = directory.path + "/kernel.elf"
        _ = FileManager.default.createFile(atPath: image, contents: Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 60)))
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let manager = VMManager(
            configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path)),
            backends: VMManagerBackends(store: InMemoryVMStore(), hypervisor: ScriptedHypervisor(), statsSource: FixedStatsSource()),
            logger: logger
        )
        try await manager.load()
        for index in 0..<count { _ = try await manager.run(VMConfig(name: "vm-\(index)", image: image)) }
        await manager.sampleStats()
        await manager.sampleStats()
        return manager
    }
}

/// The store benchmarks, each store beside the other and beside a bare
/// write + fsync of the same record, in the same run.
@Sendable func storeBenchmarks() {
    let slow = Benchmark.Configuration(metrics: [.wallClock], maxDuration: .seconds(20), maxIterations: 20)
    /// `makeLoad` builds a fixture (unmeasured) and returns the load to measure.
    func load(_ what: String, _ makeLoad: @escaping @Sendable () async throws -> @Sendable () async throws -> VMStoreSnapshot) {
        Benchmark("store: load 10,000 VMs, \(what)", configuration: slow) { benchmark, load in
            for _ in benchmark.scaledIterations {
                let snapshot = try await load()
                precondition(snapshot.vms.count == StoreFixture.count)
                blackHole(snapshot)
            }
        } setup: {
            try await makeLoad()
        }
    }
    load("files (list, read and decode each state.json)") {
        let store = FileVMStore(dataDirectory: try await StoreFixture.files().dataDirectory)
        return { try await store.loadAll() }
    }
    load("sqlite (open, quick_check, read and decode each record)") {
        let path = try await StoreFixture.database().dataDirectory.databasePath
        return { try await SQLiteVMStore(path: path).loadAll() }
    }
    load("baseline: JSONDecoder alone on the same records, one thread (no store)") {
        let fixture = try await StoreFixture.files()
        let encoder = JSONCoding.makeEncoder(pretty: true)
        let records = try fixture.vms.map { try encoder.encode($0) }
        return {
            let decoder = JSONCoding.makeDecoder()
            return VMStoreSnapshot(vms: try records.map { try decoder.decode(VM.self, from: $0) })
        }
    }
    load("RecordDecoder alone on the same records, one thread (no store)") {
        let fixture = try await StoreFixture.files()
        let encoder = JSONCoding.makeEncoder(pretty: true)
        let records = try fixture.vms.map { try encoder.encode($0) }
        return {
            let decoder = RecordDecoder()
            return VMStoreSnapshot(vms: try records.map { try decoder.decode(VM.self, from: $0) })
        }
    }
    load("sqlite, loadAll only (database open)") {
        let store = try SQLiteVMStore(path: try await StoreFixture.database().dataDirectory.databasePath)
        return { try await store.loadAll() }
    }
    Benchmark("store: migrate 10,000 state.json files into a new vms.db (open, import, renames)", configuration: slow) { benchmark, fixture in
        for _ in benchmark.scaledIterations {
            // Unmeasured (startMeasurement restarts the clock): the files
            // back in place, no database.
            try fixture.undoImport()
            benchmark.startMeasurement()
            let report = try await SQLiteVMStore(path: fixture.dataDirectory.databasePath).importFileRecords(from: fixture.dataDirectory)
            precondition(report.imported.count == StoreFixture.count)
            blackHole(report)
        }
    } setup: {
        try await StoreFixture.files()
    }

    // One transition's write: the record of one VM among 1,000, its state flipped each time.
    let writes: [(String, @Sendable (any VMStore, VM) async throws -> Void)] = [
        ("save (durable: fsync)", { try await $0.save($1) }),
        ("saveTransient (no fsync)", { try await $0.saveTransient($1) }),
    ]
    let stores: [(String, @Sendable () async throws -> WriteTarget)] = [
        ("files", {
            let fixture = try await StoreFixture.files(count: 1_000)
            return WriteTarget(store: FileVMStore(dataDirectory: fixture.dataDirectory), vm: fixture.vms[500])
        }),
        ("sqlite", {
            let fixture = try await StoreFixture.database(count: 1_000)
            return WriteTarget(store: try SQLiteVMStore(path: fixture.dataDirectory.databasePath), vm: fixture.vms[500])
        }),
    ]
    for (kind, makeTarget) in stores {
        for (name, write) in writes {
            Benchmark("store: one transition, \(kind), \(name)", configuration: .init(metrics: [.wallClock], maxDuration: .seconds(5))) { (benchmark: Benchmark, target: WriteTarget) in
                var vm = target.vm
                for _ in benchmark.scaledIterations {
                    vm.state = vm.state == .running ? .stopped : .running
                    try await write(target.store, vm)
                }
            } setup: {
                try await makeTarget()
            }
        }
    }
    Benchmark("store baseline: write 1 KiB to a file and fsync it", configuration: .init(metrics: [.wallClock], maxDuration: .seconds(5))) { benchmark, path in
        let bytes = [UInt8](repeating: 0x61, count: 1024)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(fd) }
        for _ in benchmark.scaledIterations {
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            fsync(fd)
        }
    } setup: {
        try benchmarkDirectory().path + "/fsync"
    }
}

/// One store and the VM whose record a transition benchmark rewrites.
struct WriteTarget: Sendable {
    let store: any VMStore
    let vm: VM
}

/// The folders the fixtures of this process made, removed when it exits
/// (each benchmark runs in a process of its own, with no teardown that
/// sees its setup's value).
let benchmarkDirectories = Mutex<[TemporaryDirectory]>([])

/// A new temporary folder for a fixture, removed at exit.
func benchmarkDirectory() throws -> TemporaryDirectory {
    let directory = try TemporaryDirectory(prefix: "uni-bench")
    let first = benchmarkDirectories.withLock { directories in
        directories.append(directory)
        return directories.count == 1
    }
    if first {
        atexit { benchmarkDirectories.withLock { directories in directories.forEach { $0.remove() } } }
    }
    return directory
}

/// A data dir holding VM records for the store benchmarks.
struct StoreFixture: Sendable {
    static let count = 10_000
    let dataDirectory: DataDirectory
    let vms: [VM]

    /// `count` VMs as state.json files (written without fsync: the setup need not wait for the disk).
    static func files(count: Int = StoreFixture.count) async throws -> StoreFixture {
        let directory = try benchmarkDirectory()
        let dataDirectory = DataDirectory(root: directory.path)
        try dataDirectory.prepare()
        let created = Date()
        let vms: [VM] = (0..<count).map { index in
            var vm = VM(id: VMID.random(), name: "vm-\(index)",
                        config: VMConfig(image: "/images/app-\(index % 10).elf", ports: [PortMapping(hostPort: UInt16(10_000 + index % 50_000), guestPort: 80)],
                                         environment: ["APP_ENV": "production"]),
                        imageKind: .kernel, createdAt: created)
            vm.state = index.isMultiple(of: 2) ? .stopped : .created
            vm.startCount = index % 4
            if vm.state == .stopped {
                vm.accelerator = .kvm
                vm.startedAt = created
                vm.finishedAt = created
                vm.exitCode = 0
                vm.stopReason = .exited
            }
            return vm
        }
        let store = FileVMStore(dataDirectory: dataDirectory)
        for vm in vms { try await store.saveTransient(vm) }
        return StoreFixture(dataDirectory: dataDirectory, vms: vms)
    }

    /// `count` VMs in `vms/vms.db`, imported from files.
    static func database(count: Int = StoreFixture.count) async throws -> StoreFixture {
        let fixture = try await files(count: count)
        _ = try await SQLiteVMStore(path: fixture.dataDirectory.databasePath).importFileRecords(from: fixture.dataDirectory)
        return fixture
    }

    /// Puts every `state.json.migrated` back and removes the database.
    func undoImport() throws {
        for vm in vms {
            let path = dataDirectory.files(of: vm.id).recordPath
            _ = rename(path + SQLiteVMStore.migratedSuffix, path)
        }
        for suffix in ["", "-wal", "-shm"] { unlink(dataDirectory.databasePath + suffix) }
    }
}
