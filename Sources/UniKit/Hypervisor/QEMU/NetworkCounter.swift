import CUniSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Counts a VM's network bytes from two QEMU `filter-dump` objects.
///
/// QEMU's user-mode networking keeps no byte counter, so the command line
/// attaches a `filter-dump` per direction to the VM's netdev
/// (``QEMUCommandLine/networkDumpArguments``); each writes a pcap stream of
/// record headers into a FIFO in the VM's folder, and one thread here reads
/// both and sums the packets' original lengths (``PacketCaptureTally``).
///
/// QEMU writes the dump synchronously in its main loop: a full FIFO stalls
/// the guest. So the thread does nothing but read and add: it never takes a
/// lock someone else holds, never calls into the manager, and readers of
/// the sums load atomics. Between reads it lets records gather for 10 ms
/// (a FIFO holds ~3,800 of them), so the sums lag the traffic by that much.
///
/// Open it before spawning QEMU: QEMU opens the FIFO for writing, which
/// blocks until a reader exists.
final class NetworkCounter: Sendable {
    /// The FIFOs, by the guest's direction.
    struct Paths: Sendable, Hashable {
        /// Packets the guest receives (QEMU's `queue=tx`).
        var received: String
        /// Packets the guest sends (QEMU's `queue=rx`).
        var transmitted: String

        /// The FIFOs of the VM in `directory`.
        init(_ directory: VMDirectory) {
            received = directory.networkReceivedDumpPath
            transmitted = directory.networkTransmittedDumpPath
        }
    }

    /// How long the reader lets records gather in the FIFOs between reads.
    static let batchMicroseconds: UInt32 = 10_000

    /// A sum that is no longer a measurement (the stream was not pcap).
    private static let unavailable = UInt64.max

    private let receivedBytes = Atomic<UInt64>(0)
    private let transmittedBytes = Atomic<UInt64>(0)
    /// The write end of the pipe that wakes the reader to stop; -1 once the
    /// reader has closed it. Behind a lock so a stop never writes to a
    /// descriptor number that was closed and reused.
    private let stopWriter: Mutex<Int32>
    private let finished = OneShot<Void>()

    /// Bytes the guest received, or `nil` when the stream could not be read as pcap.
    var received: UInt64? { NetworkCounter.measured(receivedBytes) }
    /// Bytes the guest sent, or `nil` when the stream could not be read as pcap.
    var transmitted: UInt64? { NetworkCounter.measured(transmittedBytes) }

    private static func measured(_ sum: borrowing Atomic<UInt64>) -> UInt64? {
        let value = sum.load(ordering: .relaxed)
        return value == unavailable ? nil : value
    }

    private init(stopWriter: Int32) {
        self.stopWriter = Mutex(stopWriter)
    }

    /// Creates the FIFOs at `paths` (replacing what a previous run left),
    /// opens their read ends and starts the reading thread.
    /// - Throws: ``UniError`` (`hypervisorFailed`) naming the FIFO that
    ///   could not be made or opened; nothing is left open.
    static func start(at paths: Paths) throws -> NetworkCounter {
        var opened: [Fifo] = []
        do {
            for path in [paths.received, paths.transmitted] {
                opened.append(try Fifo(creatingAt: path))
            }
        } catch {
            opened.forEach { $0.close() }
            throw error
        }
        var stopPipe: [Int32] = [-1, -1]
        guard cuni_pipe_cloexec(&stopPipe) == 0 else {
            let code = errno
            opened.forEach { $0.close() }
            throw UniError(.hypervisorFailed, "cannot create the network counter's pipe: \(String(cString: strerror(code)))")
        }
        let counter = NetworkCounter(stopWriter: stopPipe[1])
        let (received, transmitted, stopReader) = (opened[0], opened[1], stopPipe[0])
        ChildProcess.startThread(name: "uni-net-counter") {
            counter.read(received: received, transmitted: transmitted, stop: stopReader)
        }
        return counter
    }

    /// Makes the reader drain what the FIFOs hold, close them and end: for
    /// a QEMU that ended without opening them (a failed start). A QEMU that
    /// opened them ends the reader by exiting. Safe to call more than once.
    func stop() {
        stopWriter.withLock { fd in
            guard fd >= 0 else { return }
            var byte: UInt8 = 1
            _ = Glibc.write(fd, &byte, 1)
        }
    }

    /// Waits until the reader has ended and removed the FIFOs (tests).
    func waitUntilFinished() async { await finished.wait() }

    /// The reading thread: waits in `poll` until QEMU has written, reads
    /// everything there is, adds it up, and ends when both FIFOs reach
    /// end-of-file (QEMU closed them) or a stop is requested.
    private func read(received: Fifo, transmitted: Fifo, stop: Int32) {
        let fifos = [received, transmitted]
        var tallies = [PacketCaptureTally(), PacketCaptureTally()]
        var open = [true, true]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        var stopping = false
        while open.contains(true) {
            // A FIFO no writer has opened yet reports nothing to poll (no
            // POLLHUP before a first writer), so this also waits for QEMU.
            var fds = fifos.indices.map { pollfd(fd: open[$0] ? fifos[$0].fd : -1, events: Int16(POLLIN), revents: 0) }
            fds.append(pollfd(fd: stop, events: Int16(POLLIN), revents: 0))
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                guard errno == EINTR else { break }
                continue
            }
            stopping = fds[2].revents != 0
            for index in fifos.indices where open[index] && (stopping || fds[index].revents != 0) {
                let ended = fifos[index].drain(into: buffer) { tallies[index].consume($0) }
                publish(tallies[index], direction: index)
                if ended || stopping { open[index] = false }
            }
            if !stopping && open.contains(true) {
                // Lets packets gather: a reader waiting in poll is woken by
                // every packet QEMU writes, which cost QEMU's main loop ~50%
                // more CPU per byte (docs/performance.md). The FIFO's 64 KiB
                // hold ~3,800 records, far more than a millisecond brings.
                usleep(NetworkCounter.batchMicroseconds)
            }
        }
        fifos.forEach { $0.close() }
        stopWriter.withLock { fd in
            Glibc.close(fd)
            fd = -1
        }
        Glibc.close(stop)
        finished.resolve(())
    }

    /// Makes `tally` the sum of direction `index` of ``start(at:)``'s FIFOs.
    private func publish(_ tally: PacketCaptureTally, direction index: Int) {
        let value = tally.isValid ? tally.bytes : NetworkCounter.unavailable
        if index == 0 {
            receivedBytes.store(value, ordering: .relaxed)
        } else {
            transmittedBytes.store(value, ordering: .relaxed)
        }
    }
}

/// The read end of one FIFO.
private struct Fifo: Sendable {
    let path: String
    let fd: Int32
    /// The FIFO's identity, so closing removes this FIFO and not one a
    /// later run of the VM made at the same path.
    private let device: UInt64
    private let inode: UInt64

    /// Makes a FIFO at `path` and opens it for reading without waiting for
    /// a writer.
    init(creatingAt path: String) throws {
        unlink(path)
        guard mkfifo(path, 0o600) == 0 else {
            throw UniError(.hypervisorFailed, "cannot create FIFO '\(path)': \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        var status = stat()
        guard fd >= 0, fstat(fd, &status) == 0 else {
            let code = errno
            if fd >= 0 { Glibc.close(fd) }
            unlink(path)
            throw UniError(.hypervisorFailed, "cannot open FIFO '\(path)': \(String(cString: strerror(code)))")
        }
        self.path = path
        self.fd = fd
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    /// Reads until the FIFO is empty and hands each chunk to `sink`.
    /// - Returns: whether the FIFO reached end-of-file (no writer left) or failed.
    func drain(into buffer: UnsafeMutableRawBufferPointer, _ sink: (UnsafeRawBufferPointer) -> Void) -> Bool {
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                sink(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return !(count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            }
        }
    }

    /// Closes the read end and removes the FIFO if it is still this one.
    func close() {
        var status = stat()
        if stat(path, &status) == 0, UInt64(status.st_dev) == device, UInt64(status.st_ino) == inode {
            unlink(path)
        }
        Glibc.close(fd)
    }
}
