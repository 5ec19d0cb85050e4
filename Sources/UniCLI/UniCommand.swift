import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// `uni`: a docker-like CLI over unid's API. Commands parse, call the client
/// and print; formatting and checks live in ``CLIRendering`` and ``RunOptions``.
///
/// Every command names itself (`commandName`): ArgumentParser otherwise
/// derives the name from the type name at run time, through dynamic casts
/// that cost the CLI's start-up ~0.9 ms (docs/performance.md).
public struct UniCommand: ParsableCommand {
    /// The root command; ArgumentParser creates it while parsing.
    public init() {}
    /// `uni`'s name, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "uni",
        abstract: "Run and watch unikernel VMs through unid.",
        discussion: """
        Global options, before or after the command: --data-dir DIR (unid's data dir; default $UNI_HOME or ~/.uni) \
        and --trace-addr HOST:PORT (export the command's span over OTLP/gRPC). \
        UNI_API_TIMEOUT=SECONDS changes how long a command waits for unid (default 30).
        """,
        version: UniVersion.current,
        subcommands: [Run.self, PS.self, Inspect.self, Logs.self, Stats.self, Events.self, Start.self, Stop.self, Restart.self, Kill.self, Wait.self, Update.self, Remove.self, Images.self, ImageGroup.self, Tag.self, RemoveImage.self, Pull.self, Push.self, Login.self, Logout.self, Info.self]
    )
}

enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case table, json
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "unid's data dir. Default: $UNI_HOME or ~/.uni.")
    var dataDir: String?

    @Option(name: .long, help: "Export this command's span over OTLP/gRPC to HOST:PORT (or set OTEL_EXPORTER_OTLP_ENDPOINT).")
    var traceAddr: String?

    var client: UniClient {
        UniClient(socketPath: DataDirectory(root: dataDir ?? DataDirectory.defaultRoot()).socketPath)
    }
}

struct Run: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Create and start a VM from a kernel or disk image; prints its id.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "A stored image (NAME:TAG) or the path of a kernel image (ELF/PVH, bzImage) or raw bootable disk image.") var image: String
    @Option(parsing: .unconditional, help: "VM name (default: vm-<id prefix>).") var name: String?
    // Values that may start with '-' are taken as given (`parsing: .unconditional`)
    // and parsed in `run()`, so that `--memory -1` is refused by the check
    // that names it rather than read as a flag ("Missing value for '--memory'").
    @Option(parsing: .unconditional, help: "Guest memory, e.g. 64M or 1G (default: the image's, else 256M).") var memory: String?
    @Option(parsing: .unconditional, help: "Virtual CPUs (1-\(VMConfig.maximumCPUs); default: the image's, else 1).") var cpus: String?
    @Option(name: [.customShort("p"), .customLong("publish")], help: "Forward HOST:GUEST[/tcp|udp] (repeatable).",
            transform: { try PortMapping(parsing: $0) }) var ports: [PortMapping] = []
    @Option(name: [.customShort("e"), .customLong("env")], help: "Guest environment KEY=VALUE (repeatable).") var env: [String] = []
    @Option(help: "File of KEY=VALUE lines (repeatable).") var envFile: [String] = []
    @Option(parsing: .unconditional, help: "Kernel command line (kernel images only).") var cmdline: String?
    @Flag(help: "Remove the VM when it stops.") var rm = false
    @Flag(name: [.short, .long], help: "Stream the console until the VM stops; exit with its exit code. SIGINT, SIGTERM and SIGHUP stop the VM; a second Ctrl-C kills it.") var attach = false
    @Option(parsing: .unconditional, help: "With --attach: how long a signalled stop waits for the guest before killing (e.g. 10s); default: unid's --stop-timeout.")
    var stopTimeout: String?
    @Flag(name: [.short, .long], help: "Run in the background (the default; accepted for docker's habit).") var detach = false
    @Option(parsing: .unconditional, help: "Restart policy: never, on-failure[:N] or always[:N].") var restart = "never"
    @Option(parsing: .unconditional, help: "Probe a published guest port: tcp:PORT or http:PORT[/path].") var healthCheck: String?
    @Option(parsing: .unconditional, help: "Between health probes (default 10s).") var healthInterval: String?
    @Option(parsing: .unconditional, help: "One health probe's limit (default 3s).") var healthTimeout: String?
    @Option(parsing: .unconditional, help: "Failed probes in a row that make the VM unhealthy (default 3).") var healthRetries: String?
    @Option(parsing: .unconditional, help: "After a start, failed probes do not count for this long (default 0s).") var healthStartPeriod: String?
    @Option(parsing: .unconditional, help: "Guest network: user (default: reaches the host's loopback at 10.0.2.2 and beyond) or isolated (answers on -p ports only).")
    var network = "user"
    @OptionGroup var limits: ResourceOptions

    func run() throws {
        let stopTimeout = try self.stopTimeout.map { try DurationParser.parse($0, flag: "--stop-timeout") }
        if stopTimeout != nil, !attach { throw UniError.invalid("--stop-timeout applies to --attach only") }
        let memory = try memory.map { try ByteSize(parsing: $0, name: "memory") }
        let cpus = try cpus.map(Run.parseCPUs)
        let config = try VMConfig(
            name: name, image: RunOptions.resolveImage(image), memory: memory, cpus: cpus, ports: ports,
            environment: RunOptions.environment(flags: env, files: envFile), kernelCommandLine: cmdline, autoRemove: rm,
            restartPolicy: RestartPolicy.parse(restart), healthCheck: healthCheckSettings(),
            quota: limits.quota(), diskThrottle: limits.diskThrottle(), network: NetworkMode.parse(network)
        ).validated()
        let client = global.client
        guard attach else {
            print(try client.create(config).id)
            return
        }
        // Caught before the create: a signal during it must still reach the VM.
        let forwarder = AttachedSignalForwarder(perform: AttachedSignalForwarder.daemonActions(client: client, stopTimeout: stopTimeout))
        try SignalPipe.install([SIGINT, SIGTERM, SIGHUP], handler: forwarder.received)
        let exitCode = try AttachedRun.run(client: client, config: config, created: forwarder.vmCreated) { StandardStreams.writeOutput($0) }
        throw ExitCode(exitCode)
    }

    /// `--health-check` with its settings; the settings alone are an error.
    func healthCheckSettings() throws -> HealthCheck? {
        guard let healthCheck else {
            let orphans = [("--health-interval", healthInterval), ("--health-timeout", healthTimeout),
                           ("--health-retries", healthRetries), ("--health-start-period", healthStartPeriod)]
            if let (flag, _) = orphans.first(where: { $0.1 != nil }) {
                throw UniError.invalid("\(flag) applies to --health-check only")
            }
            return nil
        }
        var check = try HealthCheck.parse(healthCheck)
        if let healthInterval { check.interval = try DurationParser.parse(healthInterval, flag: "--health-interval") }
        if let healthTimeout { check.timeout = try DurationParser.parse(healthTimeout, flag: "--health-timeout") }
        if let healthStartPeriod { check.startPeriod = try DurationParser.parse(healthStartPeriod, flag: "--health-start-period") }
        if let healthRetries {
            guard let retries = Int(healthRetries) else {
                throw UniError.invalid("invalid --health-retries '\(healthRetries)': use a whole number from 1 to 100")
            }
            check.retries = retries
        }
        try check.validate()
        return check
    }

    static func parseCPUs(_ text: String) throws -> Int {
        guard let value = Int(text), (1...VMConfig.maximumCPUs).contains(value) else {
            throw UniError.invalid("invalid cpus '\(text)': must be a whole number from 1 to \(VMConfig.maximumCPUs)")
        }
        return value
    }
}

/// The limit flags of `uni run` and `uni update`.
struct ResourceOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "CPU weight against other VMs, 1-10000 (default 100).") var cpuShares: String?
    @Option(parsing: .unconditional, help: "Memory ceiling of the VM's QEMU process, e.g. 512M; at least --memory (0 in update: none).") var memoryMax: String?
    @Option(parsing: .unconditional, help: "Boot disk read+write operations per second (0: no limit; disk images only).") var diskIops: String?
    @Option(parsing: .unconditional, help: "Boot disk bytes per second, e.g. 10M (0: no limit; disk images only).") var diskBps: String?

    func quota() throws -> ResourceQuota {
        try ResourceQuota(cpuShares: cpuShares.map(ResourceQuota.parseCPUShares), memoryMax: memoryMax.map { try ByteSize(parsing: $0, name: "--memory-max") })
    }

    func diskThrottle() throws -> DiskThrottle {
        try DiskThrottle(iops: diskIops.map(DiskThrottle.parseIOPS) ?? 0, bytesPerSecond: diskBps.map(DiskThrottle.parseBytesPerSecond) ?? 0)
    }

    func update() throws -> ResourceUpdate {
        try ResourceUpdate(cpuShares: cpuShares.map(ResourceQuota.parseCPUShares),
                           memoryMax: memoryMax.map { try ByteSize(parsing: $0, name: "--memory-max") },
                           diskIOPS: diskIops.map(DiskThrottle.parseIOPS), diskBytesPerSecond: diskBps.map(DiskThrottle.parseBytesPerSecond))
    }
}

struct PS: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List running VMs (all with -a).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Show stopped and created VMs too, and records unid cannot read (state broken).") var all = false
    @Flag(name: [.short, .long], help: "Print ids only.") var quiet = false
    @Option(name: [.customShort("o"), .long, .customLong("format")], help: "table or json.") var output: OutputFormat = .table

    func run() throws {
        let client = global.client
        let vms = try client.list(all: all)
        // Broken records are listed with -a only: they have no process.
        let unreadable = all ? try client.unreadableRecords() : []
        if quiet {
            let ids = vms.map(\.id.rawValue) + unreadable.compactMap(\.id?.rawValue)
            print(ids.joined(separator: "\n"), terminator: ids.isEmpty ? "" : "\n")
        } else if output == .json {
            let entries = vms.map(CLIRendering.ListEntry.vm) + unreadable.map(CLIRendering.ListEntry.unreadable)
            print(try CLIRendering.json(entries), terminator: "")
        } else {
            print(CLIRendering.table(vms, unreadable: unreadable), terminator: "")
        }
    }
}

struct Inspect: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Print VM records as JSON.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]

    func validate() throws {
        if vms.isEmpty { throw ValidationError("give at least one VM name or id") }
    }

    /// Always a JSON array, as docker's: the records found, in the order
    /// asked; each one not found is reported on stderr and makes it exit 1.
    func run() throws {
        for reference in vms { try VMReference.check(reference) }
        let client = global.client
        var records: [VM] = []
        var failure: UniError?
        for reference in vms {
            do { records.append(try client.inspect(reference)) } catch let error as UniError {
                failure = failure ?? error
                StandardStreams.writeError(error.message)
            }
        }
        print(try CLIRendering.json(records), terminator: "")
        if let failure { throw ExitCode(failure.code == .invalidArgument ? 2 : 1) }
    }
}

struct Logs: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a VM's serial console.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VM name, id or id prefix.") var vm: String
    @Option(name: .long, parsing: .unconditional, help: "Only the last N lines.") var tail: String?
    @Flag(name: [.short, .long], help: "Keep streaming until the VM stops.") var follow = false

    func run() throws {
        let tail = try self.tail.map { try LineCountParser.parse($0, flag: "--tail") }
        let console = try global.client.logs(vm, tail: tail, follow: follow)
        while let chunk = try console.next() { StandardStreams.writeOutput(chunk) }
    }
}

struct Events: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Show VM events (transitions, exits, health changes, restarts), then stream new ones.",
        discussion: "With --until, prints the history up to that time and exits. The history survives daemon restarts (docs/observability.md)."
    )
    @OptionGroup var global: GlobalOptions
    @Option(parsing: .unconditional, help: "Only events since: an RFC 3339 time or a duration ago (10m).") var since: String?
    @Option(parsing: .unconditional, help: "Only events until: an RFC 3339 time or a duration ago; no streaming.") var until: String?
    @Option(help: "vm=NAME or vm=ID (repeatable).") var filter: [String] = []
    @Option(name: [.customShort("o"), .long, .customLong("format")], help: "table or json (one object per line).") var output: OutputFormat = .table

    func run() throws {
        var selection = VMEventFilter()
        let now = Date()
        selection.since = try since.map { try VMEventFilter.time($0, flag: "--since", now: now) }
        selection.until = try until.map { try VMEventFilter.time($0, flag: "--until", now: now) }
        for text in filter { try selection.add(text) }
        let reader = try global.client.events(selection, follow: until == nil)
        let decoder = JSONCoding.makeDecoder()
        while let line = try reader.nextLine() {
            if output == .json {
                StandardStreams.writeOutput(line + [UInt8(ascii: "\n")])
            } else if let event = try? decoder.decode(VMEvent.self, from: Data(line)) {
                StandardStreams.writeOutput(Array((CLIRendering.eventLine(event) + "\n").utf8))
            }
        }
    }
}

struct Stats: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show running VMs' CPU, memory, network and disk use (every running VM without arguments).",
        discussion: "One sample by default; --watch redraws every 3 s until Ctrl-C. Numbers that cannot be measured show as '-' (null in JSON)."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VM names, ids or id prefixes (default: every running VM).") var vms: [String] = []
    @Flag(name: [.short, .long], help: "Redraw until Ctrl-C.") var watch = false
    @Option(name: .long, parsing: .unconditional, help: "How often --watch redraws (e.g. 5s; default 3s, at least 100ms).") var interval: String?
    @Option(name: [.customShort("o"), .long, .customLong("format")], help: "table, or json: one JSON object per VM per sample (NDJSON).") var output: OutputFormat = .table

    func run() throws {
        let interval = try StatsScreen.interval(self.interval, watch: watch)
        for reference in vms { try VMReference.check(reference) }
        let client = global.client
        let screen = StatsScreen(redraw: watch && output == .table && isatty(STDOUT_FILENO) == 1)
        screen.begin()
        var first = true
        repeat {
            if !first { StatsScreen.sleep(interval) }
            let samples = try vms.isEmpty ? client.stats() : vms.map { try client.stats($0).current }
            switch output {
            case .table: screen.show(CLIRendering.statsTable(samples), first: first)
            case .json: StandardStreams.writeOutput(Array(try samples.map(CLIRendering.jsonLine).joined().utf8))
            }
            first = false
        } while watch
    }
}

/// How `uni stats --watch` draws: in place on a terminal (cursor hidden,
/// shown again on Ctrl-C), one table after another elsewhere.
struct StatsScreen {
    /// Whether output is a terminal that is redrawn in place.
    let redraw: Bool

    /// `--interval`: a duration of at least 100 ms, only with `--watch`.
    static func interval(_ text: String?, watch: Bool) throws -> Duration {
        guard let text else { return .seconds(3) }
        guard watch else { throw UniError.invalid("--interval '\(text)' applies to --watch only") }
        let value = try DurationParser.parse(text, flag: "--interval")
        guard value >= .milliseconds(100) else {
            throw UniError.invalid("invalid --interval '\(text)': must be at least 100ms")
        }
        return value
    }

    /// Hides the cursor and makes Ctrl-C (or a SIGTERM) show it again before exiting.
    func begin() {
        guard redraw else { return }
        var signals = sigset_t()
        sigemptyset(&signals)
        for number in [SIGINT, SIGTERM] {
            signal(number) { number in
                // Only async-signal-safe calls here: write(2) and _exit(2).
                let restore: StaticString = "\u{1B}[?25h\n"
                _ = write(STDOUT_FILENO, restore.utf8Start, restore.utf8CodeUnitCount)
                _exit(128 + number)
            }
            sigaddset(&signals, number)
        }
        // A parent may have started us with them blocked (a blocked mask
        // survives exec): Ctrl-C must end a watch all the same.
        sigprocmask(SIG_UNBLOCK, &signals, nil)
        StandardStreams.writeOutput(Array("\u{1B}[?25l".utf8))
    }

    /// Draws one table: over the last one on a terminal, after a blank line elsewhere.
    func show(_ table: String, first: Bool) {
        let prefix = redraw ? "\u{1B}[H\u{1B}[2J" : (first ? "" : "\n")
        // One write per frame, so a Ctrl-C never leaves half a table.
        StandardStreams.writeOutput(Array((prefix + table).utf8))
    }

    /// Sleeps `duration` on this thread (the CLI runs without Swift concurrency).
    static func sleep(_ duration: Duration) {
        var request = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

struct Info: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show the daemon's version, accelerator and data dir.")
    @OptionGroup var global: GlobalOptions
    func run() throws { print(try CLIRendering.json(try global.client.info()), terminator: "") }
}

/// A `uni` subcommand: it takes the global options.
protocol UniSubcommand: ParsableCommand {
    var global: GlobalOptions { get }
}

/// Runs `body` for every reference, reporting each failure, and fails if any did.
func forEach(_ references: [String], _ body: (String) throws -> Void) throws {
    guard !references.isEmpty else { throw ValidationError("give at least one VM name or id") }
    var failure: UniError?
    for reference in references {
        do { try body(reference) } catch let error as UniError {
            StandardStreams.writeError(error.message)
            failure = failure ?? error
        }
    }
    if let failure { throw ExitCode(failure.code == .invalidArgument ? 2 : 1) }
}

