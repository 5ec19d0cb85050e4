import Foundation
import Testing
import UniKitTesting
@testable import UniKit

@Suite("Child processes")
struct ChildProcessTests {
    @Test("a child gets only descriptors 0, 1 and 2, even ones opened without close-on-exec")
    func noInheritedDescriptors() async throws {
        // Stands for SwiftNIO's sockets, which are opened without O_CLOEXEC.
        let marker = try TemporaryDirectory()
        defer { marker.remove() }
        let markerPath = marker.path + "/leak-marker"
        let leaky = open(markerPath, O_RDWR | O_CREAT, 0o600)
        try #require(leaky >= 0)
        defer { close(leaky) }
        #expect(fcntl(leaky, F_GETFD) & FD_CLOEXEC == 0)

        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["5"]) { _ in }
        defer { child.send(SIGKILL) }
        // posix_spawn returns after the exec, so the table is the child's own.
        // Compared by target: the child's own start-up (locale files) may
        // hold a descriptor of its own for a moment.
        let folder = "/proc/\(child.pid)/fd"
        let targets = try FileManager.default.contentsOfDirectory(atPath: folder).compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + $0) }
        #expect(!targets.contains(markerPath), "the child holds \(targets)")
        let standard = try (0...2).map { try FileManager.default.destinationOfSymbolicLink(atPath: folder + "/\($0)") }
        #expect(standard[0] == "/dev/null")
        #expect(standard[1].hasPrefix("pipe:") && standard[2].hasPrefix("pipe:"))

        child.send(SIGKILL)
        #expect(await child.waitForTermination() == .signalled(SIGKILL))
    }
}
