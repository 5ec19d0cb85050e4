import Foundation
import Testing
@testable import UniCore
import UniKit

/// A decoding failure, by the message a user would see.
private struct DecodeFailure: Error, Equatable {
    let message: String
}

/// What decoding `text` as `T` gives, in a form two decoders can be compared by.
private func outcome<T: Decodable>(_ type: T.Type, _ text: String, with decode: (T.Type, Data) throws -> T) -> Result<T, DecodeFailure> {
    do {
        return .success(try decode(type, Data(text.utf8)))
    } catch {
        return .failure(DecodeFailure(message: JSONCoding.describe(error)))
    }
}

/// Whether both decoders give the same value or the same message for `text`.
private func agree<T: Decodable & Equatable>(_ type: T.Type, _ text: String) -> Bool {
    outcome(type, text, with: RecordDecoder().decode) == outcome(type, text, with: JSONCoding.makeDecoder().decode)
}

/// The record decoder must give what JSONDecoder gives, value or message;
/// the fast path must be the one taken for what Uni writes, or the
/// comparison would only be testing JSONDecoder against itself.
@Suite("Record decoder")
struct RecordDecoderTests {
    static func encoded<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONCoding.makeEncoder().encode(value), as: UTF8.self)
    }

    @Test("a record with every field set, and a minimal one, decode on the fast path to what JSONDecoder gives")
    func recordsTakeTheFastPath() throws {
        var full = fullySetVM()
        full.config.quota = ResourceQuota(cpuShares: 512, memoryMax: .mebibytes(300))
        full.config.diskThrottle = DiskThrottle(iops: 50, bytesPerSecond: 1_048_576)
        full.config.environment["ESCAPES"] = "tab\tquote\" backslash\\ nul\u{01} emoji 🚀 é"
        let minimal = VM(id: VMID.random(), name: "m", config: VMConfig(image: "/k.elf"), imageKind: .kernel, createdAt: Date(timeIntervalSince1970: 0))
        for vm in [full, minimal] {
            let data = try JSONCoding.makeEncoder().encode(vm)
            let fast = try #require(RecordDecoder.fastDecode(VM.self, from: data))
            #expect(fast == (try JSONCoding.makeDecoder().decode(VM.self, from: data)))
            #expect(fast == vm)
        }
    }

    @Test("a record written before a field existed decodes on the fast path with the field's default")
    func olderRecord() throws {
        let vm = VM(id: VMID.random(), name: "old", config: VMConfig(image: "/k.elf"), imageKind: .kernel, createdAt: Date(timeIntervalSince1970: 0))
        var object = try #require(try JSONSerialization.jsonObject(with: JSONCoding.makeEncoder().encode(vm)) as? [String: Any])
        for key in ["start_count", "health", "exits", "restart_count", "daemon_recovered"] { object[key] = nil }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        #expect(RecordDecoder.fastDecode(VM.self, from: data) == vm)
    }

    @Test("strings with every JSON escape decode as JSONDecoder decodes them", arguments: [
        #"["plain", "\"\\\/\b\f\n\r\t", "\u00e9\u4e2d", "\ud83d\ude80", "mixed é and \u0041"]"#,
    ])
    func escapes(text: String) throws {
        let fast = try #require(RecordDecoder.fastDecode([String].self, from: Data(text.utf8)))
        #expect(fast == (try JSONDecoder().decode([String].self, from: Data(text.utf8))))
    }

    @Test("what the fast path does not take gets JSONDecoder's value or message", arguments: [
        "",
        "{",
        "not json",
        #"{"a": 1} trailing"#,
        #"["\ud83d"]"#,
        "[\"tab\traw\"]",
        #"[01]"#,
        #"[1.]"#,
        #"[-]"#,
        #"[1e400]"#,
        #"{"b": 1, "a": 2, "b": 3}"#,
        #"[1.0, 2, 3e0]"#,
        #"[300]"#,
        #"[null]"#,
        #"{"a": [1, 2], "a": [3]}"#,
    ])
    func deferrals(text: String) {
        #expect(agree([Int].self, text))
        #expect(agree([UInt8].self, text))
        #expect(agree([String: [Int]].self, text))
        #expect(agree([Double?].self, text))
    }

    @Test("a broken record fails with JSONDecoder's message", arguments: [
        ("schema_version", "99"), ("state", #""exploded""#), ("created_at", #""yesterday""#), ("start_count", "1.5"), ("name", "null"),
    ])
    func brokenRecords(field: String, value: String) throws {
        let vm = VM(id: VMID.random(), name: "b", config: VMConfig(image: "/k.elf"), imageKind: .kernel, createdAt: Date(timeIntervalSince1970: 0))
        // The field's value becomes `value`; the old one moves to a key nobody reads.
        let text = try Self.encoded(vm).replacingOccurrences(of: "\"\(field)\":", with: "\"\(field)\":\(value),\"x_\(field)\":")
        let fast = outcome(VM.self, text, with: RecordDecoder().decode)
        guard case .failure = fast else {
            Issue.record("\(field)=\(value) decoded")
            return
        }
        #expect(fast == outcome(VM.self, text, with: JSONCoding.makeDecoder().decode))
    }
}
