import CUniSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started by a fork and exec written in C
/// (`cuni_spawn`): stdout and stderr read on their own threads, and its
/// exit noticed the moment it happens by a thread blocked in `waitpid`.
///
/// The child gets its own process group (a Ctrl-C meant for the daemon does
/// not reach it), default signal dispositions (the daemon's ignored
/// signals are not inherited), an empty signal mask, and no descriptor but
/// 0 (`/dev/null`), 1 and 2: SwiftNIO opens its sockets without
/// close-on-exec, and a QEMU holding unid's listening socket would keep
/// `uni` waiting on a dead daemon. Before the exec it joins the cgroups it
/// is given (it writes "0" to their `cgroup.procs`), so the program never
/// runs outside its limits. The initialiser returns once the exec happened;
/// an exec or cgroup join that failed is reported by errno through a
/// close-on-exec pipe and thrown.
final class ChildProcess: Sendable {
    /// How the process ended, from `waitpid`.
    enum Termination: Sendable, Hashable {
        case exited(Int32)
        case signalled(Int32)
    }

    let pid: pid_t
    private let exit = OneShot<Termination>()
    /// Serialises signals with the reaping, so a reused pid is never signalled.
    private let signalLock = Mutex(())
    private let stderrTail: Mutex<[UInt8]>
    private static let stderrTailLimit = 8192

    /// Starts `executable` with `arguments` (argv[0] excluded).
    /// - Parameters:
    ///   - cgroupProcsFiles: `cgroup.procs` files the child joins before the exec.
    ///   - onStdout: called on a reader thread with each chunk of stdout.
    /// - Throws: ``UniError`` when the process cannot be started or cannot
    ///   join a cgroup, naming the binary or the cgroup.
    init(executable: String, arguments: [String], cgroupProcsFiles: [String] = [], onStdout: @escaping @Sendable ([UInt8]) -> Void) throws {
        var cgroupFDs: [Int32] = []
        defer { cgroupFDs.forEach { close($0) } }
        for file in cgroupProcsFiles {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ChildProcess.cgroupError(executable, file, errno) }
            cgroupFDs.append(fd)
        }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard devNull >= 0 else { throw ChildProcess.spawnError(executable, errno) }
        defer { close(devNull) }
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        guard ChildProcess.makePipe(&stdoutPipe) else { throw ChildProcess.spawnError(executable, errno) }
        guard ChildProcess.makePipe(&stderrPipe) else {
            let code = errno
            ChildProcess.closePipes(stdoutPipe)
            throw ChildProcess.spawnError(executable, code)
        }

        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let maxFD = Int32(clamping: limit.rlim_cur == rlim_t.max ? 1 << 20 : limit.rlim_cur)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var failure = cuni_spawn_failure()
        let child = cgroupFDs.withUnsafeBufferPointer { fds in
            cuni_spawn(executable, argv, environ, devNull, stdoutPipe[1], stderrPipe[1], fds.baseAddress, Int32(fds.count), maxFD, &failure)
        }
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard child > 0 else {
            close(stdoutPipe[0]); close(stderrPipe[0])
            if failure.step >= 0, Int(failure.step) < cgroupProcsFiles.count {
                throw ChildProcess.cgroupError(executable, cgroupProcsFiles[Int(failure.step)], failure.error)
            }
            throw ChildProcess.spawnError(executable, failure.error)
        }
        pid = child
        let spawned = child
        stderrTail = Mutex([])

        let stdoutDone = DispatchSemaphore(value: 0)
        let stderrDone = DispatchSemaphore(value: 0)
        let stdoutFD = stdoutPipe[0]
        let stderrFD = stderrPipe[0]
        ChildProcess.startThread(name: "uni-stdout-\(child)") {
            ChildProcess.drain(stdoutFD, into: onStdout)
            stdoutDone.signal()
        }
        ChildProcess.startThread(name: "uni-stderr-\(child)") {
            ChildProcess.drain(stderrFD) { chunk in
                self.stderrTail.withLock { tail in
                    tail.append(contentsOf: chunk)
                    if tail.count > ChildProcess.stderrTailLimit { tail.removeFirst(tail.count - ChildProcess.stderrTailLimit) }
                }
            }
            stderrDone.signal()
        }
        ChildProcess.startThread(name: "uni-wait-\(child)") {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            let termination: Termination = (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            // Output written just before the exit is delivered before the exit is.
            stdoutDone.wait()
            stderrDone.wait()
            _ = self.signalLock.withLock { _ in self.exit.resolve(termination) }
        }
    }

    /// The last 8 KiB the process wrote to stderr.
    var standardError: String {
        String(decoding: stderrTail.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The termination, if the process already ended.
    var termination: Termination? { exit.value }

    /// Waits for the process to end.
    func waitForTermination() async -> Termination { await exit.wait() }

    /// Sends `signal` unless the process was already reaped (its pid may be reused).
    func send(_ signal: Int32) {
        signalLock.withLock { _ in
            if exit.value == nil { Glibc.kill(pid, signal) }
        }
    }

    /// A pipe whose ends are closed on exec (only the dup2'd copies reach
    /// the child); `pipe2` sets the flag atomically, so a spawn on another
    /// thread never catches the ends without it.
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        cuni_pipe_cloexec(&fds) == 0
    }

    private static func closePipes(_ pipes: [Int32]...) {
        for pipe in pipes { pipe.forEach { close($0) } }
    }

    private static func drain(_ fd: Int32, into sink: ([UInt8]) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                sink(Array(buffer[0..<count]))
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(fd)
    }

    /// Runs `body` on a new thread with a small stack: for work that blocks
    /// in system calls and must never wait for the cooperative pool.
    static func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            // Named from inside: Foundation on Linux names only the current
            // thread in the kernel (what `top -H` and /proc/<pid>/task show).
            Thread.current.name = name
            body()
        }
        thread.stackSize = 256 * 1024
        thread.start()
    }

    private static func spawnError(_ executable: String, _ code: Int32) -> UniError {
        UniError(.hypervisorFailed, "cannot start '\(executable)': \(String(cString: strerror(code)))")
    }

    private static func cgroupError(_ executable: String, _ procsFile: String, _ code: Int32) -> UniError {
        let cgroup = procsFile.hasSuffix("/cgroup.procs") ? String(procsFile.dropLast("/cgroup.procs".count)) : procsFile
        return UniError(.hypervisorFailed, "cannot place '\(executable)' in cgroup '\(cgroup)': \(String(cString: strerror(code)))")
    }
}
