/// The identifier of a VM: 12 lower-case hex digits, unique per data dir.
public struct VMID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The hex digits.
    public let rawValue: String

    /// Wraps an existing identifier, checking its form.
    /// - Throws: ``UniError/Code-swift.struct/invalidArgument`` when it is not 12 hex digits.
    public init(_ rawValue: String) throws {
        guard VMID.isWellFormed(rawValue) else {
            throw UniError.invalid("invalid vm id '\(rawValue)': expected 12 lower-case hex digits")
        }
        self.rawValue = rawValue
    }

    /// A fresh random identifier.
    public static func random() -> VMID {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() & 0xFFFF_FFFF_FFFF
        let hex = String(value, radix: 16)
        return VMID(unchecked: String(repeating: "0", count: 12 - hex.count) + hex)
    }

    private init(unchecked: String) { rawValue = unchecked }

    /// Whether `text` is a full id: 12 lowercase hex digits.
    public static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 12 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    public var description: String { rawValue }

    public static func < (lhs: VMID, rhs: VMID) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        try self.init(decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
