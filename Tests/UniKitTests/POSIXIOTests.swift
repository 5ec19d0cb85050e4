import Foundation
import Synchronization
import Testing
import UniKit

@Suite("POSIX write loop")
struct POSIXIOTests {
    @Test("writes a buffer larger than a pipe holds, in order, while another thread reads")
    func largeBufferThroughPipe() throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        defer { close(readEnd) }
        // Four times a pipe's default 64 KiB: the writer must wait for the reader.
        let payload = (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let outcome = Mutex<Int32?>(nil)
        Thread.detachNewThread {
            let failure = payload.withUnsafeBytes { POSIXIO.writeAll(writeEnd, $0) }
            outcome.withLock { $0 = failure }
            // Closed after the outcome is stored: the reader's end of file means it is there.
            close(writeEnd)
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            received += chunk[0..<count]
        }
        #expect(outcome.withLock { $0 } == nil)
        #expect(received == payload)
    }

    @Test("a peer that closed gives EPIPE, not SIGPIPE, with noSignal")
    func closedPeer() throws {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        close(fds[1])
        defer { close(fds[0]) }
        let bytes: [UInt8] = Array("hello".utf8)
        #expect(bytes.withUnsafeBytes { POSIXIO.writeAll(fds[0], $0, noSignal: true) } == EPIPE)
    }

    @Test("a full device gives ENOSPC; a closed descriptor gives EBADF")
    func failures() throws {
        let full = open("/dev/full", O_WRONLY | O_CLOEXEC)
        try #require(full >= 0)
        defer { close(full) }
        let bytes: [UInt8] = [1, 2, 3]
        #expect(bytes.withUnsafeBytes { POSIXIO.writeAll(full, $0) } == ENOSPC)
        #expect(bytes.withUnsafeBytes { POSIXIO.writeAll(-1, $0) } == EBADF)
    }

    @Test("an empty buffer writes nothing and succeeds, even on a bad descriptor")
    func empty() {
        #expect(POSIXIO.writeAll(-1, UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
        #expect([UInt8]().withUnsafeBytes { POSIXIO.writeAll(-1, $0) } == nil)
    }
}
