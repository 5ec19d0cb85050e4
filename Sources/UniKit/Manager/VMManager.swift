import Foundation
import Logging
import ServiceLifecycle
import Tracing

/// The one facade for VM lifecycle: create, start, stop, kill, remove, logs.
///
/// The manager is the only writer of VM records. It is a `Service`: its
/// ``run()`` watches running VMs for exits, writes again records a failing
/// store could not take, and on graceful shutdown stops every VM it runs; it
/// must be running (in a `ServiceGroup` or a task) for exits to be recorded.
///
/// **Concurrency rule.** Every operation that changes a VM passes that VM's
/// serial gate and checks the state inside it, against the transition table
/// of ``VMState``; waiting for a guest to power off happens outside the gate,
/// so a `kill` can cut a slow `stop` short. Two requests on one VM therefore
/// never launch two processes, resurrect a removed record or leave a state
/// stuck (docs/architecture.md, "Concurrency").
///
/// VMs are referred to by a *reference*: a full id, a name, or a unique id prefix.
public actor VMManager: Service {
    /// The settings it was built with.
    public nonisolated let configuration: VMManagerConfiguration
    /// The per-VM stats every reader shares (poller, `/metrics`, API, dashboard).
    public nonisolated let sampler: VMStatsSampler
    /// What happened to the VMs: transitions, exits, health changes,
    /// restarts, kept across daemon restarts in the data dir.
    public nonisolated let events: EventLog
    /// The local images VMs are created from (`uni images`).
    public nonisolated let images: ImageService
    let backends: VMManagerBackends
    let logger: Logger
    /// The data dir's lock when ``VMHost/make(dataDirectory:options:telemetry:tracer:logger:)``
    /// built this manager: held as long as the manager lives.
    let dataDirectoryLock: DaemonLock?

    var table: VMTable
    var gates = OperationGates()
    var consoles: [VMID: ConsoleLog] = [:]
    var runtimes: [VMID: Runtime] = [:]
    var exitWaiters: [VMID: [CheckedContinuation<VM, Never>]] = [:]
    /// The record the last exit of each VM produced, for a caller that
    /// arrives after another one recorded it (`stop` and the exit watcher).
    var recordedExits: [VMID: (instance: ObjectIdentifier, vm: VM)] = [:]
    /// VMs whose current record the store refused; ``run()`` writes them again.
    var unsaved: [VMID: String] = [:]
    /// The last store failure, for `/health`; cleared by the next success.
    var storeProblem: String?
    var supervising = false
    /// Set when graceful shutdown begins: no restart starts after it.
    var shuttingDown = false
    /// The restart each stopped VM waits for, by token: a `start`, `stop`,
    /// `kill` or `rm` meanwhile takes it back.
    var pendingRestarts: [VMID: UInt64] = [:]
    var nextRestartToken: UInt64 = 0
    /// Restarts in a row per VM (reset by a stable run), for the backoff.
    var restartStreaks: [VMID: Int] = [:]
    /// Restart jobs that ended (ran, were called off or cancelled): tests wait on it.
    var restartsHandled = 0
    /// Set once the "quotas are not enforced" warning is logged: once per manager, not per VM.
    var warnedCgroupsUnavailable = false
    let jobs: AsyncStream<SupervisionJob>
    let jobContinuation: AsyncStream<SupervisionJob>.Continuation

    struct Runtime {
        let instance: any HypervisorInstance
        /// Why the process is expected to end (`stop`, `kill`); `nil`: by itself.
        var intent: StopReason?
        /// The cgroup the process runs in, removed once it has ended.
        var placement: CgroupPlacement?
    }

    struct ExitWatch: Sendable {
        let id: VMID
        let instance: any HypervisorInstance
    }

    struct RestartRequest: Sendable {
        let id: VMID
        let token: UInt64
        let delay: Duration
    }

    /// Work ``run()`` does in its task group, one task per job.
    enum SupervisionJob: Sendable {
        /// Record the end of a process.
        case exit(ExitWatch)
        /// Start a stopped VM again after a wait.
        case restart(RestartRequest)
        /// Probe a running VM's health until its process ends.
        case health(ExitWatch)
    }

    var store: any VMStore { backends.store }
    var hypervisor: any Hypervisor { backends.hypervisor }
    var telemetry: VMTelemetry? { backends.telemetry }

    /// Creates a manager; call ``load()`` before using it.
    ///
    /// To run VMs on this host with QEMU, ``VMHost/make(dataDirectory:options:telemetry:tracer:logger:)``
    /// builds the backends and the manager in one call.
    public init(configuration: VMManagerConfiguration, backends: VMManagerBackends, logger: Logger) {
        self.init(configuration: configuration, backends: backends, logger: logger, lock: nil)
    }

    init(configuration: VMManagerConfiguration, backends: VMManagerBackends, logger: Logger, lock: DaemonLock?) {
        self.dataDirectoryLock = lock
        self.configuration = configuration
        self.backends = backends
        self.logger = logger
        self.table = VMTable(removedRecordsKept: configuration.removedRecordsKept)
        self.sampler = VMStatsSampler(capacity: configuration.statsHistory)
        self.events = EventLog(path: configuration.dataDirectory.eventsPath)
        self.images = backends.images ?? ImageService(directory: configuration.dataDirectory.imagesDirectory,
                                                      credentialsPath: configuration.dataDirectory.registryAuthPath,
                                                      telemetry: backends.telemetry, tracer: backends.tracer)
        (jobs, jobContinuation) = AsyncStream.makeStream()
    }

    /// Creates a manager from its backends one by one; call ``load()`` before using it.
    /// - Parameters:
    ///   - telemetry: where metrics go (`nil`: none).
    ///   - tracer: where lifecycle spans go (default: none).
    public init(configuration: VMManagerConfiguration, store: any VMStore, hypervisor: any Hypervisor, logger: Logger,
                telemetry: VMTelemetry? = nil, tracer: any Tracer = NoOpTracer()) {
        self.init(configuration: configuration,
                  backends: VMManagerBackends(store: store, hypervisor: hypervisor, telemetry: telemetry, tracer: tracer),
                  logger: logger)
    }

    // MARK: Service

    /// Watches VM exits and retries unsaved records until graceful shutdown,
    /// then stops every running VM.
    public func run() async throws {
        supervising = true
        defer { supervising = false }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.retryUnsavedRecords() }
            for await job in jobs.cancelOnGracefulShutdown() {
                switch job {
                case .exit(let watch): group.addTask { await self.superviseExit(of: watch) }
                case .restart(let request): group.addTask { await self.restart(request) }
                case .health(let watch): group.addTask { await self.superviseHealth(of: watch) }
                }
            }
            // Graceful shutdown (or cancellation) ended the loop; VMs still
            // running are stopped before the service returns, and their exit
            // watchers above finish with them. No restart starts from here on.
            shuttingDown = true
            await stopAll()
            // The shutdown's transitions are in; `uni events` followers end with the daemon.
            events.finishFollowers()
            group.cancelAll()
        }
    }

    /// Whether ``run()`` is watching exits now.
    public var isSupervising: Bool { supervising }

    /// Why the manager cannot do its job, or `nil` when it can: a store
    /// write failed (and its record is not saved yet), or the exit
    /// supervisor is not running.
    public func healthProblem() -> String? {
        if !unsaved.isEmpty {
            let names = unsaved.keys.compactMap { table[$0]?.name }.sorted().joined(separator: ", ")
            return "store: \(unsaved.count) vm record(s) not saved (\(names)), retrying: \(storeProblem ?? unsaved.values.first ?? "")"
        }
        if let storeProblem { return "store: \(storeProblem)" }
        if !supervising { return "supervisor: not running" }
        return nil
    }

    // MARK: Loading

    /// Reads every record from the store. VMs a previous daemon left running
    /// are stopped (the hypervisor ends their process when it still lives)
    /// and marked `daemon_recovered`.
    ///
    /// A record the store cannot read never stops the load: it is logged,
    /// kept for ``unreadableRecords()`` and left where it is; the others load.
    /// - Returns: the records that could not be read.
    @discardableResult
    public func load() async throws -> [UnreadableRecord] {
        try configuration.dataDirectory.prepare()
        let snapshot = try await store.loadAll()
        for problem in snapshot.problems {
            var metadata: Logger.Metadata = [LogKeys.path: "\(problem.path)", LogKeys.reason: "\(problem.reason)", LogKeys.error: "\(problem)"]
            if let id = problem.id { metadata[LogKeys.vmID] = "\(id)" }
            logger.warning("skipping unreadable vm record", metadata: metadata)
        }
        table.setUnreadable(snapshot.problems)
        for var vm in snapshot.vms {
            consoles[vm.id] = makeConsole(vm.id)
            if vm.state.hasProcess {
                let killed = await hypervisor.stopOrphan(of: vm, directory: configuration.dataDirectory.vmDirectory(vm.id))
                // Its process is gone now, so the cgroup it left is empty.
                backends.cgroups.removeLeftover(of: vm.id)
                let from = vm.state
                vm.state = .stopped
                vm.finishedAt = configuration.now()
                vm.pid = nil
                vm.stopReason = .daemonRecovered
                vm.daemonRecovered = true
                vm.health = .none
                vm.recordExit(ExitRecord(finishedAt: vm.finishedAt!, reason: .daemonRecovered))
                do {
                    try await persist("record the recovery of vm \(vm.name)") { try await self.store.save(vm) }
                } catch {
                    // A full disk must not keep the daemon down: the fact is
                    // kept in memory, shown by /health, and written later.
                    keepUnsaved(vm, error)
                }
                logTransition(vm, from: from.rawValue, to: vm.state.rawValue, extra: ["orphan_killed": "\(killed)"])
                if let exit = vm.exits.last { recordExitEvent(vm, exit) }
            }
            table.put(vm)
            // As Docker does, `always` brings back what the last daemon ran;
            // a restart the last daemon had planned (in its backoff) is planned again.
            if !vm.restartGaveUp {
                let carriedOver = vm.config.restartPolicy.mode == .always && (vm.stopReason == .daemonRecovered || vm.stopReason == .daemonShutdown)
                if carriedOver {
                    scheduleRestart(of: vm, attempt: 1, delay: .zero)
                } else if VMManager.restartIsDue(vm) {
                    scheduleRestart(of: vm, attempt: 1, delay: configuration.restartBackoff.initial)
                }
            }
        }
        for (name, ids) in table.duplicateNames {
            logger.warning("vm name used by several records; refer to them by id", metadata: [
                LogKeys.vmName: "\(name)", "vm_ids": "\(ids.map(\.rawValue).joined(separator: ","))",
            ])
        }
        telemetry?.update(vms: table.all)
        // Blobs a dead daemon's interrupted pull or import committed without
        // a tag (its partial files go when the store opens). Only where an
        // image store exists: a data dir that never had images gets none.
        if FileManager.default.fileExists(atPath: images.directory) {
            let images = images, keep = imagesInUse()
            try? await ImageService.offThread { images.collectGarbage(keepingManifests: keep) }
        }
        return snapshot.problems
    }

    // MARK: Queries

    /// The VMs, newest first; only those with a process unless `all`.
    public func list(all: Bool = false) -> [VM] {
        table.all.filter { all || $0.state.hasProcess }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    }

    /// The records the store could not read at ``load()``, by id: they are
    /// no VMs (nothing can start, stop or remove them) and stay on disk as
    /// they are until a person repairs or deletes them and unid restarts.
    public func unreadableRecords() -> [UnreadableRecord] {
        table.unreadable
    }

    /// The record of the VM `reference` names.
    /// - Throws: ``UniError``: `notFound` naming the reference, `invalidArgument` when it is ambiguous.
    /// A running VM's record carries its cgroup's pressure (PSI), read now,
    /// where the kernel offers it.
    /// - Throws: ``UniError``: `notFound` naming the reference, `invalidArgument` when it is ambiguous.
    public func inspect(_ reference: String) throws -> VM {
        let id = try table.resolve(reference)
        guard var vm = table[id] else { throw UniError(.notFound, "no such vm: \(reference)") }
        vm.pressure = pressure(of: id)
        return vm
    }

    /// The VM's console: the last `tail` lines (all when `nil`), then, with
    /// `follow`, everything it prints until it stops.
    /// - Throws: ``UniError`` (`notFound`).
    public func logs(_ reference: String, tail: Int? = nil, follow: Bool = false) throws -> AsyncStream<[UInt8]> {
        let id = try table.resolve(reference)
        let console = console(of: id)
        if follow, table[id]?.state != .stopped {
            return console.follow(tail: tail)
        }
        let bytes = console.tail(lines: tail)
        return AsyncStream { continuation in
            if !bytes.isEmpty { continuation.yield(bytes) }
            continuation.finish()
        }
    }

    /// Waits until the VM is stopped and returns its final record. A stopped
    /// VM returns at once; a created one waits for a start and a stop. A VM
    /// removed by `--rm` is still answered, by full id, from a short history.
    /// - Throws: ``UniError`` (`notFound`).
    public func wait(_ reference: String) async throws -> VM {
        if let id = try? VMID(reference), let gone = table.removedRecord(id) { return gone }
        let id = try table.resolve(reference)
        if let vm = table[id], vm.state == .stopped { return vm }
        return await withCheckedContinuation { exitWaiters[id, default: []].append($0) }
    }

    // MARK: Records

    /// Saves `vm` and, when that worked, makes it the current record and
    /// logs the transition. Callers hold the VM's gate.
    /// - Parameter durable: `false` for a transient state no caller is told about.
    func commit(_ vm: VM, from: VMState, durable: Bool = true, extra: Logger.Metadata = [:]) async throws {
        try await persist("save vm \(vm.name)") {
            if durable { try await self.store.save(vm) } else { try await self.store.saveTransient(vm) }
        }
        unsaved[vm.id] = nil
        table.put(vm)
        telemetry?.update(vms: table.all)
        if from != vm.state { logTransition(vm, from: from.rawValue, to: vm.state.rawValue, extra: extra) }
    }

    /// Runs one store write, keeping ``healthProblem()`` current: the one
    /// path every store failure takes.
    /// - Throws: ``UniError`` (`storeFailed`) saying what could not be done and why.
    func persist(_ what: String, _ write: () async throws -> Void) async throws {
        do {
            try await write()
            storeProblem = nil
        } catch {
            let message = (error as? UniError)?.message ?? "\(error)"
            storeProblem = message
            telemetry?.recordStoreFailure()
            throw UniError(.storeFailed, "cannot \(what): \(message)", cause: error)
        }
    }

    /// Deletes the record and folder of `id` and keeps its last record for
    /// `wait`. Callers hold the VM's gate.
    func deleteRecord(_ id: VMID) async throws {
        guard let vm = table[id] else { return }
        try await persist("remove vm \(vm.name)") { try await self.store.delete(id) }
        do {
            try FileVMStore.removeFolder(configuration.dataDirectory.vmDirectory(id))
        } catch {
            // The record is gone, so the VM is; a leftover folder is only clutter.
            logger.error("cannot remove vm folder", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
        }
        unsaved[id] = nil
        pendingRestarts[id] = nil
        restartStreaks[id] = nil
        // A whole record per removed VM otherwise (the soak's ~2 KB a cycle).
        recordedExits[id] = nil
        table.remove(id)
        telemetry?.update(vms: table.all)
        consoles.removeValue(forKey: id)?.finishFollowers()
        resumeExitWaiters(vm)
        logTransition(vm, from: vm.state.rawValue, to: "removed")
    }

    func resumeExitWaiters(_ vm: VM) {
        for waiter in exitWaiters.removeValue(forKey: vm.id) ?? [] { waiter.resume(returning: vm) }
    }

    func logTransition(_ vm: VM, from: String, to: String, extra: Logger.Metadata = [:]) {
        var metadata: Logger.Metadata = [LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.from: "\(from)", LogKeys.to: "\(to)"]
        metadata.merge(extra) { $1 }
        logger.info("vm state transition", metadata: metadata)
        var attributes = ["from": from, "to": to]
        for (key, value) in extra { attributes[key] = "\(value)" }
        record(.transition, vm, attributes)
    }

    /// Adds one event about `vm` to the history, at the manager's wall clock.
    func record(_ kind: VMEvent.Kind, _ vm: VM, _ attributes: [String: String]) {
        events.record(kind, vmID: vm.id, vmName: vm.name, attributes: attributes, time: configuration.now())
    }

    func console(of id: VMID) -> ConsoleLog {
        if let console = consoles[id] { return console }
        let console = makeConsole(id)
        consoles[id] = console
        return console
    }

    func makeConsole(_ id: VMID) -> ConsoleLog {
        let logger = logger
        let telemetry = telemetry
        return ConsoleLog(path: configuration.dataDirectory.files(of: id).consolePath, maximumFileBytes: configuration.consoleLogMaximumBytes) { failure in
            telemetry?.recordConsoleDropped(bytes: failure.droppedBytes)
            // Once per run of failures: a full disk must not flood the log.
            guard failure.isFirstOfRun else { return }
            logger.error("cannot write vm console to disk; output is dropped until writes succeed again", metadata: [
                LogKeys.vmID: "\(id)", "path": "\(failure.path)", LogKeys.error: "\(failure.reason)",
            ])
        }
    }
}
