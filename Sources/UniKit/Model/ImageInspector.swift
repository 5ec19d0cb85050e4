import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells a kernel image from a bootable disk image by its first bytes.
///
/// Only regular files are read: a FIFO would block the open (and with it
/// whoever asked) until a writer came, and a device may have side effects
/// on open, so anything else is refused by its `stat` before being opened.
public enum ImageInspector {
    /// How many bytes of the header the kinds are told apart by.
    private static let headerBytes = 1024

    /// The kind of the image at `path`, read on the calling thread.
    ///
    /// The file is opened with `O_NONBLOCK` and checked again with `fstat`
    /// after the open, so a path swapped for a FIFO between the two checks
    /// still neither blocks nor is read.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the path when it is
    ///   missing, unreadable, not a regular file (saying what it is), or
    ///   neither kind.
    public static func kind(ofImageAt path: String) throws -> ImageKind {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw UniError.invalid("image '\(path)' does not exist") }
            throw unreadable(path, code)
        }
        try requireRegularFile(path, mode: info.st_mode)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw unreadable(path, errno) }
        defer { close(fd) }
        guard fstat(fd, &info) == 0 else { throw unreadable(path, errno) }
        try requireRegularFile(path, mode: info.st_mode)
        return try classify(try readHeader(fd, path: path), path: path)
    }

    /// The kind of the image at `path`, read off the caller's actor.
    ///
    /// `@concurrent` runs it on the global concurrent executor, so an actor
    /// (the VM manager) awaiting it stays free to serve other calls while
    /// the file system answers (a slow or hung mount, say).
    /// - Throws: as ``kind(ofImageAt:)``.
    @concurrent
    public static func inspect(_ path: String) async throws -> ImageKind {
        try kind(ofImageAt: path)
    }

    private static func requireRegularFile(_ path: String, mode: mode_t) throws {
        let type = mode & S_IFMT
        guard type != S_IFREG else { return }
        let what = switch type {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        default: "a special file"
        }
        throw UniError.invalid("image '\(path)' is \(what), not a regular file")
    }

    /// Up to ``headerBytes`` from offset 0; shorter for a shorter file.
    private static func readHeader(_ fd: Int32, path: String) throws -> [UInt8] {
        var header = [UInt8](repeating: 0, count: headerBytes)
        var filled = 0
        while filled < header.count {
            let count = header[filled...].withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(filled)) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw unreadable(path, errno) }
            if count == 0 { break }
            filled += count
        }
        return Array(header[..<filled])
    }

    private static func classify(_ header: [UInt8], path: String) throws -> ImageKind {
        if header.starts(with: [0x7F, 0x45, 0x4C, 0x46]) { return .kernel }  // ELF (PVH or multiboot)
        if header.count >= 0x206, Array(header[0x202..<0x206]) == Array("HdrS".utf8) { return .kernel }  // bzImage
        if header.count >= 512, header[510] == 0x55, header[511] == 0xAA { return .disk }  // MBR boot signature
        throw UniError.invalid("image '\(path)' is neither a kernel (ELF or bzImage) nor a bootable disk image (no boot signature at byte 510)")
    }

    private static func unreadable(_ path: String, _ code: Int32) -> UniError {
        UniError.invalid("image '\(path)' is not readable: \(String(cString: strerror(code)))")
    }
}
