/// Sums the original lengths of the packets in a pcap stream, the format
/// QEMU's `filter-dump` writes: a 24-byte global header, then per packet a
/// 16-byte record header (`ts_sec`, `ts_usec`, `incl_len`, `orig_len`)
/// followed by `incl_len` captured bytes.
///
/// Fed in chunks as a pipe delivers them: a chunk may end anywhere, inside
/// a header or a packet. Only `orig_len` matters (the bytes on the wire);
/// the captured bytes are skipped.
struct PacketCaptureTally: Sendable, Hashable {
    /// The sum of `orig_len` over the complete record headers so far.
    private(set) var bytes: UInt64 = 0
    /// The complete record headers so far.
    private(set) var packets: UInt64 = 0
    /// False once the stream is not pcap (an unknown magic number, or a
    /// record longer than the capture limit the header announced): the sums
    /// stop, since a misaligned stream would count garbage.
    private(set) var isValid = true

    static let globalHeaderSize = 24
    static let recordHeaderSize = 16

    /// The header being assembled (global, then one per record).
    private var header: [UInt8] = []
    private var sawGlobalHeader = false
    /// Whether the writer's byte order is the opposite of little-endian.
    private var bigEndian = false
    /// The global header's `snaplen`: no record captures more.
    private var captureLimit: UInt32 = 0
    /// Captured bytes of the current packet not yet skipped.
    private var remainingPayload = 0

    /// Consumes the next chunk of the stream.
    mutating func consume(_ chunk: UnsafeRawBufferPointer) {
        var index = 0
        while index < chunk.count, isValid {
            if remainingPayload > 0 {
                let skipped = min(remainingPayload, chunk.count - index)
                remainingPayload -= skipped
                index += skipped
                continue
            }
            let size = sawGlobalHeader ? PacketCaptureTally.recordHeaderSize : PacketCaptureTally.globalHeaderSize
            if header.isEmpty && chunk.count - index >= size {
                // The usual case: a whole header in the chunk, read in place.
                read(header: UnsafeRawBufferPointer(rebasing: chunk[index..<(index + size)]))
                index += size
                continue
            }
            let taken = min(size - header.count, chunk.count - index)
            header.append(contentsOf: chunk[index..<(index + taken)])
            index += taken
            guard header.count == size else { break }
            let assembled = header
            assembled.withUnsafeBytes { read(header: $0) }
            header.removeAll(keepingCapacity: true)
        }
    }

    /// Consumes `bytes` (tests).
    mutating func consume(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { consume($0) }
    }

    private mutating func read(header: UnsafeRawBufferPointer) {
        if sawGlobalHeader { readRecordHeader(header) } else { readGlobalHeader(header) }
    }

    private mutating func readGlobalHeader(_ header: UnsafeRawBufferPointer) {
        sawGlobalHeader = true
        // Microsecond (a1b2c3d4) or nanosecond (a1b23c4d) timestamps, in
        // the writer's byte order; QEMU writes its host's.
        switch word(header, at: 0) {
        case 0xa1b2_c3d4, 0xa1b2_3c4d: bigEndian = false
        case 0xd4c3_b2a1, 0x4d3c_b2a1: bigEndian = true
        default: isValid = false; return
        }
        captureLimit = word(header, at: 16)
    }

    private mutating func readRecordHeader(_ header: UnsafeRawBufferPointer) {
        let captured = word(header, at: 8)
        guard captured <= captureLimit else {
            isValid = false
            return
        }
        bytes += UInt64(word(header, at: 12))
        packets += 1
        remainingPayload = Int(captured)
    }

    /// The 32-bit field at `offset` of `header`, in the writer's byte order.
    private func word(_ header: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        let little = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        return bigEndian ? little.byteSwapped : little
    }
}
