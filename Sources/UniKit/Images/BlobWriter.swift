import Crypto
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One blob on its way into the store: bytes are hashed as written and the
/// file appears under its digest only at ``commit()``.
public final class BlobWriter: Sendable {
    private struct State {
        var descriptor: Int32
        var hasher = SHA256()
        var size: UInt64 = 0
    }

    private let store: ImageStore
    private let expected: OCIDescriptor?
    private let mediaType: String
    private let temporaryPath: String
    // One task writes at a time (a pull's layer, an import); the lock makes
    // that a guarantee rather than a promise.
    private let state: Mutex<State>

    /// Bytes written so far.
    public var size: UInt64 { state.withLock { $0.size } }

    init(store: ImageStore, expected: OCIDescriptor?, mediaType: String? = nil) throws {
        self.store = store
        self.expected = expected
        self.mediaType = expected?.mediaType ?? mediaType ?? "application/octet-stream"
        temporaryPath = store.root + "/tmp/\(getpid())-" + UUID().uuidString
        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw UniError(.storeFailed, "cannot write to the image store '\(store.root)': \(String(cString: strerror(errno)))")
        }
        state = Mutex(State(descriptor: descriptor))
    }

    deinit { cancel() }

    /// Appends `bytes`.
    /// - Throws: ``UniError``: `storeFailed` (disk full, ...) or a size
    ///   beyond the expected one (`invalidArgument`).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try state.withLock { state in
            guard state.descriptor >= 0 else { throw UniError(.storeFailed, "blob writer is closed") }
            if let expected, state.size + UInt64(bytes.count) > expected.size {
                throw UniError.invalid("blob \(expected.digest) is larger than the \(expected.size) bytes its descriptor says")
            }
            state.hasher.update(bufferPointer: bytes)
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(state.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0, errno == EINTR { continue }
                guard written > 0 else {
                    throw UniError(.storeFailed, "cannot write to the image store '\(store.root)': \(String(cString: strerror(errno)))")
                }
                offset += written
            }
            state.size += UInt64(bytes.count)
        }
    }

    /// Appends `data`.
    public func write(_ data: some DataProtocol) throws {
        for region in data.regions { try region.withUnsafeBytes { try write($0) } }
    }

    /// Checks digest and size, syncs, and moves the blob into place.
    /// - Returns: the blob's descriptor.
    /// - Throws: ``UniError`` (`invalidArgument`) on a digest or size
    ///   mismatch (nothing is stored), `storeFailed` when it cannot be synced or moved.
    public func commit() throws -> OCIDescriptor {
        defer { cancel() }
        let (digest, size) = try state.withLock { state -> (String, UInt64) in
            let digest = "sha256:" + state.hasher.finalize().map { String(format: "%02x", $0) }.joined()
            if let expected {
                guard state.size == expected.size else {
                    throw UniError.invalid("blob \(expected.digest) is truncated: \(state.size) of \(expected.size) bytes")
                }
                guard digest == expected.digest else {
                    throw UniError.invalid("blob digest mismatch: expected \(expected.digest), got \(digest); nothing was stored")
                }
            }
            guard fsync(state.descriptor) == 0 else {
                throw UniError(.storeFailed, "cannot sync the image store '\(store.root)': \(String(cString: strerror(errno)))")
            }
            close(state.descriptor)
            state.descriptor = -1
            return (digest, state.size)
        }
        guard rename(temporaryPath, store.blobPath(digest)) == 0 else {
            throw UniError(.storeFailed, "cannot store blob \(digest): \(String(cString: strerror(errno)))")
        }
        let folder = open(store.root + "/blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
        return OCIDescriptor(mediaType: mediaType, digest: digest, size: size)
    }

    /// Drops the partial blob.
    public func cancel() {
        state.withLock { state in
            if state.descriptor >= 0 {
                close(state.descriptor)
                state.descriptor = -1
            }
        }
        unlink(temporaryPath)
    }
}
