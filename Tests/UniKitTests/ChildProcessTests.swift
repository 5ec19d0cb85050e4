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

    @Test("a child joins its cgroups before the exec: it writes 0 to each cgroup.procs")
    func joinsCgroups() async throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let files = [folder.path + "/cpu.procs", folder.path + "/memory.procs"]
        for file in files { #expect(FileManager.default.createFile(atPath: file, contents: nil)) }
        let child = try ChildProcess(executable: "/bin/true", arguments: [], cgroupProcsFiles: files) { _ in }
        #expect(await child.waitForTermination() == .exited(0))
        for file in files { #expect(try String(contentsOfFile: file, encoding: .utf8) == "0") }
    }

    @Test("a cgroup join that fails in the child is reported, naming the cgroup, and leaves no process")
    func cgroupJoinFailure() async throws {
        // /dev/full refuses every write with ENOSPC, as a cgroup refuses a process.
        #expect {
            _ = try ChildProcess(executable: "/bin/sleep", arguments: ["5"], cgroupProcsFiles: ["/dev/full"]) { _ in }
        } throws: { error in
            (error as? UniError)?.message == "cannot place '/bin/sleep' in cgroup '/dev/full': No space left on device"
        }
        #expect {
            _ = try ChildProcess(executable: "/bin/sleep", arguments: ["5"], cgroupProcsFiles: ["/nonexistent/uni/x/cgroup.procs"]) { _ in }
        } throws: { error in
            (error as? UniError)?.message == "cannot place '/bin/sleep' in cgroup '/nonexistent/uni/x': No such file or directory"
        }
    }

    @Test("an exec that fails is reported with errno, naming the binary")
    func execFailure() {
        #expect {
            _ = try ChildProcess(executable: "/nonexistent/qemu", arguments: []) { _ in }
        } throws: { error in
            (error as? UniError)?.message == "cannot start '/nonexistent/qemu': No such file or directory"
        }
    }

    @Test("a child has its own process group, no blocked or ignored signals")
    func processGroupAndSignals() async throws {
        signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, SIG_DFL) }
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["5"]) { _ in }
        defer { child.send(SIGKILL) }
        #expect(getpgid(child.pid) == child.pid)
        let status = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
        let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
        }, uniquingKeysWith: { $1 })
        #expect(fields["SigBlk"] == "0000000000000000")
        #expect(fields["SigIgn"] == "0000000000000000")
        child.send(SIGKILL)
        #expect(await child.waitForTermination() == .signalled(SIGKILL))
    }
}
