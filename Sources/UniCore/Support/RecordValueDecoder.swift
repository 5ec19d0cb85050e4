#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The `Decoder` ``RecordDecoder`` runs the types' `init(from:)` with, over
/// a parsed ``RecordJSONValue``. Reads what `JSONDecoder` reads with
/// ``JSONCoding/makeDecoder()``'s conventions and defers the rest
/// (``RecordDecoderDeferral``). Its coding paths are empty: its errors are
/// never shown, `JSONDecoder` decodes again and names the field.
struct RecordValueDecoder: Decoder {
    let value: RecordJSONValue
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw RecordDecoderDeferral() }
        return KeyedDecodingContainer(RecordKeyedContainer<Key>(object: object))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw RecordDecoderDeferral() }
        return RecordUnkeyedContainer(elements: elements)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    /// `value` as `T`: the JSON scalars and `Date` directly, every other
    /// type through its `init(from:)`.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == String.self {
            guard case .string(let text) = value else { throw RecordDecoderDeferral() }
            return unsafeBitCast(text, to: T.self)
        }
        if T.self == Date.self {
            guard case .string(let text) = value, let date = RFC3339.date(from: text) else { throw RecordDecoderDeferral() }
            return unsafeBitCast(date, to: T.self)
        }
        if T.self == [String: String].self {
            // The stdlib's decode of a dictionary checks its key type's
            // conformances at each call; records hold one (`env`) each.
            guard case .object(let object) = value else { throw RecordDecoderDeferral() }
            var dictionary = [String: String](minimumCapacity: object.keys.count)
            for (key, member) in zip(object.keys, object.values) {
                guard case .string(let text) = member else { throw RecordDecoderDeferral() }
                dictionary[String(decoding: key, as: UTF8.self)] = text
            }
            return unsafeBitCast(dictionary, to: T.self)
        }
        // Foundation's other special cases: left to it.
        if T.self == Data.self || T.self == URL.self || T.self == Decimal.self { throw RecordDecoderDeferral() }
        return try T(from: self)
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        // Only the plain form: `1.0` or `1e3` goes to JSONDecoder.
        guard case .number(let text) = value, let number = T(text, radix: 10) else { throw RecordDecoderDeferral() }
        return number
    }
}

extension RecordValueDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool {
        if case .null = value { return true }
        return false
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .bool(let flag) = value else { throw RecordDecoderDeferral() }
        return flag
    }

    func decode(_ type: String.Type) throws -> String {
        guard case .string(let text) = value else { throw RecordDecoderDeferral() }
        return text
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard case .number(let text) = value, let number = Double(text), number.isFinite else { throw RecordDecoderDeferral() }
        return number
    }

    func decode(_ type: Float.Type) throws -> Float {
        guard case .number(let text) = value, let number = Float(text), number.isFinite else { throw RecordDecoderDeferral() }
        return number
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
}

/// An object's members by key.
struct RecordKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: RecordJSONObject
    var codingPath: [any CodingKey] { [] }

    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: String(decoding: $0, as: UTF8.self)) } }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    private func lookup(_ key: Key) -> RecordJSONValue? { object.value(for: key.stringValue) }

    private func decoder(for key: Key) throws -> RecordValueDecoder {
        guard let value = lookup(key) else { throw RecordDecoderDeferral() }
        return RecordValueDecoder(value: value)
    }

    func decodeNil(forKey key: Key) throws -> Bool { try decoder(for: key).decodeNil() }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder(for: key).decode(type)
    }

    /// One lookup for absent, `null` and present (the protocol's default makes three).
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try valueIfPresent(key) { try $0.decode(type) } }

    // The scalar requirements, each one lookup.
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder(for: key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decoder(for: key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder(for: key).decode(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder(for: key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decoder(for: key).decode(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decoder(for: key).decode(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decoder(for: key).decode(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decoder(for: key).decode(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decoder(for: key).decode(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decoder(for: key).decode(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder(for: key).decode(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder(for: key).decode(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder(for: key).decode(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder(for: key).decode(type) }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try valueIfPresent(key) { try $0.decode(type) } }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try valueIfPresent(key) { try $0.decode(type) } }

    /// `nil` for an absent or `null` member, else what `read` makes of it
    /// (a closure, so that each scalar keeps its concrete `decode`).
    private func valueIfPresent<T>(_ key: Key, _ read: (RecordValueDecoder) throws -> T) throws -> T? {
        guard let value = lookup(key) else { return nil }
        let decoder = RecordValueDecoder(value: value)
        return decoder.decodeNil() ? nil : try read(decoder)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder(for: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder(for: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        RecordValueDecoder(value: object.value(for: "super") ?? .null)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        RecordValueDecoder(value: lookup(key) ?? .null)
    }
}

/// An array's elements, read in order.
struct RecordUnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [RecordJSONValue]
    var currentIndex = 0
    var codingPath: [any CodingKey] { [] }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private mutating func nextDecoder() throws -> RecordValueDecoder {
        guard !isAtEnd else { throw RecordDecoderDeferral() }
        defer { currentIndex += 1 }
        return RecordValueDecoder(value: elements[currentIndex])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw RecordDecoderDeferral() }
        // Only a null is consumed, as JSONDecoder does.
        guard case .null = elements[currentIndex] else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try nextDecoder().decode(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try nextDecoder().decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try nextDecoder().decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try nextDecoder().decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try nextDecoder().decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try nextDecoder().decode(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try nextDecoder().decode(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try nextDecoder().decode(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try nextDecoder().decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try nextDecoder().decode(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try nextDecoder().decode(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try nextDecoder().decode(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try nextDecoder().decode(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try nextDecoder().decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try nextDecoder().decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try nextDecoder().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try nextDecoder().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try nextDecoder() }
}
