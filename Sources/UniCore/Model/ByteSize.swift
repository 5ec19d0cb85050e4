#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A size in bytes, parsed from the `K`/`M`/`G` forms people type (`64M`, `1G`).
public struct ByteSize: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// The size in bytes.
    public var bytes: UInt64

    /// A size of `bytes` bytes.
    public init(bytes: UInt64) { self.bytes = bytes }

    /// `n` mebibytes.
    public static func mebibytes(_ n: UInt64) -> ByteSize { ByteSize(bytes: n << 20) }

    /// Parses `123`, `512K`, `64M`, `2G`, `1T` (binary multiples; an optional
    /// `i`/`B` suffix such as `64MiB` or `64MB` means the same).
    /// - Parameter name: what the size is, for the message (`invalid memory '-1': ...`).
    /// - Throws: ``UniError`` naming the text and the allowed form.
    public init(parsing text: String, name: String = "size") throws {
        let trimmed = text.trimmingSpaces()
        var digits = Substring(trimmed)
        var unit = ""
        while let last = digits.last, !last.isNumber {
            unit.insert(last, at: unit.startIndex)
            digits.removeLast()
        }
        let shifts: [String: UInt64] = ["": 0, "B": 0, "K": 10, "M": 20, "G": 30, "T": 40]
        var normalized = unit.uppercased()
        if normalized.hasSuffix("IB") { normalized.removeLast(2) } else if normalized.count == 2, normalized.hasSuffix("B") { normalized.removeLast() }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits), let shift = shifts[normalized] else {
            throw UniError.invalid("invalid \(name) '\(text)': expected a whole number with an optional unit K, M, G or T (for example 64M)")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw UniError.invalid("invalid \(name) '\(text)': too large") }
        self.bytes = bytes
    }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }

    /// The shortest exact form: `64M`, `1G`, `1536K`, `100`.
    public var description: String {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }

    public init(from decoder: any Decoder) throws {
        bytes = try decoder.singleValueContainer().decode(UInt64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }
}
