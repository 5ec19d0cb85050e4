import Foundation
import Testing
@testable import UniCLI
import UniCore

/// The CLI's own HTTP/1.1 client: response framing byte by byte, paths, and
/// the switch to `uni-otel`.
@Suite("uni's client")
struct CLIClientTests {
    /// Feeds `bytes` to a reader in pieces of `size` bytes.
    static func read(_ bytes: [UInt8], pieces size: Int) throws -> (HTTPResponseHead, [UInt8]) {
        var offset = 0
        let fill: HTTPResponseReader.Fill = { buffer in
            guard offset < bytes.count else { return false }
            let end = min(bytes.count, offset + size)
            buffer += bytes[offset..<end]
            offset = end
            return true
        }
        var reader = HTTPResponseReader()
        let head = try reader.readHead(from: fill)
        var body: [UInt8] = []
        while let chunk = try reader.readBodyChunk(from: fill) { body += chunk }
        return (head, body)
    }

    @Test("chunked, sized and until-close bodies read the same whatever the read sizes", arguments: [1, 2, 3, 7, 64, 4096])
    func framing(pieces: Int) throws {
        let chunked = Array("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Uni-VM-ID: 0123456789ab\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n".utf8)
        let (head, body) = try Self.read(chunked, pieces: pieces)
        #expect(head.status == 201)
        #expect(head.reason == "Created")
        #expect(head.headers["x-uni-vm-id"] == "0123456789ab")
        #expect(String(decoding: body, as: UTF8.self) == "hello world")

        let sized = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".utf8)
        #expect(try Self.read(sized, pieces: pieces).1 == Array("hello".utf8))
        let untilClose = Array("HTTP/1.1 200 OK\r\n\r\nall of it".utf8)
        #expect(try Self.read(untilClose, pieces: pieces).1 == Array("all of it".utf8))
        let noContent = Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)
        #expect(try Self.read(noContent, pieces: pieces).1.isEmpty)
    }

    @Test("a malformed or cut answer is an error that says so")
    func malformed() throws {
        let cases: [(String, String)] = [
            ("SSH-2.0-OpenSSH\r\n\r\n", "unid sent a malformed HTTP response: status line 'SSH-2.0-OpenSSH'"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "unid sent a malformed HTTP response: chunk size 'zz'"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "unid closed the connection in the middle of an answer"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "unid closed the connection in the middle of an answer"),
            ("HTTP/1.1 200 OK\r\nContent-Le", "unid closed the connection before answering"),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "unid sent a malformed HTTP response: content-length '-1'"),
        ]
        for (text, message) in cases {
            let error = try #require(throws: UniError.self) { try Self.read(Array(text.utf8), pieces: 3) }
            #expect(error.message == message)
        }
    }

    @Test("a data dir too deep for a Unix socket path is refused with what to do")
    func longSocketPath() throws {
        let path = "/tmp/" + String(repeating: "d", count: 120) + "/unid.sock"
        let error = try #require(throws: UniError.self) { try UniClient(socketPath: path).info() }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "socket path '\(path)' is \(path.utf8.count) bytes, more than the 103 a Unix socket path may have: use a shorter --data-dir")
    }

    @Test("references are percent-encoded in paths")
    func paths() {
        #expect(UniClient.percentEncoded("web-1_a.b~") == "web-1_a.b~")
        #expect(UniClient.percentEncoded("a b/../é") == "a%20b%2F..%2F%C3%A9")
    }

    @Test("absolute paths are made lexically: . and .. go, the current directory comes first")
    func absolutePaths() {
        #expect(DataDirectory.absolute("/a/./b/../c/") == "/a/c")
        #expect(DataDirectory.absolute("/..") == "/")
        #expect(DataDirectory.absolute("k.elf") == FileManager.default.currentDirectoryPath + "/k.elf")
    }

    @Test("trace export is asked for by --trace-addr or the standard OTEL variables")
    func traceSwitch() {
        #expect(UniEntryPoint.traceExportRequested(arguments: ["ps", "--trace-addr", "localhost:4317"], environment: [:]))
        #expect(UniEntryPoint.traceExportRequested(arguments: ["ps", "--trace-addr=localhost:4317"], environment: [:]))
        #expect(!UniEntryPoint.traceExportRequested(arguments: ["ps", "--trace-addr="], environment: [:]))
        #expect(!UniEntryPoint.traceExportRequested(arguments: ["run", "k", "--", "--trace-addr", "x"], environment: [:]))
        #expect(UniEntryPoint.traceExportRequested(arguments: ["ps"], environment: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"]))
        #expect(!UniEntryPoint.traceExportRequested(arguments: ["ps"], environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": ""]))
    }
}
