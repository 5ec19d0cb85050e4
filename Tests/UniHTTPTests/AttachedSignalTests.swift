import Glibc
import Synchronization
import Testing
@testable import UniCLI

/// What `uni run --attach` asks of the daemon for each signal; the real
/// process under real signals is `Integration.AttachedSignals`.
@Suite("uni run --attach: signals to actions")
struct AttachedSignalTests {
    @Test("the first SIGINT, SIGTERM or SIGHUP stops; only a second SIGINT kills; later ones change nothing", arguments: [SIGINT, SIGTERM, SIGHUP])
    func policy(first: Int32) {
        var policy = AttachedSignalPolicy()
        #expect(policy.received(first) == .stop)
        #expect(policy.received(SIGTERM) == nil)
        #expect(policy.received(SIGHUP) == nil)
        #expect(policy.received(SIGINT) == .kill)
        #expect(policy.received(SIGINT) == nil)
        #expect(policy.received(SIGTERM) == nil)
    }

    /// The actions a forwarder asked for, in order.
    final class Recorder: Sendable {
        let actions = Mutex<[String]>([])
        var perform: AttachedSignalForwarder.Perform { { action, id in self.actions.withLock { $0.append("\(action.rawValue) \(id)") } } }
        var recorded: [String] { actions.withLock { $0 } }
    }

    @Test("signals after the create act on the VM at once")
    func afterCreate() {
        let recorder = Recorder()
        let forwarder = AttachedSignalForwarder(perform: recorder.perform)
        forwarder.vmCreated("3f2a9c01b7de")
        #expect(recorder.recorded.isEmpty)
        forwarder.received(SIGTERM)
        #expect(recorder.recorded == ["stop 3f2a9c01b7de"])
        forwarder.received(SIGINT)
        #expect(recorder.recorded == ["stop 3f2a9c01b7de", "kill 3f2a9c01b7de"])
    }

    @Test("a signal during the create stops the VM as soon as it has an id")
    func duringCreate() {
        let recorder = Recorder()
        let forwarder = AttachedSignalForwarder(perform: recorder.perform)
        forwarder.received(SIGTERM)
        #expect(recorder.recorded.isEmpty)
        forwarder.vmCreated("3f2a9c01b7de")
        #expect(recorder.recorded == ["stop 3f2a9c01b7de"])
    }

    @Test("a double Ctrl-C during the create kills the VM, without a stop first")
    func doubleInterruptDuringCreate() {
        let recorder = Recorder()
        let forwarder = AttachedSignalForwarder(perform: recorder.perform)
        forwarder.received(SIGINT)
        forwarder.received(SIGINT)
        forwarder.vmCreated("3f2a9c01b7de")
        #expect(recorder.recorded == ["kill 3f2a9c01b7de"])
        forwarder.received(SIGINT)
        #expect(recorder.recorded == ["kill 3f2a9c01b7de"])
    }
}
