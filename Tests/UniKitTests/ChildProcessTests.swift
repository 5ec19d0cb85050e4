import Foundation
import Testing
@testable import UniKit

@Suite("Child processes")
struct ChildProcessTests {
    @Test("a child gets only descriptors 0, 1 and 2, even ones opened without close-on-exec")
    func noInheritedDescriptors() async throws {
        // Stands for SwiftNIO's sockets, which are opened without O_CLOEXEC.
        let leaky = open("/dev/null", O_RDONLY)
        try #require(leaky >= 0)
        defer { close(leaky) }
        #expect(fcntl(leaky, F_GETFD) & FD_CLOEXEC == 0)

        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["5"]) { _ in }
        defer { child.send(SIGKILL) }
        // posix_spawn returns after the exec, so the table is the child's own.
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/fd").compactMap { Int32($0) }.sorted()
        #expect(descriptors == [0, 1, 2])

        child.send(SIGKILL)
        #expect(await child.waitForTermination() == .signalled(SIGKILL))
    }
}
