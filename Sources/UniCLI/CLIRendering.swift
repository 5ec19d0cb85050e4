#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import UniCore

/// How `uni` prints VMs for people: fixed-width tables like `docker ps`.
public enum CLIRendering {
    /// The `uni ps` table: ID NAME IMAGE STATE HEALTH UPTIME RESTARTS PORTS.
    ///
    /// Each unreadable record follows the VMs as one row in state `broken`
    /// whose IMAGE column holds the record's path (`<vms.db> vm <row>` for
    /// a database row without a well-formed id), so a person knows what to
    /// inspect.
    public static func table(_ vms: [VM], unreadable: [UnreadableRecord] = [], now: Date = Date()) -> String {
        let header = ["ID", "NAME", "IMAGE", "STATE", "HEALTH", "UPTIME", "RESTARTS", "PORTS"]
        let rows = vms.map { vm in
            [vm.id.rawValue, vm.name, vm.image == nil ? vm.config.image.lastPathComponent : vm.config.image, stateText(vm), vm.health == .none ? "-" : vm.health.rawValue,
             uptime(vm, now: now), "\(vm.restartCount)", vm.config.ports.map(\.publishedDescription).joined(separator: ", ")]
        }
        let broken = unreadable.map { record in
            [record.id?.rawValue ?? "-", "-", record.id == nil ? record.location : record.path.escapingControlCharacters,
             brokenState, "-", "-", "-", ""]
        }
        return render([header] + rows + broken)
    }

    /// The STATE of an unreadable record in `uni ps -a`.
    public static let brokenState = "broken"

    /// One element of `uni ps --output json`: a VM record, or (with `-a`)
    /// a record unid could not read, as `{"state": "broken", "id", "path",
    /// "row_id", "reason"}` (docs/cli.md).
    public enum ListEntry: Encodable {
        /// A VM.
        case vm(VM)
        /// A record the daemon could not read.
        case unreadable(UnreadableRecord)

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .vm(let vm): try vm.encode(to: encoder)
            case .unreadable(let record):
                try record.encode(to: encoder)
                var container = encoder.container(keyedBy: StateKey.self)
                try container.encode(CLIRendering.brokenState, forKey: .state)
            }
        }

        private enum StateKey: String, CodingKey { case state }
    }

    /// The `uni images` table: REPOSITORY TAG DIGEST CREATED SIZE, the
    /// digest cut to 12 hex digits as docker's IMAGE ID.
    public static func imagesTable(_ images: [StoredImage], now: Date = Date()) -> String {
        let header = ["REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"]
        let rows = images.map { image in
            [image.reference.name, image.reference.tag ?? "<none>", String(image.digest.dropFirst("sha256:".count).prefix(12)),
             ago(image.created, now: now), bytes(image.size)]
        }
        return render([header] + rows)
    }

    /// `5 seconds ago`, `3 minutes ago`, `2 hours ago`, `4 days ago`.
    public static func ago(_ date: Date, now: Date) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        let (value, unit): (Int, String) = switch seconds {
        case ..<60: (seconds, "second")
        case ..<3600: (seconds / 60, "minute")
        case ..<86_400: (seconds / 3600, "hour")
        default: (seconds / 86_400, "day")
        }
        return "\(value) \(unit)\(value == 1 ? "" : "s") ago"
    }

    /// One `uni events` line: time, VM, type, then the attributes as `key=value`, sorted.
    public static func eventLine(_ event: VMEvent) -> String {
        let details = event.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.escapingControlCharacters)" }
        return ([RFC3339.string(from: event.time), event.vmName, event.vmID.rawValue, event.kind.rawValue] + details).joined(separator: "  ")
    }

    /// The state column: `stopped (0)` shows the exit code, `stopped (137,
    /// oom_killed)` a kernel OOM kill.
    public static func stateText(_ vm: VM) -> String {
        if vm.state == .stopped, let code = vm.exitCode {
            return vm.stopReason == .oomKilled ? "stopped (\(code), oom_killed)" : "stopped (\(code))"
        }
        return vm.state.rawValue
    }

    /// `12s`, `5m`, `3h`, `2d` since the VM started, or `-` when it is not running.
    public static func uptime(_ vm: VM, now: Date) -> String {
        guard vm.state == .running || vm.state == .stopping, let started = vm.startedAt else { return "-" }
        let seconds = max(0, Int(now.timeIntervalSince(started)))
        switch seconds {
        case ..<60: return "\(seconds)s"
        case ..<3600: return "\(seconds / 60)m"
        case ..<86_400: return "\(seconds / 3600)h"
        default: return "\(seconds / 86_400)d"
        }
    }

    /// The `uni stats` table: ID NAME CPU % MEM NET RX NET TX DISK READ DISK WRITE;
    /// `-` where a number could not be measured.
    public static func statsTable(_ samples: [VMStats]) -> String {
        let header = ["ID", "NAME", "CPU %", "MEM", "NET RX", "NET TX", "DISK READ", "DISK WRITE"]
        let rows = samples.map { stats in
            [stats.vmID.rawValue, stats.name, stats.cpuPercent.map(percent) ?? "-", stats.memoryRSSBytes.map(bytes) ?? "-",
             stats.networkReceivedBytes.map(bytes) ?? "-", stats.networkTransmittedBytes.map(bytes) ?? "-",
             stats.diskReadBytes.map(bytes) ?? "-", stats.diskWrittenBytes.map(bytes) ?? "-"]
        }
        return render([header] + rows)
    }

    /// `12.5%`: one decimal.
    public static func percent(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }

    /// `512 B`, `1.3 KiB`, `48.2 MiB`, `2.0 GiB`: binary units, one decimal past bytes.
    public static func bytes(_ value: UInt64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        guard value >= 1024 else { return "\(value) B" }
        var scaled = Double(value) / 1024
        var unit = 0
        while scaled >= 1024, unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        let tenths = Int((scaled * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// One compact JSON line (NDJSON), as `uni stats --output json` prints each sample.
    public static func jsonLine(_ value: some Encodable) throws -> String {
        String(decoding: try JSONCoding.makeEncoder().encode(value), as: UTF8.self) + "\n"
    }

    /// Left-aligned columns separated by three spaces.
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == columns - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "   ").trimmingSpaces()
        }.joined(separator: "\n") + "\n"
    }

    /// Pretty JSON of any API value, as `--output json` and `uni inspect` print it.
    public static func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONCoding.makeEncoder(pretty: true).encode(value), as: UTF8.self) + "\n"
    }
}

/// Builds a ``VMConfig`` from `uni run`'s flag values, checking what can be
/// checked on the client (the image path, the env file) with clear messages.
public enum RunOptions {
    /// Resolves `image` against the current directory and checks it can be read.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the path.
    ///
    /// Text that looks like a path (`/`, `./`, `../`) or names a file here
    /// is a file, made absolute; anything else is an image reference of
    /// unid's image store, checked and passed on.
    public static func resolveImage(_ image: String) throws -> String {
        guard !image.isEmpty else { throw UniError.invalid("missing image: give an image reference (NAME:TAG) or the path of a kernel or disk image") }
        var probe = stat()
        if !ImageReference.looksLikePath(image), stat(image, &probe) != 0 {
            return try ImageReference.parse(image).description
        }
        let path = DataDirectory.absolute(image)
        var status = stat()
        guard stat(path, &status) == 0 else { throw UniError.invalid("image '\(image.escapingControlCharacters)' does not exist") }
        guard (status.st_mode & S_IFMT) != S_IFDIR else { throw UniError.invalid("image '\(image)' is a directory, not an image file") }
        guard access(path, R_OK) == 0 else { throw UniError.invalid("image '\(image)' is not readable") }
        return path
    }

    /// Merges `--env-file` files (in order) and `-e` values (last wins).
    /// `-e NAME` without `=` copies NAME from `processEnvironment`.
    /// - Throws: ``UniError`` naming the bad value or file line.
    public static func environment(flags: [String], files: [String], processEnvironment: EnvironmentLookup = .process) throws -> [String: String] {
        var result: [String: String] = [:]
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw UniError.invalid("env file '\(file)' does not exist or is not readable")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw UniError.invalid("env file '\(file)' is not UTF-8 text")
            }
            result.merge(try EnvironmentVariables.parseFile(contents: text, path: file)) { $1 }
        }
        for flag in flags {
            if flag.contains("=") {
                let (name, value) = try EnvironmentVariables.parse(flag)
                result[name] = value
            } else {
                guard let value = processEnvironment[flag] else {
                    throw UniError.invalid("invalid environment variable '\(flag)': expected KEY=VALUE, or the name of a variable set in this shell")
                }
                try EnvironmentVariables.validate(name: flag, value: value)
                result[flag] = value
            }
        }
        return result
    }
}
