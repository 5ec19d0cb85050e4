import Synchronization
import UniKit

/// A ``Hypervisor`` that runs no process: each VM follows a ``Script``.
///
/// Use it to drive ``VMManager`` through every transition without QEMU, and
/// make guests exit, ignore powerdown or fail to start on demand.
public final class ScriptedHypervisor: Hypervisor {
    /// How one VM behaves.
    public struct Script: Sendable {
        /// Printed on the console as soon as the VM runs.
        public var consoleOutput: String
        /// When set, the launch fails with this error.
        public var launchError: UniError?
        /// Whether an ACPI powerdown makes the guest exit (with code 0).
        public var honorsPowerdown: Bool
        /// When set, the guest exits with this code as soon as it runs.
        public var exitsWith: Int32?
        /// Whether a powerdown request hangs until the process ends, as QMP
        /// does with a QEMU that is stopped or wedged.
        public var powerdownHangs: Bool

        /// Creates a script.
        public init(consoleOutput: String = "", launchError: UniError? = nil, honorsPowerdown: Bool = true, exitsWith: Int32? = nil,
                    powerdownHangs: Bool = false) {
            self.consoleOutput = consoleOutput
            self.launchError = launchError
            self.honorsPowerdown = honorsPowerdown
            self.exitsWith = exitsWith
            self.powerdownHangs = powerdownHangs
        }
    }

    public let accelerator: Accelerator
    private let script: @Sendable (VM) -> Script
    private let instances: Mutex<[VMID: ScriptedInstance]>
    private let launches: Mutex<Int>
    private let launchHolds = Mutex<[SuspensionPoint]>([])
    private let orphans = Mutex<[VMID]>([])

    /// A hypervisor whose VMs follow `script`.
    public init(accelerator: Accelerator = .tcg, script: @escaping @Sendable (VM) -> Script = { _ in Script() }) {
        self.accelerator = accelerator
        self.script = script
        instances = Mutex([:])
        launches = Mutex(0)
    }

    /// How many launches were attempted.
    public var launchCount: Int { launches.withLock { $0 } }

    /// The latest instance of `id`, if it was launched.
    public func instance(for id: VMID) -> ScriptedInstance? { instances.withLock { $0[id] } }

    /// Every instance launched and not ended yet: more than one per VM is a bug.
    public var liveInstanceCount: [VMID: Int] {
        allInstances.withLock { all in
            all.reduce(into: [:]) { counts, entry in if !entry.instance.hasExited { counts[entry.id, default: 0] += 1 } }
        }
    }
    private let allInstances = Mutex<[(id: VMID, instance: ScriptedInstance)]>([])

    private let cgroups = Mutex<[VMID: CgroupPlacement?]>([:])

    /// The cgroup placement the latest launch of `id` was asked to join
    /// (`.some(nil)`: launched without one; `nil`: never launched).
    public func launchedCgroup(of id: VMID) -> CgroupPlacement?? { cgroups.withLock { $0[id] } }

    /// The VMs whose orphaned process a loading manager asked to stop.
    public var orphansStopped: [VMID] { orphans.withLock { $0 } }

    /// Holds the next launch (after it counted, before the VM runs) until
    /// the returned point is released.
    public func suspendNextLaunch() -> SuspensionPoint {
        let point = SuspensionPoint()
        launchHolds.withLock { $0.append(point) }
        return point
    }

    public func stopOrphan(of vm: VM, directory: String) async -> Bool {
        orphans.withLock { $0.append(vm.id) }
        return false
    }

    public func launch(_ request: LaunchRequest) async throws -> any HypervisorInstance {
        launches.withLock { $0 += 1 }
        cgroups.withLock { $0[request.vm.id] = .some(request.cgroup) }
        let hold = launchHolds.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        await hold?.suspend()
        let script = script(request.vm)
        if let error = script.launchError { throw error }
        let instance = ScriptedInstance(pid: Int32.random(in: 10_000...99_999), honorsPowerdown: script.honorsPowerdown && !script.powerdownHangs,
                                        powerdownHangs: script.powerdownHangs)
        request.console.append(Array(script.consoleOutput.utf8))
        instances.withLock { $0[request.vm.id] = instance }
        allInstances.withLock { $0.append((request.vm.id, instance)) }
        if let code = script.exitsWith { instance.exit(code: code) }
        return instance
    }
}

/// One scripted VM "process".
public final class ScriptedInstance: HypervisorInstance {
    public let pid: Int32?
    private let honorsPowerdown: Bool
    private let powerdownHangs: Bool
    private let exitValue = OneShot<VMExit>()
    private let powerdowns = Mutex(0)
    private let throttles = Mutex<[DiskThrottle]>([])
    private let throttleHolds = Mutex<[SuspensionPoint]>([])
    private let throttleError = Mutex<UniError?>(nil)

    /// A "process" with `pid` that exits on powerdown when `honorsPowerdown`.
    /// With `powerdownHangs`, a powerdown request returns only once the process has ended.
    public init(pid: Int32 = Int32.random(in: 10_000...99_999), honorsPowerdown: Bool = true, powerdownHangs: Bool = false) {
        self.pid = pid
        self.honorsPowerdown = honorsPowerdown
        self.powerdownHangs = powerdownHangs
    }

    /// How many powerdown requests reached the guest.
    public var powerdownRequests: Int { powerdowns.withLock { $0 } }

    /// Whether the "process" has ended.
    public var hasExited: Bool { exitValue.value != nil }

    /// Makes the guest exit by itself with `code`, as `isa-debug-exit` would.
    public func exit(code: Int32) { finish(VMExit(exitCode: code, processStatus: code * 2 + 1)) }

    /// Makes the process die of `signal`, as a QEMU crash would.
    public func crash(signal: Int32) { finish(VMExit(exitCode: 128 + signal, signal: signal)) }

    public func requestPowerdown() async throws {
        powerdowns.withLock { $0 += 1 }
        if powerdownHangs {
            _ = await exitValue.wait()
            throw UniError(.hypervisorFailed, "QMP connection closed by QEMU")
        }
        if honorsPowerdown { exitValue.resolve(VMExit(exitCode: 0, processStatus: 1)) }
    }

    public func forceStop() { crash(signal: 9) }

    /// The disk limits set on the running "process", in order.
    public var diskThrottles: [DiskThrottle] { throttles.withLock { $0 } }

    /// Holds the next ``setDiskThrottle(_:)`` (before it takes effect) until
    /// the returned point is released.
    public func suspendNextThrottle() -> SuspensionPoint {
        let point = SuspensionPoint()
        throttleHolds.withLock { $0.append(point) }
        return point
    }

    /// Makes every later ``setDiskThrottle(_:)`` throw `error` (`nil`: succeed again).
    public func refuseDiskThrottles(_ error: UniError?) { throttleError.withLock { $0 = error } }

    public func setDiskThrottle(_ throttle: DiskThrottle) async throws {
        let hold = throttleHolds.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        await hold?.suspend()
        if let error = throttleError.withLock({ $0 }) { throw error }
        throttles.withLock { $0.append(throttle) }
    }

    public func waitForExit() async -> VMExit { await exitValue.wait() }

    private func finish(_ exit: VMExit) { exitValue.resolve(exit) }
}
