import ArgumentParser
import Foundation
import Logging
import Tracing
import UniCLI
import UniHTTP
import UniKit

/// `unid`: the daemon that owns QEMU processes. Parses flags, bootstraps
/// logging once, and runs the composed ``Daemon``.
struct Unid: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unid",
        abstract: "Run and watch unikernel VMs on QEMU; serves the API for `uni`.",
        version: UniVersion.current
    )

    @Option(name: .long, help: "Data dir (records, sockets, consoles). Default: $UNI_HOME or ~/.uni.")
    var dataDir: String?

    @Option(name: .long, help: "CPU accelerator: auto (KVM when /dev/kvm opens, else TCG), kvm or tcg.",
            transform: { try parseChoice($0, flag: "--accel", as: AcceleratorChoice.self) })
    var accel: AcceleratorChoice = .auto

    @Option(name: .long, help: "QEMU binary: a name on PATH or a path.")
    var qemu: String = "qemu-system-x86_64"

    // Taken as given and parsed in `run()`: `--stop-timeout -1s` must reach
    // the check that names it, not be read as a flag.
    @Option(name: .long, parsing: .unconditional, help: "How long a graceful stop waits before killing QEMU (e.g. 10s, 500ms).")
    var stopTimeout: String = "10s"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.",
            transform: { try parseChoice($0, flag: "--log-level", as: Logger.Level.self) })
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "Log format on stderr: text or json.",
            transform: { try parseChoice($0, flag: "--log-format", as: LogFormat.self) })
    var logFormat: LogFormat = .text

    @Option(name: .long, help: "Serve /metrics and /health on HOST:PORT (e.g. :9090). Default: off.")
    var metricsAddr: String?

    @Option(name: .long, help: "Serve the read-only dashboard (/ui) on HOST:PORT (e.g. 127.0.0.1:8080; :8080 = every address, with a warning). Default: off.")
    var uiAddr: String?

    @Option(name: .long, help: "Where VM records live: file (vms/<id>/state.json) or sqlite (vms/vms.db). Default: file. A switch moves the records over at the next start (docs/architecture.md).",
            transform: { try parseChoice($0, flag: "--vm-store", as: VMStoreKind.self) })
    var vmStore: VMStoreKind = .file

    @Option(name: .long, help: "Where the cgroup filesystem is mounted: each VM's QEMU gets its own cgroup there (v2, or v1 cpu and memory hierarchies on hybrid hosts) holding --cpu-shares and --memory-max. Without usable cgroups VMs run unlimited, with one warning.")
    var cgroupRoot: String = CgroupControllers.defaultRoot

    @Option(name: .long, help: "The CPU weight of every VM together against the host's other processes, 1-10000 (the kernel's default is 100). Guests still use every idle cycle; under contention unid and the host's services come first. Default: 10.",
            transform: CgroupControllers.parseVMsCPUWeight)
    var vmsCPUWeight: Int = CgroupControllers.defaultVMsCPUWeight

    @Option(name: .long, help: "Export lifecycle spans over OTLP/gRPC to HOST:PORT (e.g. localhost:4317). Default: off (OTEL_* variables are honoured).")
    var traceAddr: String?

    func validate() throws {
        guard cgroupRoot.hasPrefix("/"), !cgroupRoot.containsControlCharacter else {
            throw ValidationError("invalid --cgroup-root '\(cgroupRoot.escapingControlCharacters)': use an absolute path, such as /sys/fs/cgroup")
        }
        do {
            if let metricsAddr { _ = try ListenAddress(parsing: metricsAddr, flag: "--metrics-addr") }
            if let uiAddr { _ = try ListenAddress(parsing: uiAddr, flag: "--ui-addr") }
        } catch let error as UniError {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let stopTimeout = try DurationParser.parse(stopTimeout, flag: "--stop-timeout")
        logFormat.bootstrap(level: logLevel)
        let logger = Logger(label: "unid")
        let traces = try TraceExport.makeBackend(serviceName: "unid", address: traceAddr, logger: logger)
        let configuration = DaemonConfiguration(
            dataDirectory: DataDirectory(root: dataDir ?? DataDirectory.defaultRoot()),
            accelerator: accel,
            qemuBinary: qemu,
            stopTimeout: stopTimeout,
            metricsAddress: metricsAddr,
            uiAddress: uiAddr,
            vmStore: vmStore,
            cgroupRoot: cgroupRoot,
            vmsCPUWeight: vmsCPUWeight
        )
        let daemon = try await Daemon.make(configuration: configuration, logger: logger, tracer: traces?.tracer ?? NoOpTracer())
        try await daemon.run(logger: logger, first: traces.map { [$0.service] } ?? [])
    }
}

await CommandRunner.main(Unid.self)
