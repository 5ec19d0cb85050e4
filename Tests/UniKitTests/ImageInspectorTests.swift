import Foundation
import Synchronization
import Testing
import UniKit
import UniKitTesting

@Suite("Image inspection")
struct ImageInspectorTests {
    static let elfHeader: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0]

    func message(_ path: String) async -> String? {
        do {
            _ = try await ImageInspector.inspect(path)
            return nil
        } catch let error as UniError {
            #expect(error.code == .invalidArgument)
            return error.message
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test("a FIFO is refused at once, naming the path, instead of blocking on the open")
    func fifo() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/f.elf"
        try #require(mkfifo(path, 0o600) == 0)
        // On a thread of its own, so a regression fails the test instead of hanging it.
        let outcome = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let text: String
            do { text = "returned \(try ImageInspector.kind(ofImageAt: path))" } catch let error as UniError { text = error.message } catch { text = "\(error)" }
            outcome.withLock { $0 = text }
            done.signal()
        }
        let answered = done.wait(timeout: .now() + 5) == .success
        if !answered {
            // Releases the blocked open: a writer arrives, then leaves.
            let writer = open(path, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { close(writer) }
            done.wait()
        }
        #expect(answered)
        #expect(outcome.withLock { $0 } == "image '\(path)' is a FIFO, not a regular file")
    }

    @Test("a directory, a socket and a device are refused, saying what they are")
    func notRegularFiles() async throws {
        try await TemporaryDirectory.with { dir in
            #expect(await message(dir.path) == "image '\(dir.path)' is a directory, not a regular file")
            #expect(await message("/dev/null") == "image '/dev/null' is a character device, not a regular file")

            let socketPath = dir.path + "/s.sock"
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            try #require(fd >= 0)
            defer { close(fd) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: socketPath.utf8CString.map { UInt8(bitPattern: $0) }) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(bound == 0)
            #expect(await message(socketPath) == "image '\(socketPath)' is a socket, not a regular file")
        }
    }

    @Test("a missing image, and a symlink to one, do not exist")
    func missing() async throws {
        try await TemporaryDirectory.with { dir in
            #expect(await message(dir.path + "/nope.elf") == "image '\(dir.path)/nope.elf' does not exist")
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/dangling", withDestinationPath: dir.path + "/nope.elf")
            #expect(await message(dir.path + "/dangling") == "image '\(dir.path)/dangling' does not exist")
        }
    }

    @Test("an empty or too-short file is neither kind")
    func tooShort() async throws {
        try await TemporaryDirectory.with { dir in
            let neither = "is neither a kernel (ELF or bzImage) nor a bootable disk image (no boot signature at byte 510)"
            FileManager.default.createFile(atPath: dir.path + "/empty", contents: Data())
            #expect(await message(dir.path + "/empty") == "image '\(dir.path)/empty' \(neither)")
            FileManager.default.createFile(atPath: dir.path + "/short", contents: Data([0x7F, 0x45, 0x4C]))
            #expect(await message(dir.path + "/short") == "image '\(dir.path)/short' \(neither)")
        }
    }

    @Test("a kernel, a symlink to it, and a disk image are recognised")
    func kinds() async throws {
        try await TemporaryDirectory.with { dir in
            FileManager.default.createFile(atPath: dir.path + "/k.elf", contents: Data(Self.elfHeader + [UInt8](repeating: 0, count: 4096)))
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/link.elf", withDestinationPath: dir.path + "/k.elf")
            var disk = [UInt8](repeating: 0, count: 512)
            disk[510] = 0x55
            disk[511] = 0xAA
            FileManager.default.createFile(atPath: dir.path + "/disk.img", contents: Data(disk))

            #expect(try await ImageInspector.inspect(dir.path + "/k.elf") == .kernel)
            #expect(try await ImageInspector.inspect(dir.path + "/link.elf") == .kernel)
            #expect(try ImageInspector.kind(ofImageAt: dir.path + "/disk.img") == .disk)
        }
    }
}
