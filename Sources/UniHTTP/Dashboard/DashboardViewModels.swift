import Foundation
import UniCLI
import UniKit

/// What the dashboard hides: environment values whose names look secret.
public enum DashboardRedaction {
    /// What a masked value is shown as.
    public static let mask = "••••••"
    /// Name fragments that mark a value secret, matched case-insensitively.
    public static let secretMarkers = ["PASSWORD", "SECRET", "TOKEN", "KEY"]

    /// Whether the variable `name` looks like it holds a secret.
    public static func isSecret(_ name: String) -> Bool {
        let upper = name.uppercased()
        return secretMarkers.contains { upper.contains($0) }
    }

    /// The environment with every secret-looking value replaced by ``mask``.
    public static func masked(_ environment: [String: String]) -> [String: String] {
        environment.reduce(into: [:]) { result, entry in
            result[entry.key] = isSecret(entry.key) ? mask : entry.value
        }
    }

    /// The record with its secret-looking environment values masked: what
    /// the UI API answers, since the dashboard may be reachable by more
    /// people than the Unix socket.
    public static func masked(_ vm: VM) -> VM {
        var vm = vm
        vm.config.environment = masked(vm.config.environment)
        return vm
    }
}

/// One row of `/ui` and one element of `GET /ui/api/vms`.
public struct DashboardVMSummary: Codable, Sendable, Hashable {
    /// The VM's id.
    public var id: VMID
    /// Its name.
    public var name: String
    /// Its lifecycle state.
    public var state: VMState
    /// Its health probe's verdict (`none` without a health check).
    public var health: String
    /// The image path.
    public var image: String
    /// When the current run started, if it runs.
    public var startedAt: Date?
    /// The newest CPU %, if it runs and was sampled twice.
    public var cpuPercent: Double?
    /// The newest resident memory, if it runs and was sampled.
    public var memoryRSSBytes: UInt64?

    /// The summary of `vm` with its newest sample (ignored unless it runs:
    /// a stopped VM's last sample is history, not its current use).
    public init(vm: VM, latest: VMStats?) {
        let current = vm.state.hasProcess ? latest : nil
        id = vm.id
        name = vm.name
        state = vm.state
        health = vm.health.rawValue
        image = vm.config.image
        startedAt = vm.state.hasProcess ? vm.startedAt : nil
        cpuPercent = current?.cpuPercent
        memoryRSSBytes = current?.memoryRSSBytes
    }


    enum CodingKeys: String, CodingKey {
        case id, name, state, health, image, startedAt = "started_at", cpuPercent = "cpu_percent", memoryRSSBytes = "memory_rss_bytes"
    }

    /// Writes every field, unavailable numbers as `null`, as ``VMStats`` does.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(state, forKey: .state)
        try c.encode(health, forKey: .health)
        try c.encode(image, forKey: .image)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(cpuPercent, forKey: .cpuPercent)
        try c.encode(memoryRSSBytes, forKey: .memoryRSSBytes)
    }
}

/// `GET /ui/api/vm/{id}`: the record (secrets masked) and its health.
public struct DashboardVMDetail: Codable, Sendable, Hashable {
    /// The record, with secret-looking environment values masked.
    public var vm: VM
    /// The VM's health probe's verdict (`none` without a health check).
    public var health: String

    /// The detail of `vm` (already masked), its health taken from the record.
    init(vm: VM) {
        self.vm = vm
        health = vm.health.rawValue
    }
}

/// `GET /ui/api/vm/{id}/logs`: the console's last lines.
public struct DashboardLogs: Codable, Sendable, Hashable {
    /// The VM's id.
    public var vmID: VMID
    /// How many lines were asked for.
    public var tail: Int
    /// The console text (invalid UTF-8 replaced).
    public var output: String

    enum CodingKeys: String, CodingKey {
        case vmID = "vm_id", tail, output
    }
}

// The page models below are what the templates read through Mirror: every
// value is already formatted text, so templates hold no logic and `-`
// stands for a number that could not be measured.

/// A row of the list page.
struct ListRow {
    let id: String
    let shortID: String
    let name: String
    let state: String
    let health: String
    let image: String
    let uptime: String
    let cpu: String
    let memory: String

    init(vm: VM, latest: VMStats?, now: Date) {
        let summary = DashboardVMSummary(vm: vm, latest: latest)
        id = vm.id.rawValue
        shortID = String(vm.id.rawValue.prefix(12))
        name = vm.name
        state = CLIRendering.stateText(vm)
        health = summary.health
        image = vm.config.image
        uptime = CLIRendering.uptime(vm, now: now)
        cpu = summary.cpuPercent.map(CLIRendering.percent) ?? "-"
        memory = summary.memoryRSSBytes.map(CLIRendering.bytes) ?? "-"
    }
}

/// The list page.
struct ListPage {
    let title = "VMs"
    let rows: [ListRow]
    let empty: Bool
}

/// A label and a value, for the detail page's key/value tables.
struct Field {
    let label: String
    let value: String
    let masked: Bool

    init(_ label: String, _ value: String, masked: Bool = false) {
        self.label = label
        self.value = value
        self.masked = masked
    }
}

/// One live number of the detail page; `key` is what `app.js` updates.
struct StatField {
    let label: String
    let key: String
    let value: String
}

/// A sparkline: `points` of an SVG polyline in a 120x32 box.
struct Sparkline {
    let key: String
    let label: String
    let points: String
}

/// The detail page.
struct DetailPage {
    let title: String
    let id: String
    let name: String
    let state: String
    let health: String
    let config: [Field]
    let restart: [Field]
    let ports: [Field]
    let noPorts: Bool
    let environment: [Field]
    let noEnvironment: Bool
    let running: Bool
    let stats: [StatField]
    let sparklines: [Sparkline]
    let console: String
    let noConsole: Bool

    init(vm: VM, history: VMStatsHistory?, console: String, now: Date) {
        title = vm.name
        id = vm.id.rawValue
        name = vm.name
        state = CLIRendering.stateText(vm)
        health = vm.health.rawValue
        config = [
            Field("ID", vm.id.rawValue),
            Field("Image", vm.config.image),
            Field("Kind", "\(vm.imageKind.rawValue) on \(vm.machine)"),
            Field("Memory", vm.config.effectiveMemory.description),
            Field("CPUs", "\(vm.config.effectiveCPUs)"),
            Field("Kernel command line", vm.config.kernelCommandLine ?? "-"),
            Field("Accelerator", vm.accelerator?.rawValue ?? "-"),
            Field("Created", DetailPage.date(vm.createdAt)),
            Field("Uptime", CLIRendering.uptime(vm, now: now)),
        ]
        restart = [
            Field("Start count", "\(vm.startCount)"),
            Field("Started", vm.startedAt.map(DetailPage.date) ?? "-"),
            Field("Finished", vm.finishedAt.map(DetailPage.date) ?? "-"),
            Field("Stop reason", vm.stopReason?.rawValue ?? "-"),
            Field("Exit code", vm.exitCode.map { "\($0)" } ?? "-"),
            Field("Last error", vm.lastError ?? "-"),
        ]
        ports = vm.config.ports.map { Field($0.transportProtocol.rawValue, $0.description) }
        noPorts = ports.isEmpty
        environment = vm.config.environment.keys.sorted().map { name in
            let secret = DashboardRedaction.isSecret(name)
            return Field(name, secret ? DashboardRedaction.mask : vm.config.environment[name] ?? "", masked: secret)
        }
        noEnvironment = environment.isEmpty
        running = history != nil
        let current = history?.current
        stats = StatsFormatting.fields(current, sampleCount: history?.recent.count ?? 0)
        let recent = history?.recent ?? []
        sparklines = [
            Sparkline(key: "cpu", label: "CPU %", points: Sparkline.points(recent.map(\.cpuPercent))),
            Sparkline(key: "memory", label: "Memory", points: Sparkline.points(recent.map { stats in stats.memoryRSSBytes.map { Double($0) } })),
            Sparkline(key: "network", label: "Network bytes/s", points: Sparkline.points(Sparkline.networkRates(recent))),
        ]
        self.console = console
        noConsole = console.isEmpty
    }

    static func date(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

/// The detail page's live numbers, formatted as `app.js` formats them.
enum StatsFormatting {
    static func fields(_ stats: VMStats?, sampleCount: Int) -> [StatField] {
        [
            StatField(label: "CPU", key: "cpu_percent", value: stats?.cpuPercent.map(CLIRendering.percent) ?? "-"),
            StatField(label: "CPU time", key: "cpu_seconds", value: stats?.cpuSeconds.map(seconds) ?? "-"),
            StatField(label: "Memory (RSS)", key: "memory_rss_bytes", value: bytes(stats?.memoryRSSBytes)),
            StatField(label: "Net received", key: "network_rx_bytes", value: bytes(stats?.networkReceivedBytes)),
            StatField(label: "Net sent", key: "network_tx_bytes", value: bytes(stats?.networkTransmittedBytes)),
            StatField(label: "Disk read", key: "disk_read_bytes", value: bytes(stats?.diskReadBytes)),
            StatField(label: "Disk written", key: "disk_written_bytes", value: bytes(stats?.diskWrittenBytes)),
            StatField(label: "Samples", key: "samples", value: "\(sampleCount)"),
            StatField(label: "Sampled", key: "sampled_at", value: stats.map { clock(DetailPage.date($0.sampledAt)) } ?? "-"),
        ]
    }

    /// `22:13:44 UTC` of an ISO 8601 date: the day is the page's, and the time alone fits the grid.
    static func clock(_ iso: String) -> String { String(iso.dropFirst(11).prefix(8)) + " UTC" }

    static func bytes(_ value: UInt64?) -> String { value.map(CLIRendering.bytes) ?? "-" }

    /// `12.34 s`: two decimals, enough to see a busy guest's time grow between polls.
    static func seconds(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) s"
    }
}

extension Sparkline {
    static let width = 120.0
    static let height = 32.0

    /// The polyline points of `values` scaled into the box (0 at the
    /// bottom, the largest value 4 units below the top, so a flat line is
    /// not drawn on the edge); unmeasured values are skipped.
    static func points(_ values: [Double?]) -> String {
        let measured = values.enumerated().compactMap { index, value in value.map { (index, $0) } }
        guard measured.count > 1 else { return "" }
        let top = max(measured.map { $0.1 }.max() ?? 0, 1e-9)
        let step = width / Double(max(values.count - 1, 1))
        return measured.map { index, value in
            "\(format(Double(index) * step)),\(format(height - 2 - (value / top) * (height - 6)))"
        }.joined(separator: " ")
    }

    /// Bytes per second moved over the network (both ways) between each
    /// sample and the one before; `nil` where a counter is missing.
    static func networkRates(_ samples: [VMStats]) -> [Double?] {
        zip(samples, samples.dropFirst()).map { previous, next in
            guard let a = total(previous), let b = total(next), b >= a else { return nil }
            let seconds = next.sampledAt.timeIntervalSince(previous.sampledAt)
            return seconds > 0 ? Double(b - a) / seconds : nil
        }
    }

    private static func total(_ stats: VMStats) -> UInt64? {
        guard let rx = stats.networkReceivedBytes, let tx = stats.networkTransmittedBytes else { return nil }
        return rx + tx
    }

    private static func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}

/// An error page.
struct ErrorPage {
    let title: String
    let status: Int
    let message: String
}
