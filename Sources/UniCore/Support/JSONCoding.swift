#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The JSON conventions of every record and API body: RFC 3339 dates in UTC
/// with milliseconds, sorted keys for stable files.
public enum JSONCoding {
    /// An encoder with Uni's conventions.
    public static func makeEncoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.string(from: date))
        }
        return encoder
    }

    /// A decoder with Uni's conventions.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RFC3339.date(from: text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid RFC 3339 date '\(text)'")
            }
            return date
        }
        return decoder
    }
}

extension JSONCoding {
    /// One line naming what is wrong with a JSON document that failed to decode:
    /// `missing field 'image'`, `field 'cpus' has the wrong type`, `not valid JSON`.
    public static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String { context.codingPath.map(\.stringValue).joined(separator: ".") }
        switch error {
        case let error as UniError: return error.message
        case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "field '\(path(context))' has the wrong type"
        case DecodingError.dataCorrupted(let context):
            if let underlying = context.underlyingError as? UniError { return underlying.message }
            return context.codingPath.isEmpty ? "not valid JSON" : "field '\(path(context))': \(context.debugDescription)"
        default: return "\(error)"
        }
    }
}

/// RFC 3339 timestamps in UTC with millisecond precision (`2026-11-25T06:11:51.123Z`).
public enum RFC3339 {
    /// Formats `date`, rounded to the millisecond. Hand-rolled because it
    /// runs for every JSON log line, where Foundation's formatter is ~10x slower.
    public static func string(from date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(milliseconds.floorDivided(by: 1000))
        let fraction = Int(milliseconds - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var bytes = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int, _ width: Int, at offset: Int) {
            var value = value
            for index in stride(from: offset + width - 1, through: offset, by: -1) {
                bytes[index] = UInt8(48 + value % 10)
                value /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, 4, at: 0)
        bytes[4] = 45
        put(Int(parts.tm_mon) + 1, 2, at: 5)
        bytes[7] = 45
        put(Int(parts.tm_mday), 2, at: 8)
        bytes[10] = 84
        put(Int(parts.tm_hour), 2, at: 11)
        bytes[13] = 58
        put(Int(parts.tm_min), 2, at: 14)
        bytes[16] = 58
        put(Int(parts.tm_sec), 2, at: 17)
        bytes[19] = 46
        put(fraction, 3, at: 20)
        bytes[23] = 90
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses with or without fractional seconds.
    public static func date(from text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (dates before 1970 stay right).
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor < 0) ? quotient - 1 : quotient
    }
}
