import CUniSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`: stdout and stderr read on
/// their own threads, and its exit noticed the moment it happens by a thread
/// blocked in `waitpid`.
///
/// The child gets its own process group (a Ctrl-C meant for the daemon does
/// not reach it), default signal dispositions (the daemon's ignored
/// signals are not inherited) and no descriptor but 0, 1 and 2: SwiftNIO
/// opens its sockets without close-on-exec, and a QEMU holding unid's
/// listening socket would keep `uni` waiting on a dead daemon.
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
    /// - Parameter onStdout: called on a reader thread with each chunk of stdout.
    /// - Throws: ``UniError`` when the process cannot be spawned.
    init(executable: String, arguments: [String], onStdout: @escaping @Sendable ([UInt8]) -> Void) throws {
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        guard ChildProcess.makePipe(&stdoutPipe) else { throw ChildProcess.spawnError(executable, errno) }
        guard ChildProcess.makePipe(&stderrPipe) else {
            let code = errno
            ChildProcess.closePipes(stdoutPipe)
            throw ChildProcess.spawnError(executable, code)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        // Last, after the dup2s: closes every other descriptor, including
        // ones opened without close-on-exec by code that is not ours.
        let closeFrom = cuni_spawn_file_actions_addclosefrom(&actions, 3)
        guard closeFrom == 0 else {
            ChildProcess.closePipes(stdoutPipe, stderrPipe)
            throw ChildProcess.spawnError(executable, closeFrom)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard result == 0 else {
            close(stdoutPipe[0]); close(stderrPipe[0])
            throw ChildProcess.spawnError(executable, result)
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
}
