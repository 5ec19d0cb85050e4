import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs each VM as one `qemu-system-x86_64` process.
///
/// The serial console arrives on QEMU's stdout and goes to the VM's
/// ``ConsoleLog``; the VM counts as running once QMP answers `query-status`
/// with `running`. Exits are noticed by a thread blocked in `waitpid`.
public struct QEMUHypervisor: Hypervisor {
    /// The QEMU binary's absolute path.
    public let binaryPath: String
    public let accelerator: Accelerator
    /// How long QEMU may take to answer QMP before the start fails.
    public let startTimeout: Duration
    /// Whether VMs count their network bytes (``QEMUCommandLine/networkDumpArguments``);
    /// off, their network counters are unavailable. The cost is measured in
    /// `docs/performance.md`.
    public let countsNetworkTraffic: Bool

    /// A hypervisor that runs `binaryPath` with `accelerator`.
    public init(binaryPath: String, accelerator: Accelerator, startTimeout: Duration = .seconds(30), countsNetworkTraffic: Bool = true) {
        self.binaryPath = binaryPath
        self.accelerator = accelerator
        self.startTimeout = startTimeout
        self.countsNetworkTraffic = countsNetworkTraffic
    }

    /// Finds `name` (or an absolute/relative path) on `PATH`.
    /// - Throws: ``UniError`` (`unavailable`) naming the binary and the package to install.
    public static func locateBinary(_ name: String = "qemu-system-x86_64", environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if name.contains("/") {
            guard access(name, X_OK) == 0 else {
                throw UniError(.unavailable, "QEMU binary '\(name)' is missing or not executable")
            }
            return DataDirectory.absolute(name)
        }
        for folder in (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(folder)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw UniError(.unavailable, "'\(name)' not found on PATH: install QEMU (apt-get install qemu-system-x86, or run scripts/setup.sh)")
    }

    public func launch(_ request: LaunchRequest) async throws -> any HypervisorInstance {
        // Again at launch: a record written before a check existed (or
        // edited on disk) must not put an unchecked value on the command line.
        _ = try request.vm.config.validated()
        let commandLine = QEMUCommandLine(vm: request.vm, directory: request.directory, accelerator: accelerator, countsNetworkTraffic: countsNetworkTraffic)
        try DataDirectory.checkSocketPath(commandLine.qmpSocketPath)
        for port in request.vm.config.ports {
            try HostPortProbe.checkAvailable(port)
        }
        unlink(commandLine.qmpSocketPath)
        if !request.vm.config.environment.isEmpty {
            // Read by this QEMU at its start only: no fsync on the way to the boot.
            try FileVMStore.writeAtomically(Data(commandLine.environmentFileContents.utf8), to: commandLine.environmentFilePath, sync: false)
        }
        // Before the spawn: QEMU's open of a FIFO waits for its reader.
        let network = countsNetworkTraffic ? try NetworkCounter.start(at: NetworkCounter.Paths(VMDirectory(path: request.directory))) : nil
        let console = request.console
        let process: ChildProcess
        do {
            process = try ChildProcess(executable: binaryPath, arguments: commandLine.arguments,
                                       cgroupProcsFiles: request.cgroup?.procsFiles ?? []) { console.append($0) }
        } catch {
            network?.stop()
            throw error
        }
        // Read by orphan recovery when a daemon dies before recording the
        // pid; not fsynced: it matters only while this boot's QEMU lives.
        try? FileVMStore.writeAtomically(Data("\(process.pid)\n".utf8), to: VMDirectory(path: request.directory).pidFilePath, sync: false)
        let instance = QEMUInstance(process: process, qmp: QMPChannel(client: QMPClient(socketPath: commandLine.qmpSocketPath)),
                                    network: network, hasDisk: request.vm.imageKind == .disk)
        do {
            try await waitUntilRunning(instance, confirmation: request.confirmation, console: console)
        } catch {
            process.send(SIGKILL)
            _ = await process.waitForTermination()
            network?.stop()
            throw error
        }
        return instance
    }

    private func waitUntilRunning(_ instance: QEMUInstance, confirmation: StartConfirmation, console: ConsoleLog) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + startTimeout
        if case .afterFirstLine(let grace) = confirmation {
            let end = clock.now + grace
            while !console.hasPrintedLine, instance.process.termination == nil, clock.now < end {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        var lastError: (any Error)?
        while clock.now < deadline {
            if let termination = instance.process.termination {
                // A guest may run and exit before QMP is even polled: that
                // is a run (its exit is recorded), not a failed start.
                if QEMUHypervisor.isGuestExit(termination, standardError: instance.process.standardError) { return }
                throw UniError(.hypervisorFailed, "qemu failed to start (\(termination)): \(instance.process.standardError.isEmpty ? "no output" : instance.process.standardError)")
            }
            if access(instance.qmp.socketPath, F_OK) == 0 {
                do {
                    let status = try await instance.qmp.execute("query-status")
                    if status["running"]?.boolValue == true { return }
                    lastError = UniError(.hypervisorFailed, "guest status is '\(status["status"]?.stringValue ?? "unknown")'")
                } catch {
                    lastError = error
                }
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw UniError(.hypervisorFailed, "qemu did not report the guest running within \(startTimeout)\(lastError.map { ": \($0)" } ?? "")")
    }
}

extension QEMUHypervisor {
    /// Whether QEMU ended because the guest did: a clean power-off (0), or
    /// an `isa-debug-exit` status 2N+1. Status 1 is also QEMU's own error
    /// status, so it counts as the guest's only when QEMU printed no error.
    static func isGuestExit(_ termination: ChildProcess.Termination, standardError: String) -> Bool {
        guard case .exited(let status) = termination else { return false }
        if status == 1 { return standardError.isEmpty }
        return status == 0 || status % 2 == 1
    }
}

extension ChildProcess.Termination: CustomStringConvertible {
    var description: String {
        switch self {
        case .exited(let status): return "exit status \(status)"
        case .signalled(let signal): return "killed by signal \(signal)"
        }
    }
}

/// One QEMU process.
final class QEMUInstance: HypervisorInstance {
    let process: ChildProcess
    /// Every QMP command of this VM goes through it, one at a time.
    let qmp: QMPChannel
    /// The network byte counter, when the command line dumps the traffic.
    let network: NetworkCounter?
    /// Whether the VM has a boot disk (`disk0`) to read block stats of.
    let hasDisk: Bool

    /// How long a stats sample may wait for QMP, which serves one client at
    /// a time (a stop or start in progress holds it).
    static let statsTimeout = Duration.seconds(2)

    init(process: ChildProcess, qmp: QMPChannel, network: NetworkCounter? = nil, hasDisk: Bool = false) {
        self.process = process
        self.qmp = qmp
        self.network = network
        self.hasDisk = hasDisk
    }

    deinit {
        // A reader still waiting for a QEMU that never opened its FIFOs.
        network?.stop()
    }

    var pid: Int32? { process.pid }

    func requestPowerdown() async throws {
        _ = try await qmp.execute("system_powerdown")
    }

    func forceStop() {
        process.send(SIGKILL)
    }

    /// Sets the boot disk's limits through QMP `block_set_io_throttle` on
    /// the guest device (`bootdisk`); every other limit is set to 0 (none).
    func setDiskThrottle(_ throttle: DiskThrottle) async throws {
        guard hasDisk else {
            throw UniError.invalid("the VM boots a kernel image and has no boot disk to throttle")
        }
        _ = try await qmp.execute("block_set_io_throttle", arguments: QEMUInstance.throttleArguments(throttle))
    }

    /// The arguments of `block_set_io_throttle`: QEMU wants all six limits.
    static func throttleArguments(_ throttle: DiskThrottle) -> [String: JSONValue] {
        var arguments: [String: JSONValue] = ["id": .string(QEMUCommandLine.bootDeviceID)]
        for name in ["bps_rd", "bps_wr", "iops_rd", "iops_wr"] { arguments[name] = .number(0) }
        arguments["bps"] = .number(Double(throttle.bytesPerSecond))
        arguments["iops"] = .number(Double(throttle.iops))
        return arguments
    }

    func waitForExit() async -> VMExit {
        let termination = await process.waitForTermination()
        // The exit is told once the FIFOs are gone: a `rm` that follows
        // must not race their removal for the VM's folder.
        if let network {
            network.stop()
            await network.waitUntilFinished()
        }
        return QEMUInstance.interpret(termination)
    }

    /// Network bytes from the filter-dump FIFOs; disk bytes and operations
    /// of the boot disk from QMP `query-blockstats`. A kernel-image VM has
    /// no disk, and a QMP failure or timeout leaves the disk counters `nil`.
    func ioCounters() async -> VMIOCounters {
        var counters = VMIOCounters(networkReceivedBytes: network?.received, networkTransmittedBytes: network?.transmitted)
        if hasDisk, process.termination == nil,
           let stats = try? await qmp.execute("query-blockstats", timeout: QEMUInstance.statsTimeout),
           let disk = QEMUInstance.bootDiskStatistics(in: stats) {
            counters.diskReadBytes = disk.readBytes
            counters.diskWrittenBytes = disk.writtenBytes
            counters.diskReadOperations = disk.readOperations
            counters.diskWriteOperations = disk.writeOperations
        }
        return counters
    }

    /// The boot disk's counters in a `query-blockstats` answer: the entry
    /// of drive `disk0` (``QEMUCommandLine``'s `-drive ...,id=disk0`), or
    /// `nil` when it is missing or a counter is not a whole number.
    static func bootDiskStatistics(in answer: JSONValue) -> (readBytes: UInt64, writtenBytes: UInt64, readOperations: UInt64, writeOperations: UInt64)? {
        guard case .array(let devices) = answer,
              let stats = devices.first(where: { $0["device"]?.stringValue == QEMUCommandLine.bootDriveID })?["stats"] else { return nil }
        func counter(_ name: String) -> UInt64? { stats[name]?.doubleValue.flatMap { UInt64(exactly: $0) } }
        guard let readBytes = counter("rd_bytes"), let writtenBytes = counter("wr_bytes"),
              let readOperations = counter("rd_operations"), let writeOperations = counter("wr_operations") else { return nil }
        return (readBytes, writtenBytes, readOperations, writeOperations)
    }

    /// Maps QEMU's end to a docker-style exit code: status 0 is a clean
    /// power-off (0); an odd status 2N+1 is the guest's `isa-debug-exit`
    /// write of N; a signal S gives 128 + S.
    static func interpret(_ termination: ChildProcess.Termination) -> VMExit {
        switch termination {
        case .exited(let status):
            let code = status % 2 == 1 ? status >> 1 : status
            return VMExit(exitCode: code, processStatus: status)
        case .signalled(let signal):
            return VMExit(exitCode: 128 + signal, signal: signal)
        }
    }
}

/// Checks that a host port is free before something binds it (QEMU's
/// forwarding, unid's metrics server), so the error names the port.
public enum HostPortProbe {
    /// Binds `mapping`'s host address and port once and releases it.
    /// - Throws: ``UniError`` (`conflict`) naming the port when it is in use.
    public static func checkAvailable(_ mapping: PortMapping) throws {
        let type = mapping.transportProtocol == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let fd = socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = mapping.hostPort.bigEndian
        address.sin_addr.s_addr = INADDR_ANY
        if let host = mapping.hostAddress { inet_pton(AF_INET, host, &address.sin_addr) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            let reason = errno == EADDRINUSE ? "is already in use" : "cannot be bound (\(String(cString: strerror(errno))))"
            throw UniError(.conflict, "host port \(mapping.hostAddress.map { "\($0):" } ?? "")\(mapping.hostPort)/\(mapping.transportProtocol.rawValue) \(reason)")
        }
    }
}
