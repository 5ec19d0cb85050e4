import Synchronization
import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// What `uni run --attach` makes of the signals a supervisor or a terminal
/// sends it: the first SIGINT, SIGTERM or SIGHUP stops the VM (ACPI
/// powerdown, kill after the stop timeout), a second SIGINT kills it at
/// once (a person pressing Ctrl-C again), and nothing else changes anything.
/// The process itself never dies of them: it exits with the VM's code.
struct AttachedSignalPolicy: Sendable, Equatable {
    /// What to ask of the daemon.
    enum Action: String, Sendable, Equatable { case stop, kill }

    private var stopping = false
    private var killing = false

    /// The action `signal` calls for, if any.
    mutating func received(_ signal: Int32) -> Action? {
        if !stopping {
            stopping = true
            return .stop
        }
        if signal == SIGINT, !killing {
            killing = true
            return .kill
        }
        return nil
    }
}

/// Turns signals into stops and kills of the attached VM. A signal that
/// comes before the VM has an id (the create is still in flight) is held
/// and acted on as soon as ``vmCreated(_:)`` names it, so a supervisor's
/// SIGTERM during a slow create or pull never leaves the VM running.
final class AttachedSignalForwarder: Sendable {
    typealias Action = AttachedSignalPolicy.Action
    /// Carries out an action on the VM with that id; must not block (the
    /// signal thread must stay free for the second Ctrl-C).
    typealias Perform = @Sendable (Action, String) -> Void

    private struct State {
        var policy = AttachedSignalPolicy()
        var id: String?
        var pending: [Action] = []
    }

    private let state = Mutex(State())
    private let perform: Perform

    init(perform: @escaping Perform) {
        self.perform = perform
    }

    /// Called for every signal, from the thread that reads them.
    func received(_ signal: Int32) {
        let ready = state.withLock { state -> (Action, String)? in
            guard let action = state.policy.received(signal) else { return nil }
            guard let id = state.id else {
                state.pending.append(action)
                return nil
            }
            return (action, id)
        }
        if let (action, id) = ready { perform(action, id) }
    }

    /// The VM exists now: the signals that came before act on it.
    func vmCreated(_ id: String) {
        let pending = state.withLock { state -> [Action] in
            state.id = id
            defer { state.pending = [] }
            return state.pending
        }
        // A kill makes the stop before it moot.
        if let last = pending.last { perform(last, id) }
    }

    /// The real actions: the daemon's stop (with `stopTimeout`, or unid's
    /// own when `nil`) and kill, each on a thread of its own.
    static func daemonActions(client: UniClient, stopTimeout: Duration?) -> Perform {
        { action, id in
            startThread {
                do {
                    switch action {
                    case .stop: try stop(id, client: client, timeout: stopTimeout)
                    case .kill: _ = try client.kill(id)
                    }
                } catch let error as UniError where error.code == .invalidState || error.code == .notFound {
                    // It ended or was removed meanwhile: its end reaches the console and `wait` all the same.
                } catch {
                    StandardStreams.writeWarning("cannot \(action.rawValue) vm \(id): \((error as? UniError)?.message ?? "\(error)")")
                }
            }
        }
    }

    /// The daemon's stop. The attached start takes the VM's gate before the
    /// create's answer reaches us, so a stop queues behind it; should the
    /// stop still find the VM `created` (not yet starting), it is asked
    /// again until the start has begun, rather than leaving the guest to run.
    private static func stop(_ id: String, client: UniClient, timeout: Duration?) throws {
        for _ in 0..<250 {
            guard try client.stop(id, timeout: timeout).state == .created else { return }
            StatsScreen.sleep(.milliseconds(20))
        }
        StandardStreams.writeWarning("vm \(id) did not start within 5s of the stop signal; stop it with `uni stop \(id)`")
    }
}

/// Written by the signal handler, read by ``SignalPipe``'s thread: the
/// self-pipe trick, so that only async-signal-safe work runs in the handler.
private let signalPipeWriter = Atomic<Int32>(-1)

/// Process-wide signal handlers that hand each signal to a thread.
///
/// Handlers (not a blocked mask and `sigwait`) because whichever thread
/// the kernel picks must not die of the signal: `uni-otel` runs commands
/// beside threads of its own.
enum SignalPipe {
    /// Catches `signals` from now on and calls `handler` with each one, on a
    /// thread of its own, for the rest of the process. A SIGHUP the parent
    /// set to be ignored (`nohup`) stays ignored.
    /// - Throws: ``UniError`` when the pipe cannot be made.
    static func install(_ signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw UniError(.internalError, "cannot create a pipe for signals: \(String(cString: strerror(errno)))")
        }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        // A flood of signals must never block the handler: extra bytes are dropped.
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        signalPipeWriter.store(ends[1], ordering: .releasing)
        let reader = ends[0]
        startThread {
            var byte: UInt8 = 0
            while true {
                let count = read(reader, &byte, 1)
                if count == 1 {
                    handler(Int32(byte))
                } else if count < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        for number in signals {
            let previous = signal(number) { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriter.load(ordering: .acquiring), &byte, 1)
                errno = saved
            }
            if number == SIGHUP, isIgnored(previous) {
                signal(SIGHUP, SIG_IGN)
                continue
            }
            sigaddset(&unblocked, number)
        }
        // A parent may have started us with them blocked (a blocked mask survives exec).
        sigprocmask(SIG_UNBLOCK, &unblocked, nil)
    }

    private static func isIgnored(_ handler: __sighandler_t?) -> Bool {
        unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }
}
