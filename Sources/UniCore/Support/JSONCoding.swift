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
    /// One line naming what is wrong with a JSON document that failed to
    /// decode, by field: `missing field 'image'`, `field 'cpus' must be a
    /// whole number`, `field 'ports[0].host_port': 70000 is out of range (1-65535)`,
    /// `not valid JSON`.
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as UniError: return error.message
        case DecodingError.keyNotFound(let key, let context):
            return "missing field '\(path(context.codingPath + [key]))'"
        case DecodingError.typeMismatch(let type, let context) where context.codingPath.isEmpty:
            return "the body must be \(expectation(type))"
        case DecodingError.typeMismatch(let type, let context):
            return "field '\(path(context.codingPath))' must be \(expectation(type))"
        case DecodingError.valueNotFound(let type, let context) where context.codingPath.isEmpty:
            return "the body must be \(expectation(type)), not null"
        case DecodingError.valueNotFound(let type, let context):
            return "field '\(path(context.codingPath))' must be \(expectation(type)), not null"
        case DecodingError.dataCorrupted(let context):
            if let underlying = context.underlyingError as? UniError { return underlying.message }
            // Foundation says no more than this of a syntax error.
            return context.codingPath.isEmpty ? "not valid JSON" : "field '\(path(context.codingPath))': \(context.debugDescription)"
        default: return "\(error)"
        }
    }

    /// `ports[0].host_port`: keys joined with dots, array positions in brackets.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue, key.stringValue == "Index \(index)" {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text
    }

    /// What a field of `type` holds, in JSON's words.
    private static func expectation(_ type: Any.Type) -> String {
        switch type {
        case is any FixedWidthInteger.Type: return "a whole number"
        case is any BinaryFloatingPoint.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array<") { return "a list" }
            return "an object"
        }
    }

}

extension KeyedDecodingContainer {
    /// Decodes an optional whole number (absent or `null`: `nil`), naming
    /// a JSON number that does not fit `T` by its value and `allowed`
    /// (`70000 is out of range (1-65535)`, `1.5 is not a whole number`)
    /// where Foundation's message would not name the field's range.
    /// - Parameter allowed: the values the field takes, for the message.
    func decodeWholeNumberIfPresent<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key, allowed: @autoclosure () -> String) throws -> T? {
        // One lookup on the way that succeeds: records decode this for many fields.
        do {
            return try decodeIfPresent(T.self, forKey: key)
        } catch let original {
            throw wholeNumberError(original, forKey: key, allowed: allowed())
        }
    }

    /// Decodes a required whole number; see ``decodeWholeNumberIfPresent(_:forKey:allowed:)``.
    func decodeWholeNumber<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key, allowed: @autoclosure () -> String) throws -> T {
        do {
            return try decode(T.self, forKey: key)
        } catch let original {
            throw wholeNumberError(original, forKey: key, allowed: allowed())
        }
    }

    /// The error for a member that did not decode as a whole number:
    /// `original` (Foundation's type mismatch) unless it is a number at all.
    private func wholeNumberError(_ original: any Error, forKey key: Key, allowed: String) -> any Error {
        guard let number = try? decode(Double.self, forKey: key) else { return original }
        let whole = number == number.rounded()
        let shown = whole && abs(number) < 1e15 ? String(Int64(number)) : "\(number)"
        return DecodingError.dataCorruptedError(forKey: key, in: self,
                                                debugDescription: whole ? "\(shown) is out of range (\(allowed))" : "\(shown) is not a whole number")
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
    ///
    /// The form ``string(from:)`` writes (`2026-11-25T06:11:51.123Z`, or
    /// without the milliseconds) is read by hand: every record holds a few
    /// dates, and Foundation's `ISO8601FormatStyle` took ~2-3 us each, about
    /// half of decoding a record (docs/performance.md, "VM stores"). Any
    /// other form (an offset, other fraction lengths, a day Foundation rolls
    /// over such as Feb 29 of a common year) goes to `ISO8601FormatStyle`
    /// as before.
    public static func date(from text: String) -> Date? {
        if let date = canonicalDate(text) { return date }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` from 2001 on, checked field by field;
    /// `nil` for anything else (the caller asks Foundation).
    static func canonicalDate(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            guard bytes.count == 20 || bytes.count == 24 else { return nil }
            func number(_ offset: Int, _ width: Int) -> Int? {
                var value = 0
                for index in offset..<(offset + width) {
                    let digit = Int(bytes[index]) &- 48
                    guard digit >= 0, digit <= 9 else { return nil }
                    value = value * 10 + digit
                }
                return value
            }
            guard let year = number(0, 4), bytes[4] == UInt8(ascii: "-"), let month = number(5, 2), bytes[7] == UInt8(ascii: "-"),
                  let day = number(8, 2), bytes[10] == UInt8(ascii: "T"), let hour = number(11, 2), bytes[13] == UInt8(ascii: ":"),
                  let minute = number(14, 2), bytes[16] == UInt8(ascii: ":"), let second = number(17, 2),
                  bytes[bytes.count - 1] == UInt8(ascii: "Z") else { return nil }
            var milliseconds = 0
            if bytes.count == 24 {
                guard bytes[19] == UInt8(ascii: "."), let fraction = number(20, 3) else { return nil }
                milliseconds = fraction
            }
            guard (2001...9999).contains(year), (1...12).contains(month), hour < 24, minute < 60, second < 60 else { return nil }
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard day >= 1, day <= monthDays[month - 1] else { return nil }
            // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
            // `days_from_civil`); the year is >= 2001, so no negative eras.
            let shiftedYear = month <= 2 ? year - 1 : year
            let era = shiftedYear / 400
            let yearOfEra = shiftedYear - era * 400
            let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
            let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
            let days = era * 146_097 + dayOfEra - 719_468
            let seconds = days * 86_400 + hour * 3600 + minute * 60 + second
            // Relative to 2001, as Foundation's parser computes it.
            return Date(timeIntervalSinceReferenceDate: Double(seconds - 978_307_200) + Double(milliseconds) / 1000)
        }
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (dates before 1970 stay right).
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor < 0) ? quotient - 1 : quotient
    }
}
