#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Decodes the records Uni writes (VM records in `state.json` files and
/// SQLite rows) in less than half `JSONDecoder`'s time, with its results.
///
/// Loading 10,000 VMs is almost all JSON decoding, and Foundation's decoder
/// spends most of its time on what a record never needs: a dictionary per
/// object, a coding path per value, a dynamic cast per value for its special
/// types (docs/performance.md, "VM stores"). This one parses the document
/// into a small tree (objects as sorted arrays of keys that point into the
/// document, searched in halves) and runs the types' own `init(from:)` over
/// it, so no field is listed twice.
///
/// It is strict where it is fast and defers everywhere else: anything it
/// does not accept (invalid JSON, a number in a form it does not read, a key
/// given twice, a `Data` or `URL` field, any error thrown by a type) makes it
/// decode the document again with ``JSONCoding/makeDecoder()``, whose value
/// or error is returned. A record therefore decodes to the same value, or
/// fails with the same message, as with `JSONDecoder`; only the time differs.
public struct RecordDecoder {
    private let fallback: JSONDecoder

    /// A decoder with Uni's conventions (``JSONCoding``).
    public init() {
        fallback = JSONCoding.makeDecoder()
    }

    /// Decodes `type` from the JSON document in `data`.
    /// - Throws: what `JSONDecoder` (with ``JSONCoding/makeDecoder()``) throws for `data`.
    public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if let value = RecordDecoder.fastDecode(type, from: data) { return value }
        return try fallback.decode(type, from: data)
    }

    /// The value, or `nil` where the fast path defers to `JSONDecoder`.
    static func fastDecode<T: Decodable>(_ type: T.Type, from data: Data) -> T? {
        // The tree's keys point into `data`: it is decoded inside the closure.
        data.withUnsafeBytes { bytes in
            guard let tree = try? RecordJSONParser.parse(bytes) else { return nil }
            return try? RecordValueDecoder(value: tree).decode(type)
        }
    }
}

/// A parsed JSON value. Numbers keep their text: each is read as the type
/// the decoding asks for, as `JSONDecoder` does.
enum RecordJSONValue {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([RecordJSONValue])
    case object(RecordJSONObject)
}

/// An object's members in document order, no key twice (the parser
/// checks). Keys are the bytes of the document (unescaped: a key with an
/// escape defers), valid while the document's buffer is.
struct RecordJSONObject {
    var keys: [UnsafeRawBufferPointer] = []
    var values: [RecordJSONValue] = []
    /// Whether the keys ascend bytewise, as Uni writes them: lookups then
    /// search in halves, else they scan.
    var ascending = true

    /// The value of `name`'s member.
    func value(for name: String) -> RecordJSONValue? {
        var name = name
        return name.withUTF8 { name in
            let name = UnsafeRawBufferPointer(name)
            if ascending {
                var low = 0
                var high = keys.count
                while low < high {
                    let middle = (low + high) / 2
                    let order = RecordJSONObject.compare(keys[middle], name)
                    if order == 0 { return values[middle] }
                    if order < 0 { low = middle + 1 } else { high = middle }
                }
                return nil
            }
            for index in keys.indices where RecordJSONObject.compare(keys[index], name) == 0 { return values[index] }
            return nil
        }
    }

    /// Bytewise order, shorter first on a common prefix: negative, zero or positive.
    static func compare(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Int {
        let common = min(left.count, right.count)
        if common > 0, let a = left.baseAddress, let b = right.baseAddress {
            let order = memcmp(a, b, common)
            if order != 0 { return Int(order) }
        }
        return left.count - right.count
    }
}

/// Why the fast path deferred; never shown (``RecordDecoder`` then asks
/// `JSONDecoder`, whose error is the one reported).
struct RecordDecoderDeferral: Error {}

/// A strict RFC 8259 parser over UTF-8 bytes.
struct RecordJSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    private var depth = 0
    private static let maximumDepth = 256

    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> RecordJSONValue {
        var parser = RecordJSONParser(bytes: bytes)
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.offset == bytes.count else { throw RecordDecoderDeferral() }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    private mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    private mutating func next() throws -> UInt8 {
        skipWhitespace()
        guard offset < bytes.count else { throw RecordDecoderDeferral() }
        return bytes[offset]
    }

    private mutating func expect(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - offset >= count else { throw RecordDecoderDeferral() }
        for index in 0..<count where bytes[offset + index] != literal.utf8Start[index] {
            throw RecordDecoderDeferral()
        }
        offset += count
    }

    private mutating func value() throws -> RecordJSONValue {
        switch try next() {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return .number(try number())
        }
    }

    private mutating func nested<Result>(_ body: (inout RecordJSONParser) throws -> Result) throws -> Result {
        depth += 1
        guard depth <= RecordJSONParser.maximumDepth else { throw RecordDecoderDeferral() }
        defer { depth -= 1 }
        offset += 1
        return try body(&self)
    }

    private mutating func object() throws -> RecordJSONValue {
        try nested { parser in
            var object = RecordJSONObject()
            if try parser.next() == UInt8(ascii: "}") {
                parser.offset += 1
                return .object(object)
            }
            object.keys.reserveCapacity(16)
            object.values.reserveCapacity(16)
            while true {
                guard try parser.next() == UInt8(ascii: "\"") else { throw RecordDecoderDeferral() }
                let key = try parser.key()
                guard try parser.next() == UInt8(ascii: ":") else { throw RecordDecoderDeferral() }
                parser.offset += 1
                if let last = object.keys.last, RecordJSONObject.compare(last, key) >= 0 { object.ascending = false }
                object.keys.append(key)
                object.values.append(try parser.value())
                let separator = try parser.next()
                parser.offset += 1
                if separator == UInt8(ascii: "}") { break }
                guard separator == UInt8(ascii: ",") else { throw RecordDecoderDeferral() }
            }
            // Not ascending (not written by Uni): refused if a key repeats.
            if !object.ascending, Set(object.keys.map { Array($0) }).count != object.keys.count { throw RecordDecoderDeferral() }
            return .object(object)
        }
    }

    /// A key's bytes, starting at the opening quote under `offset`: plain
    /// UTF-8 without escapes (Uni's keys are ASCII), else deferred.
    private mutating func key() throws -> UnsafeRawBufferPointer {
        offset += 1
        let start = offset
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                offset += 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<offset - 1])
            }
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { throw RecordDecoderDeferral() }
            offset += 1
        }
        throw RecordDecoderDeferral()
    }

    private mutating func array() throws -> RecordJSONValue {
        try nested { parser in
            var elements: [RecordJSONValue] = []
            if try parser.next() == UInt8(ascii: "]") {
                parser.offset += 1
                return .array(elements)
            }
            while true {
                elements.append(try parser.value())
                let separator = try parser.next()
                parser.offset += 1
                if separator == UInt8(ascii: "]") { break }
                guard separator == UInt8(ascii: ",") else { throw RecordDecoderDeferral() }
            }
            return .array(elements)
        }
    }

    /// The string starting at the opening quote under `offset`.
    private mutating func string() throws -> String {
        offset += 1
        let start = offset
        // Most strings have no escapes: one copy of their bytes, validated
        // unless they are ASCII.
        var ascii = true
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                let content = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                if ascii { return String(decoding: content, as: UTF8.self) }
                guard let text = String(validating: content, as: UTF8.self) else { throw RecordDecoderDeferral() }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw RecordDecoderDeferral() }
            if byte >= 0x80 { ascii = false }
            offset += 1
        }
        var unescaped = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: unescaped, as: UTF8.self) else { throw RecordDecoderDeferral() }
                return text
            case UInt8(ascii: "\\"):
                try unescape(into: &unescaped)
            case ..<0x20:
                throw RecordDecoderDeferral()
            default:
                unescaped.append(byte)
            }
        }
        throw RecordDecoderDeferral()
    }

    private mutating func unescape(into output: inout [UInt8]) throws {
        guard offset < bytes.count else { throw RecordDecoderDeferral() }
        let escape = bytes[offset]
        offset += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try hexQuad())
            if (0xD800..<0xDC00).contains(scalar) {
                try expect("\\u")
                let low = UInt32(try hexQuad())
                guard (0xDC00..<0xE000).contains(low) else { throw RecordDecoderDeferral() }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw RecordDecoderDeferral() }
            output.append(contentsOf: String(Character(unicode)).utf8)
        default:
            throw RecordDecoderDeferral()
        }
    }

    private mutating func hexQuad() throws -> UInt16 {
        guard bytes.count - offset >= 4 else { throw RecordDecoderDeferral() }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw RecordDecoderDeferral()
            }
            value = value << 4 | UInt16(digit)
            offset += 1
        }
        return value
    }

    /// A number's text, checked against the JSON grammar:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    private mutating func number() throws -> String {
        let start = offset
        func isDigit(_ index: Int) -> Bool {
            index < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
        }
        func digits() throws {
            guard isDigit(offset) else { throw RecordDecoderDeferral() }
            while isDigit(offset) { offset += 1 }
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "0") {
            offset += 1
        } else {
            try digits()
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            try digits()
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            try digits()
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
    }
}
