import Foundation
import Logging
import Testing
@testable import UniKit
import UniKitTesting

/// Two requests on one VM at once, made to meet at a known point by fakes
/// that suspend on demand (no sleeps): each test failed before the
/// per-VM gates (issue #13, defects 1-3, 7, 8).
@Suite("VMManager under concurrent requests (fakes that suspend)")
struct VMManagerRaceTests {
    typealias Harness = VMManagerTests.Harness

    /// What must hold after any pair of requests: at most one process per
    /// VM, one exactly when the record says so, no process without a
    /// record, and memory and store agreeing.
    static func checkInvariants(_ harness: Harness, _ manager: VMManager, sourceLocation: SourceLocation = #_sourceLocation) async {
        let vms = await manager.list(all: true)
        let live = harness.hypervisor.liveInstanceCount
        for (id, count) in live {
            #expect(count <= 1, "vm \(id) has \(count) processes", sourceLocation: sourceLocation)
            #expect(vms.contains { $0.id == id }, "a process runs for vm \(id), which has no record", sourceLocation: sourceLocation)
        }
        for vm in vms {
            #expect(!(vm.state == .starting || vm.state == .stopping), "vm \(vm.name) is stuck in \(vm.state)", sourceLocation: sourceLocation)
            #expect((live[vm.id] ?? 0) == (vm.state.hasProcess ? 1 : 0), "vm \(vm.name) is \(vm.state) with \(live[vm.id] ?? 0) processes", sourceLocation: sourceLocation)
            #expect(harness.store.record(vm.id)?.state == vm.state, "memory says \(vm.state), the store \(String(describing: harness.store.record(vm.id)?.state))", sourceLocation: sourceLocation)
        }
        for stored in harness.store.vms {
            #expect(vms.contains { $0.id == stored.id }, "the store holds vm \(stored.name), which memory removed", sourceLocation: sourceLocation)
        }
    }

    /// Outcome of a call: its record, or its error.
    static func outcome<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, UniError> {
        do { return .success(try await body()) } catch let error as UniError { return .failure(error) } catch {
            return .failure(UniError(.internalError, "\(error)"))
        }
    }

    @Test("start + start of one stopped VM: one QEMU, the other is told it is already running")
    func startStart() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.create(VMConfig(name: "r", image: harness.image))
            let held = harness.store.suspendNextSave { $0.id == vm.id && $0.state == .starting }
            async let first = Self.outcome { try await manager.start("r") }
            await held.waitUntilReached()
            async let second = Self.outcome { try await manager.start("r") }
            held.release()
            let results = await [first, second]
            #expect(results.filter { (try? $0.get()) != nil }.count == 1)
            #expect(results.compactMap { if case .failure(let error) = $0 { return error.message } else { return nil } } == ["vm r is already running"])
            #expect(harness.hypervisor.launchCount == 1)
            await Self.checkInvariants(harness, manager)
        }
    }

    @Test("rm -f while a start is on its way: the VM is started, then killed and removed; nothing comes back")
    func removeDuringStart() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.create(VMConfig(name: "r", image: harness.image))
            let held = harness.store.suspendNextSave { $0.id == vm.id && $0.state == .starting }
            async let start = Self.outcome { try await manager.start("r") }
            await held.waitUntilReached()
            async let remove = Self.outcome { try await manager.remove("r", force: true) }
            held.release()
            _ = await (start, remove)
            #expect(harness.store.vms.isEmpty)
            #expect(await manager.list(all: true).isEmpty)
            #expect(harness.hypervisor.instance(for: vm.id)?.hasExited == true)
            await Self.checkInvariants(harness, manager)
        }
    }

    @Test("start while rm is deleting: the start finds no VM and launches nothing")
    func startDuringRemove() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.create(VMConfig(name: "r", image: harness.image))
            let held = harness.store.suspendNextDelete(of: vm.id)
            async let remove = Self.outcome { try await manager.remove("r") }
            await held.waitUntilReached()
            async let start = Self.outcome { try await manager.start("r") }
            held.release()
            let (removed, started) = await (remove, start)
            #expect((try? removed.get()) != nil)
            guard case .failure(let error) = started else {
                Issue.record("the start of a removed VM succeeded")
                return
            }
            #expect(error.message == "no such vm: r")
            #expect(harness.hypervisor.launchCount == 0)
            #expect(harness.store.vms.isEmpty)
            await Self.checkInvariants(harness, manager)
        }
    }

    @Test("stop + kill: both answer the stopped record; memory and store say stopped, never stopping")
    func stopKill() async throws {
        let harness = try Harness(script: { _ in .init(honorsPowerdown: false) })
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "r", image: harness.image))
            let held = harness.store.suspendNextSave { $0.id == vm.id && $0.state == .stopping }
            async let stop = Self.outcome { try await manager.stop("r") }
            await held.waitUntilReached()
            async let kill = Self.outcome { try await manager.kill("r") }
            held.release()
            let (stopped, killed) = await (stop, kill)
            #expect(try stopped.get().state == .stopped)
            #expect(try killed.get().state == .stopped)
            #expect(try killed.get().stopReason == .killed)
            #expect(try await manager.inspect("r").state == .stopped)
            #expect(harness.store.record(vm.id)?.state == .stopped)
            await Self.checkInvariants(harness, manager)
        }
    }

    @Test("start + stop, rm + rm: every interleaving ends in a consistent state")
    func otherPairs() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.create(VMConfig(name: "sx", image: harness.image))
            async let start = Self.outcome { try await manager.start("sx") }
            async let stop = Self.outcome { try await manager.stop("sx") }
            _ = await (start, stop)
            await Self.checkInvariants(harness, manager)

            _ = try await manager.create(VMConfig(name: "gone", image: harness.image))
            async let first = Self.outcome { try await manager.remove("gone") }
            async let second = Self.outcome { try await manager.remove("gone") }
            let results = await [first, second]
            #expect(results.filter { (try? $0.get()) != nil }.count == 1)
            #expect(results.compactMap { if case .failure(let error) = $0 { return error.code } else { return nil } } == [UniError.Code.notFound])
            await Self.checkInvariants(harness, manager)
        }
    }

    @Test("two creates of one name while the first is being written: one VM, one conflict")
    func createCreate() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let held = harness.store.suspendNextSave { $0.state == .created }
            async let first = Self.outcome { try await manager.create(VMConfig(name: "n", image: harness.image)) }
            await held.waitUntilReached()
            let second = await Self.outcome { try await manager.run(VMConfig(name: "n", image: harness.image)) }
            held.release()
            let created = try await first.get()
            guard case .failure(let error) = second else {
                Issue.record("a second VM took the name 'n'")
                return
            }
            #expect(error.message == "the name 'n' is already used by vm \(created.id)")
            #expect(await manager.list(all: true).map(\.name) == ["n"])
        }
    }

    @Test("one VM's slow store write does not hold up requests for others")
    func slowWriteDoesNotStall() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.create(VMConfig(name: "other", image: harness.image))
            let held = harness.store.suspendNextSave { $0.state == .created }
            async let slow = Self.outcome { try await manager.create(VMConfig(name: "slow", image: harness.image)) }
            await held.waitUntilReached()
            // While that write hangs, the manager answers and runs other VMs.
            #expect(await manager.list(all: true).map(\.name) == ["other"])
            #expect(try await manager.start("other").state == .running)
            #expect(try await manager.kill("other").state == .stopped)
            held.release()
            #expect(try await slow.get().name == "slow")
        }
    }

    @Test("a FIFO as the image is refused at once, and the manager keeps answering")
    func fifoImage() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let fifo = harness.directory.path + "/f.elf"
            #expect(mkfifo(fifo, 0o600) == 0)
            let error = await #expect(throws: UniError.self) { try await manager.run(VMConfig(image: fifo)) }
            #expect(error?.message == "image '\(fifo)' is a FIFO, not a regular file")
            #expect(await manager.list(all: true).isEmpty)
        }
    }

    @Test("a full disk at kill: the caller is told, memory says stopped, /health says why, a later retry saves it")
    func diskFullAtKill() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "r", image: harness.image))
            harness.store.failSaves(with: UniError(.storeFailed, "No space left on device")) { $0.state == .stopped }
            let error = await #expect(throws: UniError.self) { try await manager.kill("r") }
            #expect(error?.code == .storeFailed)
            #expect(error?.message == "vm r was killed (exit code 137), but cannot save vm r: No space left on device; unid keeps retrying the write (see /health)")
            #expect(try await manager.inspect("r").state == .stopped)
            #expect(harness.store.record(vm.id)?.state == .running)
            #expect(await manager.healthProblem() == "store: 1 vm record(s) not saved (r), retrying: No space left on device")

            await manager.saveUnsavedRecords()
            #expect(harness.store.record(vm.id)?.state == .running)
            harness.store.failWrites(with: nil)
            await manager.saveUnsavedRecords()
            #expect(harness.store.record(vm.id)?.state == .stopped)
            #expect(await manager.healthProblem() == nil)
        }
    }

    @Test("a full disk when a guest exits by itself: memory says stopped, the record is saved once the disk has room")
    func diskFullAtExit() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "r", image: harness.image))
            harness.store.failSaves(with: UniError(.storeFailed, "No space left on device")) { $0.state == .stopped }
            harness.hypervisor.instance(for: vm.id)?.exit(code: 3)
            let stopped = try await manager.wait("r")
            #expect(stopped.exitCode == 3)
            #expect(await manager.healthProblem()?.contains("not saved (r)") == true)
            harness.store.failWrites(with: nil)
            await manager.saveUnsavedRecords()
            #expect(harness.store.record(vm.id)?.exitCode == 3)
        }
    }

    @Test("two records with one name (an unreadable record came back): the name is ambiguous, not silently one of them")
    func duplicateNamesAtLoad() async throws {
        let harness = try Harness()
        let first = VM(id: VMID.random(), name: "twin", config: VMConfig(image: harness.image), imageKind: .kernel, createdAt: Date())
        let second = VM(id: VMID.random(), name: "twin", config: VMConfig(image: harness.image), imageKind: .kernel, createdAt: Date())
        try await harness.store.save(first)
        try await harness.store.save(second)
        try await harness.run { manager in
            let ambiguous = await #expect(throws: UniError.self) { try await manager.inspect("twin") }
            let ids = [first.id, second.id].sorted().map(\.rawValue).joined(separator: ", ")
            #expect(ambiguous?.message == "vm name 'twin' is ambiguous: vms \(ids) share it; use an id")
            #expect(ambiguous?.code == .invalidArgument)
            let byID = try await manager.inspect(first.id.rawValue)
            #expect(byID.name == "twin")
            await #expect(throws: UniError.self) { try await manager.create(VMConfig(name: "twin", image: harness.image)) }
        }
    }
}

@Suite("VMTable and operation gates")
struct VMTableTests {
    func vm(_ name: String, id: String? = nil) throws -> VM {
        VM(id: try id.map { try VMID($0) } ?? VMID.random(), name: name, config: VMConfig(image: "/k"), imageKind: .kernel, createdAt: Date())
    }

    @Test("references: full id, name, unique prefix; empty and ambiguous ones name the problem")
    func resolve() throws {
        var table = VMTable(removedRecordsKept: 2)
        let a = try vm("web", id: "abc000000001")
        let b = try vm("db", id: "abc000000002")
        table.put(a)
        table.put(b)
        #expect(try table.resolve("web") == a.id)
        #expect(try table.resolve("abc000000002") == b.id)
        #expect(try table.resolve("ABC000000001") == a.id)
        #expect(throws: UniError.invalid("vm reference 'abc' is ambiguous: it matches abc000000001, abc000000002")) { try table.resolve("abc") }
        #expect(throws: UniError.invalid("invalid vm reference '': give a name, id or id prefix")) { try table.resolve("") }
        #expect(throws: UniError(.notFound, "no such vm: nope")) { try table.resolve("nope") }
    }

    @Test("a reserved name is taken until put or released; removed records are kept for a while")
    func namesAndHistory() throws {
        var table = VMTable(removedRecordsKept: 1)
        let a = try vm("web")
        try table.reserveName("web", for: a.id)
        #expect(throws: UniError(.conflict, "the name 'web' is already used by vm \(a.id)")) { try table.reserveName("web", for: VMID.random()) }
        table.releaseName("web")
        try table.reserveName("web", for: a.id)
        table.put(a)
        table.remove(a.id)
        #expect(table.removedRecord(a.id)?.name == "web")
        let b = try vm("db")
        table.put(b)
        table.remove(b.id)
        #expect(table.removedRecord(a.id) == nil)
        #expect(table.removedRecord(b.id)?.name == "db")
    }

    @Test("a gate is free, then held, then handed back")
    func gate() {
        var gates = OperationGates()
        let id = VMID.random()
        let entered = gates.tryEnter(id)
        #expect(entered)
        #expect(gates.isHeld(id))
        let enteredTwice = gates.tryEnter(id)
        #expect(!enteredTwice)
        let next = gates.leave(id)
        #expect(next == nil)
        #expect(!gates.isHeld(id))
        let enteredAgain = gates.tryEnter(id)
        #expect(enteredAgain)
    }
}

@Suite("VMManager with a QEMU that does not answer (fakes)")
struct UnansweringHypervisorTests {
    typealias Harness = VMManagerTests.Harness

    @Test("a stop whose powerdown never returns ends at its timeout, and a kill meanwhile is not held up")
    func hangingPowerdown() async throws {
        let harness = try Harness(script: { _ in .init(powerdownHangs: true) }, stopTimeout: .seconds(60))
        try await harness.run { manager in
            _ = try await manager.run(VMConfig(name: "wedge", image: harness.image))
            async let stopped = VMManagerRaceTests.outcome { try await manager.stop("wedge") }
            // The stop holds the gate only to record `stopping`; the kill gets it next.
            while try await manager.inspect("wedge").state != .stopping { await Task.yield() }
            let killed = try await manager.kill("wedge")
            #expect(killed.stopReason == .killed)
            #expect(try await stopped.get().state == .stopped)

            _ = try await manager.start("wedge")
            let timedOut = try await manager.stop("wedge", timeout: .milliseconds(50))
            #expect(timedOut.stopReason == .stopTimeout)
        }
    }

    @Test("start checks the image again: a file replaced by a FIFO is refused, QEMU is never launched")
    func imageReplacedByFIFO() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let image = harness.directory.path + "/swap.elf"
            try FileManager.default.copyItem(atPath: harness.image, toPath: image)
            _ = try await manager.create(VMConfig(name: "swap", image: image))
            try FileManager.default.removeItem(atPath: image)
            #expect(mkfifo(image, 0o600) == 0)
            let error = await #expect(throws: UniError.self) { try await manager.start("swap") }
            #expect(error?.message == "image '\(image)' is a FIFO, not a regular file")
            #expect(harness.hypervisor.launchCount == 0)
            #expect(try await manager.inspect("swap").state == .created)
        }
    }

    @Test("a full disk while recovering a dead daemon's VMs does not keep the daemon down")
    func recoveryOnFullDisk() async throws {
        let harness = try Harness()
        var orphan = VM(id: VMID.random(), name: "orphan", config: VMConfig(image: harness.image), imageKind: .kernel, createdAt: Date())
        orphan.state = .running
        try await harness.store.save(orphan)
        harness.store.failWrites(with: UniError(.storeFailed, "No space left on device"))
        try await harness.run { manager in
            let recovered = try await manager.inspect("orphan")
            #expect(recovered.state == .stopped)
            #expect(await manager.healthProblem() == "store: 1 vm record(s) not saved (orphan), retrying: No space left on device")
            harness.store.failWrites(with: nil)
            await manager.saveUnsavedRecords()
            #expect(await manager.healthProblem() == nil)
        }
    }
}

@Suite("Messages of bad values stay on one line")
struct OneLineMessageTests {
    @Test("a name with a newline is shown escaped; a body that is not an object says so")
    func messages() throws {
        #expect(throws: UniError.invalid("invalid name 'a\\nb': use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit")) {
            try VMConfig.validate(name: "a\nb")
        }
        for body in ["[]", "null"] {
            do {
                _ = try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(body.utf8))
                Issue.record("\(body) decoded as a VM config")
            } catch {
                #expect(JSONCoding.describe(error).hasPrefix("the body must be"), "\(body): \(JSONCoding.describe(error))")
            }
        }
    }
}
