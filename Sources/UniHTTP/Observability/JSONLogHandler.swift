import Foundation
import Logging
import Synchronization
import UniKit
#if canImport(Glibc)
import Glibc
#endif

/// `--log-format json`: one JSON object per line on stderr with `ts`
/// (RFC 3339 UTC, ms), `level` (upper case: `INFO`, `WARN`, ...), `msg`, then
/// the metadata flattened as fields (`vm_id`, `from`, `to`, ...).
///
/// Each line is built whole and written with one `write(2)` under a lock, so
/// no line is ever split or interleaved with another.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: LogSink

    /// A handler writing to `sink` (stderr by default).
    public init(label: String, sink: LogSink = .standardError, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        sink.write(JSONLogHandler.line(date: Date(), level: event.level, message: "\(event.message)", metadata: merged))
    }

    /// The level names in the JSON `level` field.
    public static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "TRACE"
        case .debug: return "DEBUG"
        case .info: return "INFO"
        case .notice: return "NOTICE"
        case .warning: return "WARN"
        case .error: return "ERROR"
        case .critical: return "CRITICAL"
        }
    }

    /// One log line, newline included. Fields are `ts`, `level`, `msg`, then
    /// metadata keys sorted; a metadata key named like a fixed field is
    /// prefixed with `meta_` so it cannot overwrite it.
    public static func line(date: Date, level: Logger.Level, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count + metadata.count * 32)
        out += Array(#"{"ts":""#.utf8)
        out += Array(RFC3339.string(from: date).utf8)
        out += Array(#"","level":""#.utf8)
        out += Array(levelName(level).utf8)
        out += Array(#"","msg":"#.utf8)
        appendString(message, to: &out)
        for key in metadata.keys.sorted() {
            let name = (key == "ts" || key == "level" || key == "msg") ? "meta_" + key : key
            out.append(UInt8(ascii: ","))
            appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            appendValue(metadata[key]!, to: &out)
        }
        out += Array("}\n".utf8)
        return out
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let text): appendString(text, to: &out)
        case .stringConvertible(let convertible):
            // Numbers and booleans logged as values (`.stringConvertible(code)`)
            // stay numbers in JSON: `"exit_code":137`, not `"137"`.
            switch convertible {
            case let number as any BinaryInteger: out += Array("\(number)".utf8)
            case let number as any BinaryFloatingPoint where Double(number).isFinite: out += Array("\(Double(number))".utf8)
            case let flag as Bool: out += Array((flag ? "true" : "false").utf8)
            default: appendString(convertible.description, to: &out)
            }
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendValue(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let members):
            out.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendValue(members[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// A JSON string literal with the escapes RFC 8259 requires.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [92, 34]
            case UInt8(ascii: "\\"): out += [92, 92]
            case 10: out += [92, UInt8(ascii: "n")]
            case 13: out += [92, UInt8(ascii: "r")]
            case 9: out += [92, UInt8(ascii: "t")]
            case 0..<32: out += [92, UInt8(ascii: "u"), 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Where log lines go: a file descriptor written with one `write(2)` per
/// line under a process-wide lock.
public struct LogSink: Sendable {
    private let descriptor: Int32
    private static let lock = Mutex(())

    /// Writes to `descriptor`.
    public init(descriptor: Int32) { self.descriptor = descriptor }

    /// Standard error.
    public static let standardError = LogSink(descriptor: 2)

    /// Writes one whole line.
    public func write(_ line: [UInt8]) {
        // A log line that cannot be written has nowhere else to go.
        _ = LogSink.lock.withLock { _ in line.withUnsafeBytes { POSIXIO.writeAll(descriptor, $0) } }
    }
}

/// `--log-format`.
public enum LogFormat: String, Sendable, CaseIterable {
    /// Human-readable lines (swift-log's stream handler).
    case text
    /// One JSON object per line.
    case json

    /// Bootstraps swift-log for a program (`unid`, `uni`); call once at start.
    public func bootstrap(level: Logger.Level) {
        let format = self
        LoggingSystem.bootstrap { label in
            switch format {
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
