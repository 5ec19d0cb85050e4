import Foundation
import Logging
import ServiceLifecycle
import Tracing
#if canImport(Glibc)
import Glibc
#endif

/// The one facade for VM lifecycle: create, start, stop, kill, remove, logs.
///
/// The manager is the only writer of VM records. It is a `Service`: its
/// ``run()`` watches running VMs for exits and, on graceful shutdown, stops
/// every VM it runs; it must be running (in a `ServiceGroup` or a task) for
/// exits to be recorded.
///
/// VMs are referred to by a *reference*: a full id, a name, or a unique id prefix.
public actor VMManager: Service {
    /// The settings it was built with.
    public nonisolated let configuration: VMManagerConfiguration
    private let store: any VMStore
    private let hypervisor: any Hypervisor
    private let logger: Logger
    private let telemetry: VMTelemetry?
    private let tracer: any Tracer
    /// The last store failure, for `/health`; cleared by the next success.
    private var storeProblem: String?
    private var supervising = false

    private var vms: [VMID: VM] = [:]
    private var consoles: [VMID: ConsoleLog] = [:]
    private var runtimes: [VMID: Runtime] = [:]
    private var exitWaiters: [VMID: [CheckedContinuation<VM, Never>]] = [:]
    /// Exits being recorded right now: a second caller for the same instance
    /// (the exit watcher and `stop` race) waits for the first one's result.
    private var finalizing: [VMID: (instance: any HypervisorInstance, waiters: [CheckedContinuation<VM, Never>])] = [:]
    private var removed: [VMID: VM] = [:]
    private var removedOrder: [VMID] = []
    private let exitWatches: AsyncStream<ExitWatch>
    private let exitWatchContinuation: AsyncStream<ExitWatch>.Continuation

    private struct Runtime {
        let instance: any HypervisorInstance
        var intent: StopReason?
    }

    private struct ExitWatch: Sendable {
        let id: VMID
        let instance: any HypervisorInstance
    }

    /// Creates a manager; call ``load()`` before using it.
    /// - Parameters:
    ///   - telemetry: where metrics go (`nil`: none).
    ///   - tracer: where lifecycle spans go (default: none).
    public init(configuration: VMManagerConfiguration, store: any VMStore, hypervisor: any Hypervisor, logger: Logger,
                telemetry: VMTelemetry? = nil, tracer: any Tracer = NoOpTracer()) {
        self.configuration = configuration
        self.store = store
        self.hypervisor = hypervisor
        self.logger = logger
        self.telemetry = telemetry
        self.tracer = tracer
        (exitWatches, exitWatchContinuation) = AsyncStream.makeStream()
    }

    // MARK: Service

    /// Watches VM exits until graceful shutdown, then stops every running VM.
    public func run() async throws {
        supervising = true
        defer { supervising = false }
        await withDiscardingTaskGroup { group in
            for await watch in exitWatches.cancelOnGracefulShutdown() {
                group.addTask {
                    let exit = await watch.instance.waitForExit()
                    await self.instanceExited(watch.id, instance: watch.instance, exit: exit)
                }
            }
            // Graceful shutdown (or cancellation) ended the loop; VMs still
            // running are stopped before the service returns, and their exit
            // watchers above finish with them.
            await stopAll()
        }
    }

    /// Why the manager cannot do its job, or `nil` when it can: the last
    /// store write failed, or the exit supervisor is not running.
    public func healthProblem() -> String? {
        if let storeProblem { return "store: \(storeProblem)" }
        if !supervising { return "supervisor: not running" }
        return nil
    }

    /// Stops every running VM (graceful, then forced after the stop timeout).
    public func stopAll() async {
        let running = vms.values.filter { $0.state == .running || $0.state == .stopping }.map(\.id)
        await withTaskGroup(of: Void.self) { group in
            for id in running {
                group.addTask { _ = try? await self.stop(id.rawValue, timeout: nil) }
            }
        }
    }

    // MARK: Loading

    /// Reads every record from the store. VMs a previous daemon left running
    /// are stopped (their QEMU killed when still alive) and marked
    /// `daemon_recovered`.
    /// - Returns: one line per record that could not be read.
    @discardableResult
    public func load() async throws -> [String] {
        try configuration.dataDirectory.prepare()
        let snapshot = try await store.loadAll()
        for problem in snapshot.problems {
            logger.warning("skipping unreadable vm record", metadata: [LogKeys.error: "\(problem)"])
        }
        for var vm in snapshot.vms {
            consoles[vm.id] = makeConsole(vm.id)
            if vm.state.hasProcess {
                let directory = configuration.dataDirectory.vmDirectory(vm.id)
                let killed = VMManager.killOrphan(pid: vm.pid ?? VMManager.recordedPID(in: directory), directory: directory)
                let from = vm.state
                vm.state = .stopped
                vm.finishedAt = configuration.now()
                vm.pid = nil
                vm.stopReason = .daemonRecovered
                vm.daemonRecovered = true
                try await store.save(vm)
                logTransition(vm, from: from.rawValue, to: vm.state.rawValue, extra: ["orphan_killed": "\(killed)"])
            }
            vms[vm.id] = vm
        }
        telemetry?.update(vms: Array(vms.values))
        return snapshot.problems
    }

    /// The pid QEMU's launcher wrote next to the record: a daemon that died
    /// between spawning QEMU and recording `running` left only that.
    static func recordedPID(in directory: String) -> Int32? {
        FileManager.default.contents(atPath: directory + "/" + QEMUHypervisor.pidFileName)
            .flatMap { Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Kills `pid` when it is still the QEMU of `directory` (its command line names the folder).
    static func killOrphan(pid: Int32?, directory: String) -> Bool {
        guard let pid, pid > 0,
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
              String(decoding: cmdline, as: UTF8.self).contains(directory + "/qmp.sock") else { return false }
        return Glibc.kill(pid, SIGKILL) == 0
    }

    // MARK: Queries

    /// The VMs, newest first; only those with a process unless `all`.
    public func list(all: Bool = false) -> [VM] {
        vms.values.filter { all || $0.state.hasProcess }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    }

    /// The record of the VM `reference` names.
    /// - Throws: ``UniError`` (`notFound`) naming the reference.
    public func inspect(_ reference: String) throws -> VM {
        try vms[resolve(reference)]!
    }

    /// The VM's console: the last `tail` lines (all when `nil`), then, with
    /// `follow`, everything it prints until it stops.
    /// - Throws: ``UniError`` (`notFound`).
    public func logs(_ reference: String, tail: Int? = nil, follow: Bool = false) throws -> AsyncStream<[UInt8]> {
        let id = try resolve(reference)
        let console = consoles[id] ?? makeConsole(id)
        if follow, vms[id]?.state != .stopped {
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
        if let id = try? VMID(reference), let gone = removed[id], vms[id] == nil { return gone }
        let id = try resolve(reference)
        if let vm = vms[id], vm.state == .stopped { return vm }
        return await withCheckedContinuation { exitWaiters[id, default: []].append($0) }
    }

    // MARK: Lifecycle

    /// Creates a VM and starts it; when the start fails nothing is left behind.
    /// - Throws: ``UniError`` from ``create(_:)`` or ``start(_:)``.
    public func run(_ config: VMConfig) async throws -> VM {
        let vm = try await create(config, persisted: false)
        do {
            return try await start(vm.id.rawValue)
        } catch {
            try? await deleteRecord(vm.id)
            throw error
        }
    }

    /// Records a new VM in the `created` state.
    /// - Throws: ``UniError``: a bad config value, an unusable image, a duplicate name.
    public func create(_ config: VMConfig) async throws -> VM {
        try await create(config, persisted: true)
    }

    /// Creates a VM, subscribes to its console, and starts it without
    /// waiting: the console streams from QEMU's first byte, and the start is
    /// confirmed once the first line is out (``StartConfirmation``). A failed start removes the VM;
    /// its final record (`stop_reason`, `last_error`) is still answered by
    /// ``wait(_:)``. The stream ends when the VM stops or is removed.
    /// - Throws: ``UniError`` from ``create(_:)``; start failures come through ``wait(_:)``.
    public func runAttached(_ config: VMConfig) async throws -> (vm: VM, console: AsyncStream<[UInt8]>) {
        let vm = try await create(config, persisted: false)
        let console = try logs(vm.id.rawValue, follow: true)
        let reference = vm.id.rawValue
        Task {
            do {
                _ = try await self.start(reference, confirmation: VMManager.attachedConfirmation)
            } catch {
                try? await self.remove(reference, force: true)
            }
        }
        return (vm, console)
    }

    /// How an attached run's start is confirmed: someone is watching its
    /// console, so the check waits for the first line (at most 250 ms).
    static let attachedConfirmation = StartConfirmation.afterFirstLine(grace: .milliseconds(250))

    /// `persisted: false` when a start follows at once: the VM then exists
    /// in memory only until the start writes its first record (`starting`),
    /// so a daemon that dies in between leaves nothing on disk, and the
    /// boot is not held up by a write that the next one replaces.
    private func create(_ config: VMConfig, persisted: Bool) async throws -> VM {
        try await traced(.create, reference: config.name) { try await self.createUntraced(config, persisted: persisted) }
    }

    private func createUntraced(_ config: VMConfig, persisted: Bool) async throws -> VM {
        var config = try config.validated()
        config.image = DataDirectory.absolute(config.image)
        let kind = try ImageInspector.kind(ofImageAt: config.image)
        if kind == .disk, let cmdline = config.kernelCommandLine, !cmdline.isEmpty {
            throw UniError.invalid("--cmdline applies to kernel images only; '\(config.image)' is a disk image")
        }
        var id = VMID.random()
        while vms[id] != nil { id = VMID.random() }
        let name = config.name ?? "vm-" + id.rawValue.prefix(6)
        if let other = vms.values.first(where: { $0.name == name }) {
            throw UniError(.conflict, "the name '\(name)' is already used by vm \(other.id)")
        }
        let vm = VM(id: id, name: name, config: config, imageKind: kind, createdAt: configuration.now())
        if persisted {
            let directory = configuration.dataDirectory.vmDirectory(id)
            do {
                try FileVMStore.makeFolder(directory)
                try await store.save(vm)
                storeProblem = nil
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                let failure = (error as? UniError) ?? UniError(.storeFailed, "cannot create '\(directory)': \(error.localizedDescription)")
                storeProblem = failure.message
                throw failure
            }
        }
        vms[id] = vm
        telemetry?.update(vms: Array(vms.values))
        consoles[id] = makeConsole(id)
        logTransition(vm, from: "none", to: vm.state.rawValue)
        return vm
    }

    /// Starts a created or stopped VM and returns once it runs.
    /// - Throws: ``UniError``: `invalidState` when it is not created or
    ///   stopped; `conflict` for a busy host port; `hypervisorFailed` with
    ///   QEMU's stderr. A failed start leaves the VM stopped with `last_error`.
    public func start(_ reference: String) async throws -> VM {
        try await start(reference, confirmation: .immediate)
    }

    private func start(_ reference: String, confirmation: StartConfirmation) async throws -> VM {
        try await traced(.start, reference: reference) { try await self.startUntraced(reference, confirmation: confirmation) }
    }

    private func startUntraced(_ reference: String, confirmation: StartConfirmation) async throws -> VM {
        let requested = ContinuousClock.now
        let id = try resolve(reference)
        var vm = vms[id]!
        guard vm.state == .created || vm.state == .stopped else {
            throw UniError(.invalidState, VMManager.stateMessage(vm, wanted: "start"))
        }
        let previous = vm.state
        let directory = configuration.dataDirectory.vmDirectory(id)
        do {
            try FileVMStore.makeFolder(directory)
        } catch {
            throw UniError(.storeFailed, "cannot create '\(directory)': \(error.localizedDescription)")
        }
        vm.state = .starting
        vm.lastError = nil
        // Transient: no caller sees `starting`, and the `running` or
        // `stopped` record that follows is saved durably (docs/architecture.md).
        try await commit(vm, from: previous, durable: false)
        let console = consoles[id] ?? makeConsole(id)
        consoles[id] = console
        console.prepare()
        let instance: any HypervisorInstance
        do {
            instance = try await hypervisor.launch(LaunchRequest(vm: vm, directory: directory, console: console, confirmation: confirmation))
        } catch {
            let failure = (error as? UniError) ?? UniError(.hypervisorFailed, "\(error)")
            if var current = vms[id] {
                current.state = .stopped
                current.stopReason = .failedToStart
                current.lastError = failure.message
                current.finishedAt = configuration.now()
                try? await commit(current, from: .starting)
                console.finishFollowers()
                resumeExitWaiters(current)
            }
            throw failure
        }
        vm = vms[id] ?? vm
        vm.state = .running
        vm.pid = instance.pid
        vm.accelerator = hypervisor.accelerator
        vm.startedAt = configuration.now()
        vm.finishedAt = nil
        vm.exitCode = nil
        vm.qemuExitStatus = nil
        vm.exitSignal = nil
        vm.stopReason = nil
        vm.startCount += 1
        do {
            try await commit(vm, from: .starting)
        } catch {
            // Without a durable record the VM must not keep running.
            instance.forceStop()
            _ = await instance.waitForExit()
            vm.state = .stopped
            vm.pid = nil
            vm.stopReason = .failedToStart
            vm.lastError = "\(error)"
            vm.finishedAt = configuration.now()
            vms[id] = vm
            console.finishFollowers()
            resumeExitWaiters(vm)
            throw error
        }
        // Registered only after the commit, with no suspension in between, so
        // an exit (even an instant one) is recorded after `running`, never before.
        runtimes[id] = Runtime(instance: instance, intent: nil)
        exitWatchContinuation.yield(ExitWatch(id: id, instance: instance))
        telemetry?.recordStart(duration: ContinuousClock.now - requested)
        return vm
    }

    /// Asks the guest to power off, waits up to `timeout` (the configured stop
    /// timeout when `nil`), then kills QEMU. Returns the stopped record.
    /// - Throws: ``UniError`` (`invalidState`) when the VM is not running.
    public func stop(_ reference: String, timeout: Duration? = nil) async throws -> VM {
        try await traced(.stop, reference: reference) { try await self.stopUntraced(reference, timeout: timeout) }
    }

    private func stopUntraced(_ reference: String, timeout: Duration?) async throws -> VM {
        let id = try resolve(reference)
        let vm = vms[id]!
        guard vm.state == .running || vm.state == .stopping, let runtime = runtimes[id] else {
            throw UniError(.invalidState, VMManager.stateMessage(vm, wanted: "stop"))
        }
        if vm.state == .running {
            var stopping = vm
            stopping.state = .stopping
            runtimes[id]?.intent = .stopped
            try await commit(stopping, from: .running)
            do {
                try await runtime.instance.requestPowerdown()
            } catch {
                logger.warning("powerdown request failed; will kill after the timeout", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
            }
        }
        let limit = timeout ?? configuration.stopTimeout
        let exit = await waitForExit(of: runtime.instance, timeout: limit) {
            if self.runtimes[id]?.instance === runtime.instance { self.runtimes[id]?.intent = .stopTimeout }
            self.logger.info("stop timed out; killing", metadata: [LogKeys.vmID: "\(id)", "timeout": "\(limit)"])
            runtime.instance.forceStop()
        }
        return await instanceExited(id, instance: runtime.instance, exit: exit)
    }

    /// Kills the VM's process at once (SIGKILL). Returns the stopped record.
    /// - Throws: ``UniError`` (`invalidState`) when the VM is not running.
    public func kill(_ reference: String) async throws -> VM {
        try await traced(.kill, reference: reference) { try await self.killUntraced(reference) }
    }

    private func killUntraced(_ reference: String) async throws -> VM {
        let id = try resolve(reference)
        let vm = vms[id]!
        guard vm.state == .running || vm.state == .stopping, let runtime = runtimes[id] else {
            throw UniError(.invalidState, VMManager.stateMessage(vm, wanted: "kill"))
        }
        runtimes[id]?.intent = .killed
        runtime.instance.forceStop()
        return await instanceExited(id, instance: runtime.instance, exit: runtime.instance.waitForExit())
    }

    /// Removes a VM's record and folder. A running VM needs `force`, which kills it first.
    /// - Throws: ``UniError`` (`invalidState`) for a running VM without `force`, or a starting one.
    public func remove(_ reference: String, force: Bool = false) async throws {
        _ = try await traced(.remove, reference: reference) { () async throws -> VM in
            let vm = try self.inspect(reference)
            try await self.removeUntraced(reference, force: force)
            return vm
        }
    }

    private func removeUntraced(_ reference: String, force: Bool) async throws {
        let id = try resolve(reference)
        let vm = vms[id]!
        switch vm.state {
        case .created, .stopped:
            break
        case .running, .stopping:
            guard force else {
                throw UniError(.invalidState, "vm \(vm.name) is \(vm.state): stop it first or use rm -f")
            }
            _ = try await killUntraced(id.rawValue)
        case .starting:
            throw UniError(.invalidState, "vm \(vm.name) is starting: wait until it runs, then remove it")
        }
        guard vms[id] != nil else { return }  // an auto-removed VM is already gone
        try await deleteRecord(id)
    }

    // MARK: Internals

    @discardableResult
    private func instanceExited(_ id: VMID, instance: any HypervisorInstance, exit: VMExit) async -> VM {
        guard let runtime = runtimes[id], runtime.instance === instance, var vm = vms[id] else {
            if let pending = finalizing[id], pending.instance === instance {
                return await withCheckedContinuation { finalizing[id]?.waiters.append($0) }
            }
            return vms[id] ?? removed[id]!
        }
        runtimes[id] = nil
        finalizing[id] = (instance, [])
        let from = vm.state
        vm.state = .stopped
        vm.pid = nil
        vm.finishedAt = configuration.now()
        vm.exitCode = exit.exitCode
        vm.qemuExitStatus = exit.processStatus
        vm.exitSignal = exit.signal
        vm.stopReason = runtime.intent ?? (exit.signal != nil ? .crashed : .exited)
        if let stopReason = vm.stopReason, stopReason == .crashed {
            vm.lastError = "qemu was killed by signal \(exit.signal ?? 0)"
        }
        do {
            try await commit(vm, from: from, extra: [LogKeys.exitCode: "\(exit.exitCode)", LogKeys.reason: "\(vm.stopReason?.rawValue ?? "")"])
        } catch {
            logger.error("cannot record vm exit", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
            vms[id] = vm
        }
        consoles[id]?.finishFollowers()
        resumeExitWaiters(vm)
        for waiter in finalizing.removeValue(forKey: id)?.waiters ?? [] { waiter.resume(returning: vm) }
        if vm.config.autoRemove {
            do {
                try await deleteRecord(id)
            } catch {
                logger.error("cannot auto-remove vm", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
            }
        }
        return vm
    }

    private func resumeExitWaiters(_ vm: VM) {
        for waiter in exitWaiters.removeValue(forKey: vm.id) ?? [] { waiter.resume(returning: vm) }
    }

    private func deleteRecord(_ id: VMID) async throws {
        guard let vm = vms[id] else { return }
        do {
            try await store.delete(id)
            storeProblem = nil
        } catch {
            storeProblem = "\(error)"
            throw error
        }
        try? FileManager.default.removeItem(atPath: configuration.dataDirectory.vmDirectory(id))
        vms[id] = nil
        telemetry?.update(vms: Array(vms.values))
        consoles.removeValue(forKey: id)?.finishFollowers()
        removed[id] = vm
        removedOrder.append(id)
        if removedOrder.count > configuration.removedRecordsKept { removed[removedOrder.removeFirst()] = nil }
        resumeExitWaiters(vm)
        logTransition(vm, from: vm.state.rawValue, to: "removed")
    }

    /// Saves `vm` and, when that worked, makes it the current record and logs the transition.
    private func commit(_ vm: VM, from: VMState, durable: Bool = true, extra: Logger.Metadata = [:]) async throws {
        do {
            if durable { try await store.save(vm) } else { try await store.saveTransient(vm) }
            storeProblem = nil
        } catch {
            storeProblem = "\(error)"
            throw error
        }
        vms[vm.id] = vm
        telemetry?.update(vms: Array(vms.values))
        if from != vm.state { logTransition(vm, from: from.rawValue, to: vm.state.rawValue, extra: extra) }
    }

    private func logTransition(_ vm: VM, from: String, to: String, extra: Logger.Metadata = [:]) {
        var metadata: Logger.Metadata = [LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.from: "\(from)", LogKeys.to: "\(to)"]
        metadata.merge(extra) { $1 }
        logger.info("vm state transition", metadata: metadata)
    }

    private func makeConsole(_ id: VMID) -> ConsoleLog {
        ConsoleLog(path: configuration.dataDirectory.vmDirectory(id) + "/console.log", maximumFileBytes: configuration.consoleLogMaximumBytes)
    }

    /// Finds the VM a reference names: a full id, a name, or a unique id prefix.
    private func resolve(_ reference: String) throws -> VMID {
        if let id = try? VMID(reference), vms[id] != nil { return id }
        if let vm = vms.values.first(where: { $0.name == reference }) { return vm.id }
        let lowered = reference.lowercased()
        if !reference.isEmpty, lowered.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            let matches = vms.keys.filter { $0.rawValue.hasPrefix(lowered) }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw UniError.invalid("vm reference '\(reference)' is ambiguous: it matches \(matches.sorted().map(\.rawValue).joined(separator: ", "))")
            }
        }
        throw UniError(.notFound, "no such vm: \(reference)")
    }

    /// Runs one operation as a `vm.lifecycle` span with a `vm.<kind>` child,
    /// counts it when it succeeds, and marks both spans failed when it throws.
    private func traced(_ kind: LifecycleOperation, reference: String?, _ body: () async throws -> VM) async throws -> VM {
        let parent = tracer.startSpan(SpanNames.lifecycle, context: ServiceContext.current ?? .topLevel)
        parent.attributes[SpanNames.operationAttribute] = kind.rawValue
        let child = tracer.startSpan(SpanNames.operation(kind), context: parent.context)
        defer {
            child.end()
            parent.end()
        }
        do {
            let vm = try await ServiceContext.$current.withValue(child.context) { try await body() }
            for span in [parent, child] {
                span.attributes[SpanNames.vmIDAttribute] = vm.id.rawValue
                span.attributes[SpanNames.vmNameAttribute] = vm.name
                span.attributes[SpanNames.vmImageAttribute] = vm.config.image
            }
            telemetry?.recordOperation(kind)
            return vm
        } catch {
            let code = (error as? UniError)?.code.description ?? "internal"
            for span in [parent, child] {
                if let reference, let id = try? resolve(reference), let vm = vms[id] ?? removed[id] {
                    span.attributes[SpanNames.vmIDAttribute] = vm.id.rawValue
                    span.attributes[SpanNames.vmNameAttribute] = vm.name
                    span.attributes[SpanNames.vmImageAttribute] = vm.config.image
                }
                span.attributes[SpanNames.errorTypeAttribute] = code
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: (error as? UniError)?.message ?? "\(error)"))
            }
            throw error
        }
    }

    static func stateMessage(_ vm: VM, wanted operation: String) -> String {
        switch (operation, vm.state) {
        case ("start", .running), ("start", .starting): return "vm \(vm.name) is already \(vm.state)"
        case ("start", .stopping): return "vm \(vm.name) is stopping: wait for it to stop, then start it"
        case (_, .starting): return "vm \(vm.name) is starting: wait until it runs, then \(operation) it"
        default: return "vm \(vm.name) is not running (state: \(vm.state))"
        }
    }

    /// Waits for `instance` to exit; after `timeout` runs `onTimeout` (which
    /// must end the process) and keeps waiting. The exit waiter cannot be
    /// cancelled, so the timeout path ends the process rather than the wait.
    private func waitForExit(of instance: any HypervisorInstance, timeout: Duration, onTimeout: () -> Void) async -> VMExit {
        await withTaskGroup(of: VMExit?.self) { group in
            group.addTask { await instance.waitForExit() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            while let next = await group.next() {
                if let exit = next {
                    group.cancelAll()
                    return exit
                }
                onTimeout()
            }
            return await instance.waitForExit()
        }
    }
}
