import CUniSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The file operations both cgroup controllers share: plain reads and
/// writes of cgroupfs files (never created: the kernel makes them with
/// the folder), folders made and removed.
enum CgroupFiles {
    /// The whole text of `path`, or `nil` when it cannot be read.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += buffer[0..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 {
                return nil
            } else {
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The number after `key` on the line `key N` of a flat keyed file
    /// (`memory.events`, `memory.oom_control`).
    static func keyedValue(_ key: String, in path: String) -> UInt64? {
        guard let text = read(path) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == key { return UInt64(fields[1]) }
        }
        return nil
    }

    /// Writes `value` to the existing file `path` in one `write`, as cgroupfs wants.
    /// - Throws: ``UniError`` naming `what`, the value and the file.
    static func write(_ value: String, to path: String, what: String) throws {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw failure(what, value, path, errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        var written: Int
        repeat {
            written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        } while written < 0 && errno == EINTR
        guard written == bytes.count else { throw failure(what, value, path, written < 0 ? errno : EIO) }
    }

    /// Writes `value` unless the file holds it already (the parent cgroup's
    /// weight: read on every VM start, written when it changed).
    static func writeIfChanged(_ value: String, to path: String, what: String) throws {
        guard read(path)?.trimmingCharacters(in: .whitespacesAndNewlines) != value else { return }
        try write(value, to: path, what: what)
    }

    private static func failure(_ what: String, _ value: String, _ path: String, _ code: Int32) -> UniError {
        UniError(.unavailable, "cannot set \(what) to '\(value)' in '\(path)': \(String(cString: strerror(code)))")
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Makes the folder `path`.
    /// - Returns: `false` when it already existed.
    /// - Throws: ``UniError`` naming the folder.
    @discardableResult
    static func makeDirectory(_ path: String) throws -> Bool {
        if mkdir(path, 0o755) == 0 { return true }
        let code = errno
        if code == EEXIST { return false }
        throw UniError(.unavailable, "cannot create cgroup '\(path)': \(String(cString: strerror(code)))")
    }

    /// The PIDs listed in the cgroup's `cgroup.procs` (empty when unreadable).
    static func processes(in directory: String) -> [String] {
        (read(directory + "/cgroup.procs") ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// Removes the cgroup folder `path`; a missing one is already removed.
    /// The kernel may keep a cgroup busy for a moment after its last
    /// process was reaped, so `EBUSY` is retried for up to 1 s. A folder
    /// outside cgroupfs (a test's stand-in, whose "kernel files" are plain
    /// files) is emptied first.
    /// - Throws: ``UniError`` naming the folder.
    static func removeDirectory(_ path: String) throws {
        var attempts = 0
        while rmdir(path) != 0 {
            let code = errno
            if code == ENOENT { return }
            if code == ENOTEMPTY, !isCgroupFilesystem(path) {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                    var status = stat()
                    if lstat(path + "/" + name, &status) == 0, (status.st_mode & S_IFMT) != S_IFDIR { unlink(path + "/" + name) }
                }
                if rmdir(path) == 0 { return }
            }
            attempts += 1
            guard code == EBUSY, attempts < 100 else {
                throw UniError(.unavailable, "cannot remove cgroup '\(path)': \(String(cString: strerror(code)))")
            }
            usleep(10_000)
        }
    }

    /// Removes the cgroup folder `directory` a dead daemon left, once the
    /// processes still in it (an orphan QEMU killed a moment ago, not yet
    /// reaped by init) are gone; gives up after `timeout`. Best effort:
    /// a folder that stays is logged by nobody, and retried at the next start.
    static func removeLeftover(_ directory: String, timeout: Duration = .seconds(5)) {
        guard exists(directory) else { return }
        let deadline = ContinuousClock.now + timeout
        while !processes(in: directory).isEmpty {
            guard ContinuousClock.now < deadline else { return }
            usleep(10_000)
        }
        try? removeDirectory(directory)
    }

    /// Whether `path` lies on a cgroup (v1) or cgroup2 filesystem.
    static func isCgroupFilesystem(_ path: String) -> Bool {
        var type = 0
        guard cuni_filesystem_type(path, &type) == 0 else { return false }
        return type == 0x27e0eb || type == 0x6367_7270
    }

    /// Reads `cpu.pressure`, `memory.pressure` and `io.pressure` of `directory`.
    static func pressure(in directory: String) -> ResourcePressure? {
        func stall(_ name: String) -> PressureStall? { read(directory + "/" + name).flatMap(PressureStall.init(parsing:)) }
        let pressure = ResourcePressure(cpu: stall("cpu.pressure"), memory: stall("memory.pressure"), io: stall("io.pressure"))
        return pressure.isEmpty ? nil : pressure
    }
}
