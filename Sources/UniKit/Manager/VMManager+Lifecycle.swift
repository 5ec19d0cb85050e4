import Foundation
import Logging
import Tracing

extension VMManager {
    // MARK: Create

    /// Creates a VM and starts it; when the start fails nothing is left behind.
    /// - Throws: ``UniError`` from ``create(_:)`` or ``start(_:)``.
    public func run(_ config: VMConfig) async throws -> VM {
        let vm = try await create(config, persisted: false)
        return try await traced(.start, reference: vm.id.rawValue) {
            try await self.withGate(vm.id.rawValue) { id, _ in
                do {
                    return try await self.startInGate(id, confirmation: .immediate)
                } catch {
                    // The VM was never told about as created: take it back.
                    try? await self.deleteRecord(id)
                    throw error
                }
            }
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
        let kind: ImageKind
        var binding: ImageBinding?
        // Held until the VM is in the table, where `rmi` sees it.
        var imagePin: ImageStore.Pin?
        defer { withExtendedLifetime(imagePin) {} }
        if let reference = config.imageReference {
            let image = try await resolveImage(reference)
            binding = image.binding
            imagePin = image.pin
            kind = image.kind
            config.applyDefaults(of: image.config)
        } else {
            // Off the actor: a slow or blocking file must not stall the other requests.
            kind = try await ImageInspector.inspect(config.image)
        }
        config.memory = config.effectiveMemory
        config.cpus = config.effectiveCPUs
        // Again with the image's defaults (its memory against --memory-max, ...).
        config = try config.validated()
        try config.validate(for: kind)
        var id = VMID.random()
        while table.contains(id) || table.isUnreadable(id) || gates.isHeld(id) { id = VMID.random() }
        let name = config.name ?? "vm-" + id.rawValue.prefix(6)
        // Held from here, across the write below, so two creates of one name cannot both pass.
        try table.reserveName(name, for: id)
        var vm = VM(id: id, name: name, config: config, imageKind: kind, createdAt: configuration.now())
        vm.image = binding
        if persisted {
            let directory = configuration.dataDirectory.vmDirectory(id)
            do {
                try FileVMStore.makeFolder(directory)
                try await persist("create vm \(name)") { try await self.store.save(vm) }
            } catch {
                table.releaseName(name)
                try? FileVMStore.removeFolder(directory)
                throw (error as? UniError) ?? UniError(.storeFailed, "cannot create '\(directory)': \(error)", cause: error)
            }
        }
        table.put(vm)
        telemetry?.update(vms: table.all)
        consoles[id] = makeConsole(id)
        logTransition(vm, from: "none", to: vm.state.rawValue)
        return vm
    }

    // MARK: Start

    /// Starts a created or stopped VM and returns once it runs.
    /// - Throws: ``UniError``: `invalidState` when it is not created or
    ///   stopped; `conflict` for a busy host port; `hypervisorFailed` with
    ///   QEMU's stderr. A failed start leaves the VM stopped with `last_error`.
    public func start(_ reference: String) async throws -> VM {
        try await start(reference, confirmation: .immediate)
    }

    private func start(_ reference: String, confirmation: StartConfirmation) async throws -> VM {
        try await traced(.start, reference: reference) {
            try await self.withGate(reference) { id, _ in
                // A start by hand replaces a restart the policy had planned.
                self.pendingRestarts[id] = nil
                self.restartStreaks[id] = nil
                return try await self.startInGate(id, confirmation: confirmation)
            }
        }
    }

    /// The start itself; the caller holds the VM's gate.
    /// - Parameter restart: the restart policy's start (counted in the record).
    func startInGate(_ id: VMID, confirmation: StartConfirmation, restart: Bool = false) async throws -> VM {
        let requested = ContinuousClock.now
        guard var vm = table[id] else { throw UniError(.notFound, "no such vm: \(id)") }
        try VMManager.require(vm, canBecome: .starting, for: "start")
        if restart {
            vm.restartCount += 1
            vm.lastRestartAt = configuration.now()
        }
        vm.restartGaveUp = false
        if let image = vm.image, access(image.bootPath, F_OK) != 0 {
            throw UniError(.notFound, "image \(image.reference) (\(image.digest)) of vm \(vm.name) is no longer in the image store: import or pull it again, or create the vm anew")
        }
        // Again at each start: the file may have been replaced (by a FIFO,
        // say) since the VM was created, and QEMU would hang opening it.
        _ = try await ImageInspector.inspect(vm.bootImagePath)
        let previous = vm.state
        let directory = configuration.dataDirectory.vmDirectory(id)
        do {
            try FileVMStore.makeFolder(directory)
        } catch {
            throw UniError(.storeFailed, "cannot create '\(directory)': \(error.localizedDescription)", cause: error)
        }
        vm.state = .starting
        vm.lastError = nil
        // Transient: no caller sees `starting`, and the `running` or
        // `stopped` record that follows is saved durably (docs/architecture.md).
        try await commit(vm, from: previous, durable: false)
        let console = console(of: id)
        console.prepare()
        let instance: any HypervisorInstance
        var placement: CgroupPlacement?
        do {
            // After `starting` is written: a daemon that dies from here on
            // leaves a record that tells the next one to look for the cgroup.
            vm.cgroup = nil
            let cgroup = try prepareCgroup(for: vm)
            placement = cgroup.placement
            vm.cgroup = cgroup.status
            instance = try await hypervisor.launch(LaunchRequest(vm: vm, directory: directory, console: console, confirmation: confirmation,
                                                                 cgroup: placement))
        } catch {
            // A guest that outgrows its ceiling while the start is confirmed
            // is OOM-killed, not a start that failed.
            let oomKilled = placement.map { backends.cgroups.oomKilled($0) } ?? false
            // The launch left no process behind, so the cgroup is empty.
            releaseCgroup(placement, of: id)
            var failure = (error as? UniError) ?? UniError(.hypervisorFailed, "\(error)")
            if oomKilled {
                failure = UniError(.hypervisorFailed, "qemu was killed by the kernel while starting: its cgroup reached the memory ceiling (memory max \(vm.config.quota.memoryMax.map { "\($0)" } ?? "none"))")
            }
            let reason: StopReason = oomKilled ? .oomKilled : .failedToStart
            vm.state = .stopped
            vm.stopReason = reason
            vm.lastError = failure.message
            vm.finishedAt = configuration.now()
            vm.recordExit(ExitRecord(finishedAt: vm.finishedAt!, reason: reason, error: failure.message))
            do {
                try await commit(vm, from: .starting)
            } catch {
                keepUnsaved(vm, error)
            }
            if let exit = vm.exits.last { recordExitEvent(vm, exit) }
            console.finishFollowers()
            resumeExitWaiters(vm)
            throw failure
        }
        joinLateCgroup(placement, pid: instance.pid, of: id)
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
        vm.health = vm.config.healthCheck == nil ? .none : .starting
        vm.healthFailures = 0
        vm.lastHealthError = nil
        do {
            try await commit(vm, from: .starting)
        } catch {
            // Without a durable record the VM must not keep running.
            instance.forceStop()
            _ = await instance.waitForExit()
            releaseCgroup(placement, of: id)
            vm.state = .stopped
            vm.pid = nil
            vm.stopReason = .failedToStart
            vm.lastError = (error as? UniError)?.message ?? "\(error)"
            vm.finishedAt = configuration.now()
            vm.recordExit(ExitRecord(finishedAt: vm.finishedAt!, reason: .failedToStart, error: vm.lastError))
            keepUnsaved(vm, error)
            console.finishFollowers()
            resumeExitWaiters(vm)
            throw error
        }
        // Registered only after the commit, with no suspension in between, so
        // an exit (even an instant one) is recorded after `running`, never before.
        runtimes[id] = Runtime(instance: instance, intent: nil, placement: placement)
        jobContinuation.yield(.exit(ExitWatch(id: id, instance: instance)))
        if vm.config.healthCheck != nil { jobContinuation.yield(.health(ExitWatch(id: id, instance: instance))) }
        telemetry?.recordStart(duration: ContinuousClock.now - requested)
        return vm
    }

    // MARK: Stop and kill

    /// Asks the guest to power off, waits up to `timeout` (the configured stop
    /// timeout when `nil`), then kills QEMU. Returns the stopped record.
    /// A second `stop` of a stopping VM waits for the same end.
    /// - Throws: ``UniError``: `invalidState` when the VM is not running;
    ///   `storeFailed` when it stopped but its record could not be saved.
    public func stop(_ reference: String, timeout: Duration? = nil) async throws -> VM {
        try await traced(.stop, reference: reference) { try await self.stopUntraced(reference, timeout: timeout, reason: .stopped) }
    }

    /// A stopped VM waiting for its restart: the stop (or kill) is the
    /// person's word, so the restart is called off and the VM returned.
    /// The person's word is saved as the stop reason (`stopped`, `killed`),
    /// so a new daemon does not plan the restart again.
    private func cancelPendingRestart(_ id: VMID, _ vm: VM, by reason: StopReason) async throws -> VM? {
        guard runtimes[id] == nil, pendingRestarts.removeValue(forKey: id) != nil else { return nil }
        restartStreaks[id] = nil
        logger.info("restart called off", metadata: [LogKeys.vmID: "\(id)", LogKeys.vmName: "\(vm.name)", "by": "\(reason.rawValue)"])
        var stopped = vm
        stopped.stopReason = reason
        try await commit(stopped, from: vm.state)
        return stopped
    }

    /// - Parameter reason: `stopped`, or `daemon_shutdown` when the daemon stops it on its way out.
    func stopUntraced(_ reference: String, timeout: Duration?, reason: StopReason) async throws -> VM {
        enum Plan { case wait(VMID, any HypervisorInstance, first: Bool), done(VM) }
        let plan = try await withGate(reference) { id, vm -> Plan in
            if let cancelled = try await cancelPendingRestart(id, vm, by: .stopped) { return .done(cancelled) }
            // A second stop of a stopping VM waits for the same end.
            guard let runtime = runtimes[id], vm.state == .stopping || vm.state.canTransition(to: .stopping) else {
                throw UniError(.invalidState, VMManager.stateMessage(vm, wanted: "stop"))
            }
            guard vm.state != .stopping else { return .wait(id, runtime.instance, first: false) }
            var stopping = vm
            stopping.state = .stopping
            try await commit(stopping, from: vm.state)
            runtimes[id]?.intent = reason
            return .wait(id, runtime.instance, first: true)
        }
        guard case .wait(let id, let instance, let firstStop) = plan else {
            if case .done(let vm) = plan { return vm }
            preconditionFailure("unreachable")
        }
        // Outside the gate, and timed with the wait: a QEMU that does not
        // answer QMP cannot stretch the stop, and a `kill` or `rm -f`
        // meanwhile ends it early.
        async let powerdown: Void = firstStop ? VMManager.requestPowerdown(instance, id: id, logger: logger) : ()
        let limit = timeout ?? configuration.stopTimeout
        let exit = await waitForExit(of: instance, timeout: limit) {
            if self.runtimes[id]?.instance === instance, self.runtimes[id]?.intent == .stopped {
                self.runtimes[id]?.intent = .stopTimeout
            }
            self.logger.info("stop timed out; killing", metadata: [LogKeys.vmID: "\(id)", "timeout": "\(limit)"])
            instance.forceStop()
        }
        // The process is gone, so its QMP socket is closed and this returns at once.
        await powerdown
        return try await recordExit(of: id, instance: instance, exit: exit)
    }

    /// Kills the VM's process at once (SIGKILL). Returns the stopped record.
    /// - Throws: ``UniError``: `invalidState` when the VM is not running;
    ///   `storeFailed` when it died but its record could not be saved.
    public func kill(_ reference: String) async throws -> VM {
        try await traced(.kill, reference: reference) {
            try await self.withGate(reference) { id, vm in try await self.killInGate(id, vm) }
        }
    }

    /// Sends the ACPI power button; a failure leaves the stop to its timeout.
    nonisolated static func requestPowerdown(_ instance: any HypervisorInstance, id: VMID, logger: Logger) async {
        do {
            try await instance.requestPowerdown()
        } catch {
            logger.warning("powerdown request failed; will kill after the timeout", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
        }
    }

    /// The kill itself; the caller holds the VM's gate, which it keeps until
    /// the exit is recorded (a SIGKILLed QEMU ends within milliseconds).
    /// Only a VM with a process has a runtime (`starting` is never seen
    /// inside a gate: the start holds it).
    private func killInGate(_ id: VMID, _ vm: VM) async throws -> VM {
        if let cancelled = try await cancelPendingRestart(id, vm, by: .killed) { return cancelled }
        guard let runtime = runtimes[id], vm.state.canTransition(to: .stopped) else {
            throw UniError(.invalidState, VMManager.stateMessage(vm, wanted: "kill"))
        }
        runtimes[id]?.intent = .killed
        runtime.instance.forceStop()
        let exit = await runtime.instance.waitForExit()
        return try await recordExitInGate(of: id, instance: runtime.instance, exit: exit)
    }

    // MARK: Remove

    /// Removes a VM's record and folder. A running VM needs `force`, which kills it first.
    /// - Throws: ``UniError`` (`invalidState`) for a running VM without `force`.
    public func remove(_ reference: String, force: Bool = false) async throws {
        _ = try await traced(.remove, reference: reference) {
            try await self.withGate(reference) { id, vm -> VM in
                var vm = vm
                if !vm.state.isRemovable {
                    guard force else {
                        throw UniError(.invalidState, "vm \(vm.name) is \(vm.state): stop it first or use rm -f")
                    }
                    vm = try await self.killInGate(id, vm)
                }
                // An auto-removed VM is already gone.
                if self.table[id] != nil { try await self.deleteRecord(id) }
                // Its image's blobs may have waited for it (an `rmi -f`).
                if vm.image != nil { self.images.collectGarbage(keepingManifests: self.imagesInUse()) }
                return vm
            }
        }
    }
}
