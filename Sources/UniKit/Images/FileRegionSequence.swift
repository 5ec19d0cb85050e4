import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// `length` bytes of a file from `offset`, as 256 KiB buffers read on
/// demand: an upload body that never holds a blob in memory whole.
struct FileRegionSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    let path: String
    let offset: UInt64
    let length: UInt64
    /// Called with the size of each buffer handed out.
    let moved: @Sendable (Int) -> Void

    static let bufferSize = 256 << 10

    func makeAsyncIterator() -> Iterator { Iterator(region: self) }

    /// Closes the file when the iterator is dropped, read to the end or not.
    final class FileHandle {
        var descriptor: Int32 = -1
        deinit { if descriptor >= 0 { close(descriptor) } }
    }

    struct Iterator: AsyncIteratorProtocol {
        let region: FileRegionSequence
        var position: UInt64 = 0
        let file = FileHandle()
        let allocator = ByteBufferAllocator()

        init(region: FileRegionSequence) { self.region = region }

        mutating func next() async throws -> ByteBuffer? {
            guard position < region.length else { return nil }
            if file.descriptor < 0 {
                file.descriptor = open(region.path, O_RDONLY | O_CLOEXEC)
                guard file.descriptor >= 0 else {
                    throw UniError(.storeFailed, "cannot read blob file '\(region.path)': \(String(cString: strerror(errno)))")
                }
            }
            let count = Int(Swift.min(UInt64(FileRegionSequence.bufferSize), region.length - position))
            var buffer = allocator.buffer(capacity: count)
            let fd = file.descriptor, at = off_t(region.offset + position)
            var failure: Int32 = 0
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer -> Int in
                while true {
                    let got = pread(fd, pointer.baseAddress, count, at)
                    if got < 0, errno == EINTR { continue }
                    if got < 0 { failure = errno }
                    return Swift.max(got, 0)
                }
            }
            guard read > 0 else {
                let reason = failure != 0 ? String(cString: strerror(failure)) : "it ends at \(region.offset + position) bytes"
                throw UniError(.storeFailed, "cannot read blob file '\(region.path)': \(reason)")
            }
            position += UInt64(read)
            region.moved(read)
            return buffer
        }
    }
}
