import Foundation
import Logging

extension VMManager {
    /// Stops every running VM (graceful, then forced after the stop timeout),
    /// as a daemon does on its way out: each stop is recorded as
    /// `daemon_shutdown`, which an `always` restart policy undoes at the
    /// next ``load()``. Failures are logged: nobody else is there to hear them.
    public func stopAll() async {
        // Every VM, each looked at inside its gate: a start in flight (a
        // restart, say) finishes first and is then stopped, not skipped.
        let all = table.all
        await withTaskGroup(of: Void.self) { group in
            for vm in all {
                group.addTask {
                    do {
                        let hasProcess = try await self.withGate(vm.id) { await self.table[vm.id]?.state.hasProcess ?? false }
                        guard hasProcess else { return }
                        _ = try await self.traced(.stop, reference: vm.id.rawValue) {
                            try await self.stopUntraced(vm.id.rawValue, timeout: nil, reason: .daemonShutdown)
                        }
                    } catch let error as UniError where error.code == .invalidState || error.code == .notFound {
                        // Stopped or removed meanwhile: nothing left to do.
                    } catch {
                        self.logger.error("cannot stop vm at shutdown", metadata: [
                            LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.error: "\(error)",
                        ])
                    }
                }
            }
        }
    }

    /// The exit watcher of one process: records its end, whoever caused it.
    func superviseExit(of watch: ExitWatch) async {
        let exit = await watch.instance.waitForExit()
        // A failed save is logged and retried by `retryUnsavedRecords`.
        _ = try? await recordExit(of: watch.id, instance: watch.instance, exit: exit)
    }

    /// Records that `instance` of VM `id` ended, once: the first caller (the
    /// exit watcher, `stop`, `kill`) writes the stopped record, later ones
    /// get that same record.
    /// - Throws: ``UniError`` (`storeFailed`) when the record could not be
    ///   saved; the VM is stopped in memory all the same and saved later.
    func recordExit(of id: VMID, instance: any HypervisorInstance, exit: VMExit) async throws -> VM {
        try await withGate(id) { try await recordExitInGate(of: id, instance: instance, exit: exit) }
    }

    /// ``recordExit(of:instance:exit:)`` for a caller that holds the gate.
    func recordExitInGate(of id: VMID, instance: any HypervisorInstance, exit: VMExit) async throws -> VM {
        guard let runtime = runtimes[id], runtime.instance === instance, var vm = table[id] else {
            if let recorded = recordedExits[id], recorded.instance == ObjectIdentifier(instance) { return recorded.vm }
            if let vm = table[id] ?? table.removedRecord(id) { return vm }
            throw UniError(.notFound, "no such vm: \(id)")
        }
        runtimes[id] = nil
        let from = vm.state
        vm.state = .stopped
        vm.pid = nil
        vm.finishedAt = configuration.now()
        vm.exitCode = exit.exitCode
        vm.qemuExitStatus = exit.processStatus
        vm.exitSignal = exit.signal
        vm.stopReason = runtime.intent ?? (exit.signal != nil ? .crashed : .exited)
        // Read before the cgroup goes: a SIGKILL nobody here sent, with an
        // OOM kill counted in the VM's cgroup, is the kernel's doing.
        if runtime.intent == nil, exit.signal == SIGKILL, let placement = runtime.placement, backends.cgroups.oomKilled(placement) {
            vm.stopReason = .oomKilled
        }
        releaseCgroup(runtime.placement, of: id)
        // A stopped VM has no health; its last failed probe stays in `last_health_error`.
        vm.health = .none
        vm.healthFailures = 0
        if vm.stopReason == .crashed {
            vm.lastError = "qemu was killed by signal \(exit.signal ?? 0)"
        } else if vm.stopReason == .oomKilled {
            vm.lastError = "qemu was killed by the kernel: its cgroup reached the memory ceiling (memory max \(vm.config.quota.memoryMax.map { "\($0)" } ?? "none"))"
        }
        let failed = vm.stopReason == .crashed || vm.stopReason == .oomKilled
        vm.recordExit(ExitRecord(finishedAt: vm.finishedAt!, reason: vm.stopReason ?? .exited, exitCode: exit.exitCode, signal: exit.signal,
                                 error: failed ? vm.lastError : nil))
        var failure: (any Error & Sendable)?
        do {
            try await commit(vm, from: from, extra: [LogKeys.exitCode: .stringConvertible(exit.exitCode), LogKeys.reason: "\(vm.stopReason?.rawValue ?? "")"])
        } catch {
            // The process is gone whatever the disk says: memory tells the truth.
            keepUnsaved(vm, error)
            logTransition(vm, from: from.rawValue, to: vm.state.rawValue, extra: ["saved": "false"])
            failure = error
        }
        recordedExits[id] = (ObjectIdentifier(instance), vm)
        if let exit = vm.exits.last { recordExitEvent(vm, exit) }
        consoles[id]?.finishFollowers()
        resumeExitWaiters(vm)
        if failure == nil, vm.config.autoRemove {
            do {
                try await deleteRecord(id)
            } catch {
                logger.error("cannot auto-remove vm", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
            }
        }
        await scheduleRestartIfDue(vm)
        if let failure {
            let reason = (failure as? UniError)?.message ?? "\(failure)"
            throw UniError(.storeFailed, "vm \(vm.name) \(vm.stopReason.map(VMManager.describe) ?? "stopped") (exit code \(exit.exitCode)), but \(reason); unid keeps retrying the write (see /health)", cause: failure)
        }
        return vm
    }

    /// Makes `vm` the current record although the store refused it, and
    /// queues it for ``retryUnsavedRecords()``. Callers hold the VM's gate.
    func keepUnsaved(_ vm: VM, _ error: any Error) {
        table.put(vm)
        unsaved[vm.id] = (error as? UniError)?.message ?? "\(error)"
        telemetry?.update(vms: table.all)
        logger.error("cannot save vm record; will retry", metadata: [
            LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", "state": "\(vm.state)", LogKeys.error: "\(unsaved[vm.id] ?? "")",
        ])
    }

    /// Writes again, every ``VMManagerConfiguration/storeRetryInterval``,
    /// the records a failing store refused, until cancelled.
    func retryUnsavedRecords() async {
        while !Task.isCancelled {
            do {
                try await configuration.clock.sleep(for: configuration.storeRetryInterval)
            } catch {
                return
            }
            await saveUnsavedRecords()
        }
    }

    /// One pass over the unsaved records; tests call it directly.
    public func saveUnsavedRecords() async {
        for id in unsaved.keys.sorted() {
            _ = try? await withGate(id) {
                guard unsaved[id] != nil, let vm = table[id] else { return }
                do {
                    try await commit(vm, from: vm.state)
                    logger.info("saved vm record after an earlier failure", metadata: [LogKeys.vmID: "\(id)", "state": "\(vm.state)"])
                    if vm.state == .stopped, vm.config.autoRemove { try await deleteRecord(id) }
                } catch {
                    unsaved[id] = (error as? UniError)?.message ?? "\(error)"
                }
            }
        }
    }

    /// Waits for `instance` to exit; after `timeout` runs `onTimeout` (which
    /// must end the process) and keeps waiting. The exit waiter cannot be
    /// cancelled, so the timeout path ends the process rather than the wait.
    func waitForExit(of instance: any HypervisorInstance, timeout: Duration, onTimeout: () -> Void) async -> VMExit {
        let clock = configuration.clock
        return await withTaskGroup(of: VMExit?.self) { group in
            group.addTask { await instance.waitForExit() }
            group.addTask {
                try? await clock.sleep(for: timeout)
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

    /// The `exit` event of one end of a VM's process.
    func recordExitEvent(_ vm: VM, _ exit: ExitRecord) {
        var attributes = ["reason": exit.reason.rawValue]
        if let code = exit.exitCode { attributes["exit_code"] = "\(code)" }
        if let signal = exit.signal { attributes["signal"] = "\(signal)" }
        if let error = exit.error { attributes["error"] = error }
        record(.exit, vm, attributes)
    }

    // MARK: Health checks

    /// Probes one run of a VM every interval until its process ends.
    func superviseHealth(of watch: ExitWatch) async {
        while !Task.isCancelled {
            guard let check = table[watch.id]?.config.healthCheck else { return }
            do {
                try await configuration.clock.sleep(for: check.interval)
            } catch {
                return
            }
            guard runtimes[watch.id]?.instance === watch.instance, let vm = table[watch.id], vm.state == .running,
                  let mapping = vm.config.ports.first(where: { $0.guestPort == check.guestPort && $0.transportProtocol == .tcp }) else { return }
            let host = mapping.hostAddress.flatMap { $0 == "0.0.0.0" || $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
            let result = await backends.healthProber.probe(check, host: host, port: mapping.hostPort)
            guard await recordHealth(result, of: watch) else { return }
        }
    }

    /// Applies one probe's result to the VM's health; an unhealthy VM whose
    /// policy restarts is killed (its exit then brings the restart).
    /// - Returns: whether probing goes on.
    func recordHealth(_ result: HealthProbeResult, of watch: ExitWatch) async -> Bool {
        let goOn = try? await withGate(watch.id) { () -> Bool in
            guard runtimes[watch.id]?.instance === watch.instance, var vm = table[watch.id], vm.state == .running,
                  let check = vm.config.healthCheck else { return false }
            let previous = vm.health
            let now = configuration.now()
            vm.lastHealthCheckAt = now
            switch result {
            case .healthy:
                vm.health = .healthy
                vm.healthFailures = 0
                vm.lastHealthError = nil
            case .unhealthy(let reason):
                vm.lastHealthError = reason
                let inStartPeriod = previous == .starting
                    && (vm.startedAt.map { now.timeIntervalSince($0) * 1000 < Double(check.startPeriod.wholeMilliseconds) } ?? false)
                if !inStartPeriod {
                    vm.healthFailures += 1
                    if vm.healthFailures >= check.retries { vm.health = .unhealthy }
                }
            }
            do {
                // A change is kept durably; the probe time alone is not worth an fsync.
                try await commit(vm, from: vm.state, durable: previous != vm.health)
            } catch {
                keepUnsaved(vm, error)
            }
            guard previous != vm.health else { return true }
            record(.health, vm, ["from": previous.rawValue, "to": vm.health.rawValue, "error": vm.lastHealthError ?? ""].filter { !$0.value.isEmpty })
            logger.info("vm health changed", metadata: [
                LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.from: "\(previous.rawValue)", LogKeys.to: "\(vm.health.rawValue)",
                LogKeys.reason: "\(vm.lastHealthError ?? "")",
            ])
            if vm.health == .unhealthy, vm.config.restartPolicy.mode != .never {
                runtimes[watch.id]?.intent = .unhealthy
                watch.instance.forceStop()
                return false
            }
            return true
        }
        return goOn ?? false
    }

    // MARK: Restart policy

    /// Whether the policy of `vm`, just stopped, asks for a restart.
    static func restartIsDue(_ vm: VM) -> Bool {
        guard vm.state == .stopped, let reason = vm.stopReason, !reason.isRequested, reason != .daemonShutdown else { return false }
        switch vm.config.restartPolicy.mode {
        case .never: return false
        case .always: return true
        case .onFailure:
            switch reason {
            case .exited: return vm.exitCode != 0
            case .crashed, .failedToStart, .unhealthy, .oomKilled: return true
            case .stopped, .stopTimeout, .killed, .daemonRecovered, .daemonShutdown: return false
            }
        }
    }

    /// Plans the next restart of `vm` when its policy asks for one and its
    /// row of restarts is not used up. Callers hold the VM's gate.
    func scheduleRestartIfDue(_ vm: VM) async {
        guard !shuttingDown, table[vm.id] != nil, VMManager.restartIsDue(vm) else { return }
        let backoff = configuration.restartBackoff
        // A run as long as `stableRun` ends the row: the count starts again.
        if let started = vm.startedAt, let finished = vm.finishedAt, vm.stopReason != .failedToStart,
           finished.timeIntervalSince(started) * 1000 >= Double(backoff.stableRun.wholeMilliseconds) {
            restartStreaks[vm.id] = nil
        }
        let attempt = (restartStreaks[vm.id] ?? 0) + 1
        if let limit = vm.config.restartPolicy.maximumRetries, attempt > limit {
            restartStreaks[vm.id] = nil
            var gaveUp = vm
            gaveUp.restartGaveUp = true
            do {
                try await commit(gaveUp, from: gaveUp.state)
            } catch {
                keepUnsaved(gaveUp, error)
            }
            record(.restartGaveUp, vm, ["policy": "\(vm.config.restartPolicy)"])
            logger.warning("restart policy gave up: too many restarts in a row", metadata: [
                LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", "policy": "\(vm.config.restartPolicy)",
            ])
            return
        }
        scheduleRestart(of: vm, attempt: attempt, delay: backoff.delay(beforeAttempt: attempt))
    }

    /// Queues restart number `attempt` of a row, after `delay`.
    func scheduleRestart(of vm: VM, attempt: Int, delay: Duration) {
        nextRestartToken += 1
        pendingRestarts[vm.id] = nextRestartToken
        restartStreaks[vm.id] = attempt
        logger.info("restart planned", metadata: [
            LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", "attempt": .stringConvertible(attempt), "delay_ms": .stringConvertible(delay.wholeMilliseconds),
            LogKeys.reason: "\(vm.stopReason?.rawValue ?? "")",
        ])
        record(.restart, vm, ["attempt": "\(attempt)", "delay_ms": "\(delay.wholeMilliseconds)", "reason": vm.stopReason?.rawValue ?? ""])
        jobContinuation.yield(.restart(RestartRequest(id: vm.id, token: nextRestartToken, delay: delay)))
    }

    /// Waits out a restart's delay, then starts the VM unless someone
    /// started, stopped, killed or removed it meanwhile. A start that fails
    /// is the next failure of the row.
    func restart(_ request: RestartRequest) async {
        defer { restartsHandled += 1 }
        do {
            try await configuration.clock.sleep(for: request.delay)
        } catch {
            return
        }
        _ = try? await withGate(request.id) {
            guard !shuttingDown, pendingRestarts[request.id] == request.token, let vm = table[request.id], vm.state == .stopped else { return }
            pendingRestarts[request.id] = nil
            do {
                // Not cancelled by a shutdown that begins meanwhile: a launch
                // cut short would read as `failed_to_start`; the shutdown's
                // stop queues behind this start instead.
                _ = try await Task { try await self.startInGate(request.id, confirmation: .immediate, restart: true) }.value
            } catch {
                logger.warning("restart failed", metadata: [LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.error: "\(error)"])
                guard var failed = table[request.id] else { return }
                if failed.exits.count == vm.exits.count && failed.exits.last == vm.exits.last {
                    // It failed before QEMU was launched (the image is gone,
                    // the store refused `starting`): record it as a failed
                    // start, so the row of restarts counts it.
                    let message = (error as? UniError)?.message ?? "\(error)"
                    failed.stopReason = .failedToStart
                    failed.lastError = message
                    failed.finishedAt = configuration.now()
                    failed.recordExit(ExitRecord(finishedAt: failed.finishedAt!, reason: .failedToStart, error: message))
                    do {
                        try await commit(failed, from: failed.state)
                    } catch {
                        keepUnsaved(failed, error)
                    }
                    if let exit = failed.exits.last { recordExitEvent(failed, exit) }
                }
                await scheduleRestartIfDue(failed)
            }
        }
    }

    static func describe(_ reason: StopReason) -> String {
        switch reason {
        case .exited: return "exited"
        case .stopped: return "stopped"
        case .stopTimeout: return "was killed after its stop timeout"
        case .killed: return "was killed"
        case .crashed: return "crashed"
        case .failedToStart: return "failed to start"
        case .daemonRecovered: return "was recovered"
        case .daemonShutdown: return "was stopped by the daemon's shutdown"
        case .unhealthy: return "was stopped as unhealthy"
        case .oomKilled: return "was OOM-killed by the kernel"
        }
    }
}
