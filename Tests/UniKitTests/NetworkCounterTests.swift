import Foundation
import Testing
@testable import UniKit
import UniKitTesting

/// A pcap stream as QEMU's filter-dump writes it.
struct PacketCapture {
    var bigEndian = false
    var captureLimit: UInt32 = 1
    var bytes: [UInt8] = []

    init(bigEndian: Bool = false, captureLimit: UInt32 = 1, magic: UInt32 = 0xa1b2_c3d4) {
        self.bigEndian = bigEndian
        self.captureLimit = captureLimit
        // magic, version 2.4, thiszone, sigfigs, snaplen, linktype (Ethernet)
        append(magic)
        append(UInt32(2) | UInt32(4) << 16)
        append(0)
        append(0)
        append(captureLimit)
        append(1)
    }

    /// Adds a record of a packet of `length` bytes, `captured` of them kept.
    mutating func packet(_ length: UInt32, captured: UInt32? = nil) {
        let kept = captured ?? min(length, captureLimit)
        append(1_700_000_000)
        append(0)
        append(kept)
        append(length)
        bytes += [UInt8](repeating: 0xab, count: Int(kept))
    }

    private mutating func append(_ word: UInt32) {
        let value = bigEndian ? word.byteSwapped : word
        bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

@Suite("network byte counter")
struct NetworkCounterTests {
    @Test("sums orig_len over pcap records, whatever the chunks the pipe delivers")
    func splitReads() {
        var capture = PacketCapture(captureLimit: 64)
        for length: UInt32 in [60, 1514, 54, 1514, 66] { capture.packet(length) }
        var whole = PacketCaptureTally()
        whole.consume(capture.bytes)
        #expect(whole.bytes == 3208 && whole.packets == 5 && whole.isValid)
        for chunkSize in [1, 3, 16, 17, 23, 24, 25, 100] {
            var tally = PacketCaptureTally()
            for start in stride(from: 0, to: capture.bytes.count, by: chunkSize) {
                tally.consume(Array(capture.bytes[start..<min(start + chunkSize, capture.bytes.count)]))
            }
            #expect(tally == whole, "chunks of \(chunkSize)")
        }
    }

    @Test("a record header cut short is counted once the rest arrives, never before")
    func truncatedHeader() {
        var capture = PacketCapture()
        capture.packet(1000)
        capture.packet(500)
        let cut = PacketCaptureTally.globalHeaderSize + PacketCaptureTally.recordHeaderSize + 1 + 10  // 10 bytes into the second header
        var tally = PacketCaptureTally()
        tally.consume(Array(capture.bytes[..<cut]))
        #expect(tally.bytes == 1000 && tally.packets == 1)
        tally.consume(Array(capture.bytes[cut...]))
        #expect(tally.bytes == 1500 && tally.packets == 2)

        var early = PacketCaptureTally()
        early.consume(Array(capture.bytes[..<20]))  // inside the global header
        #expect(early.bytes == 0 && early.packets == 0 && early.isValid)
    }

    @Test("big-endian and nanosecond streams count; a stream that is not pcap stops counting")
    func formats() {
        var swapped = PacketCapture(bigEndian: true)
        swapped.packet(1514)
        var nanoseconds = PacketCapture(magic: 0xa1b2_3c4d)
        nanoseconds.packet(90)
        var garbage = PacketCapture(magic: 0x1234_5678)
        garbage.packet(90)
        var overlong = PacketCapture(captureLimit: 1)
        overlong.packet(90)
        overlong.packet(90, captured: 90)  // more than snaplen: misaligned or foreign
        overlong.packet(90)
        var tallies = [swapped, nanoseconds, garbage, overlong].map { capture in
            var tally = PacketCaptureTally()
            tally.consume(capture.bytes)
            return tally
        }
        #expect(tallies[0].bytes == 1514 && tallies[0].isValid)
        #expect(tallies[1].bytes == 90 && tallies[1].isValid)
        #expect(!tallies[2].isValid && tallies[2].bytes == 0)
        #expect(!tallies[3].isValid && tallies[3].bytes == 90)
        tallies[3].consume(PacketCapture().bytes)
        #expect(tallies[3].bytes == 90)
    }

    @Test("reads the FIFOs a writer fills, per direction, then removes them when the writer is gone")
    func fifos() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let paths = NetworkCounter.Paths(VMDirectory(path: directory.path))
        let counter = try NetworkCounter.start(at: paths)
        #expect(counter.received == 0 && counter.transmitted == 0)
        var received = PacketCapture()
        var transmitted = PacketCapture()
        var transmittedBytes: UInt64 = 0
        for index in 0..<20_000 {
            let length = UInt32(54 + index % 7)
            received.packet(1514)
            transmitted.packet(length)
            transmittedBytes += UInt64(length)
        }
        // Blocking writes, as QEMU's: they return only because the reader
        // keeps draining (20,000 records are 5x a pipe's 64 KiB).
        for (path, capture) in [(paths.received, received), (paths.transmitted, transmitted)] {
            let fd = open(path, O_WRONLY)
            try #require(fd >= 0)
            for start in stride(from: 0, to: capture.bytes.count, by: 4099) {
                let chunk = Array(capture.bytes[start..<min(start + 4099, capture.bytes.count)])
                #expect(chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == chunk.count)
            }
            close(fd)
        }
        await counter.waitUntilFinished()
        #expect(counter.received == 20_000 * 1514)
        #expect(counter.transmitted == transmittedBytes)
        #expect(!FileManager.default.fileExists(atPath: paths.received))
        #expect(!FileManager.default.fileExists(atPath: paths.transmitted))
    }

    @Test("a stop ends a reader whose QEMU never opened the FIFOs; a FIFO made since by another run stays")
    func stopWithoutWriter() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let paths = NetworkCounter.Paths(VMDirectory(path: directory.path))
        let counter = try NetworkCounter.start(at: paths)
        // The next run's FIFO at the same path, made before this reader ends.
        unlink(paths.received)
        #expect(mkfifo(paths.received, 0o600) == 0)
        counter.stop()
        await counter.waitUntilFinished()
        counter.stop()
        #expect(counter.received == 0 && counter.transmitted == 0)
        #expect(FileManager.default.fileExists(atPath: paths.received))
        #expect(!FileManager.default.fileExists(atPath: paths.transmitted))
    }

    @Test("a FIFO that cannot be made is named in the error, and nothing is left open")
    func unwritableFolder() throws {
        let paths = NetworkCounter.Paths(VMDirectory(path: "/nonexistent/vm"))
        let error = try #require(throws: UniError.self) { try NetworkCounter.start(at: paths) }
        #expect(error.message == "cannot create FIFO '/nonexistent/vm/net-received.fifo': No such file or directory")
    }
}

@Suite("QMP for stats")
struct QMPStatsTests {
    @Test("a QMP socket that never answers (another client holds QEMU) fails within the timeout")
    func timeout() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let listener = try SilentSocket(path: directory.path + "/qmp.sock")
        let path = listener.path
        // Without the timeout this test would never end.
        let error = await #expect(throws: UniError.self) {
            try await QMPClient(socketPath: path).execute("query-blockstats", timeout: .milliseconds(200))
        }
        #expect(error?.message == "QMP query-blockstats got no answer within 0.2 seconds")
    }

    @Test("the VM's QMP channel runs one command at a time: a caller queued behind a stuck one gives up within its own timeout")
    func channelQueue() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let listener = try SilentSocket(path: directory.path + "/qmp.sock")
        let channel = QMPChannel(client: QMPClient(socketPath: listener.path))
        let first = Task { try await channel.execute("query-status", timeout: .seconds(1)) }
        var waited = 0
        while await !channel.isBusy, waited < 10_000 {
            await Task.yield()
            waited += 1
        }
        let queued = await #expect(throws: UniError.self) { try await channel.execute("query-blockstats", timeout: .milliseconds(100)) }
        #expect(queued?.message == "QMP query-blockstats waited 0.1 seconds for the VM's earlier QMP commands")
        let stuck = await #expect(throws: UniError.self) { _ = try await first.value }
        #expect(stuck?.message.hasPrefix("QMP query-status got no answer within 0.9") == true, "\(String(describing: stuck))")
        #expect(await !channel.isBusy)
    }
}
