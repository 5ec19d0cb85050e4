import Foundation
import Logging
import Testing
import UniKit
import UniKitTesting

/// Drives `VMManager` through every transition with the scripted hypervisor.
@Suite("VMManager lifecycle (scripted hypervisor)")
struct VMManagerTests {
    struct Harness {
        let directory: TemporaryDirectory
        let store: InMemoryVMStore
        let hypervisor: ScriptedHypervisor
        let manager: VMManager
        let image: String
        let diskImage: String

        init(script: @escaping @Sendable (VM) -> ScriptedHypervisor.Script = { _ in .init(consoleOutput: "hello\n") }, stopTimeout: Duration = .seconds(5)) throws {
            directory = try TemporaryDirectory()
            store = InMemoryVMStore()
            hypervisor = ScriptedHypervisor(script: script)
            manager = VMManager(
                configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path), stopTimeout: stopTimeout),
                store: store, hypervisor: hypervisor, logger: Logger(label: "test")
            )
            image = directory.makeFakeKernel()
            diskImage = directory.path + "/disk.img"
            var sector = [UInt8](repeating: 0, count: 512)
            sector[510] = 0x55
            sector[511] = 0xAA
            _ = FileManager.default.createFile(atPath: diskImage, contents: Data(sector))
        }

        func run<Result: Sendable>(_ body: @Sendable (VMManager) async throws -> Result) async throws -> Result {
            defer { directory.remove() }
            try await manager.load()
            return try await manager.withRunning(body)
        }
    }

    @Test("run: created -> starting -> running, with the record saved and the console captured")
    func runToRunning() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: harness.image))
            #expect(vm.state == .running)
            #expect(vm.machine == "microvm")
            #expect(vm.accelerator == .tcg)
            #expect(vm.startCount == 1)
            #expect(vm.pid != nil)
            #expect(harness.store.vms.first?.state == .running)
            var output = [UInt8]()
            for await chunk in try await manager.logs("web") { output += chunk }
            #expect(String(decoding: output, as: UTF8.self) == "hello\n")
            #expect(await manager.list().map(\.name) == ["web"])
        }
    }

    @Test("a disk image runs on the pc machine")
    func diskImage() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(image: harness.diskImage))
            #expect(vm.imageKind == .disk)
            #expect(vm.machine == "pc")
            #expect(vm.name.hasPrefix("vm-"))
        }
    }

    @Test("graceful stop: powerdown, exit 0, reason stopped; start again counts")
    func gracefulStopAndRestart() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: harness.image))
            let stopped = try await manager.stop("web")
            #expect(stopped.state == .stopped)
            #expect(stopped.exitCode == 0)
            #expect(stopped.stopReason == .stopped)
            #expect(stopped.pid == nil)
            #expect(harness.hypervisor.instance(for: vm.id)?.powerdownRequests == 1)
            let again = try await manager.start("web")
            #expect(again.state == .running)
            #expect(again.startCount == 2)
            #expect(again.exitCode == nil)
        }
    }

    @Test("a stop the guest ignores ends in a kill after the timeout")
    func forcedStop() async throws {
        let harness = try Harness(script: { _ in .init(honorsPowerdown: false) })
        try await harness.run { manager in
            _ = try await manager.run(VMConfig(name: "web", image: harness.image))
            let stopped = try await manager.stop("web", timeout: .milliseconds(50))
            #expect(stopped.stopReason == .stopTimeout)
            #expect(stopped.exitCode == 137)
            #expect(stopped.exitSignal == 9)
        }
    }

    @Test("kill: SIGKILL, exit code 137, reason killed")
    func kill() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(VMConfig(name: "web", image: harness.image))
            let killed = try await manager.kill("web")
            #expect(killed.stopReason == .killed)
            #expect(killed.exitCode == 137)
        }
    }

    @Test("a guest that exits by itself is recorded with its status")
    func guestExit() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: harness.image))
            async let final = manager.wait("web")
            harness.hypervisor.instance(for: vm.id)?.exit(code: 3)
            let stopped = try await final
            #expect(stopped.state == .stopped)
            #expect(stopped.exitCode == 3)
            #expect(stopped.qemuExitStatus == 7)
            #expect(stopped.stopReason == .exited)
            #expect(try await manager.inspect("web").exitCode == 3)
        }
    }

    @Test("a QEMU crash is recorded as crashed with the signal")
    func crash() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: harness.image))
            async let final = manager.wait("web")
            harness.hypervisor.instance(for: vm.id)?.crash(signal: 11)
            let stopped = try await final
            #expect(stopped.stopReason == .crashed)
            #expect(stopped.exitCode == 139)
            #expect(stopped.lastError == "qemu was killed by signal 11")
        }
    }

    @Test("auto-remove: the record goes once the VM stops; wait still answers by id")
    func autoRemove() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(image: harness.image, autoRemove: true))
            harness.hypervisor.instance(for: vm.id)?.exit(code: 5)
            let final = try await manager.wait(vm.id.rawValue)
            #expect(final.exitCode == 5)
            while await manager.list(all: true).count > 0 { await Task.yield() }
            #expect(harness.store.vms.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: harness.directory.path + "/vms/\(vm.id)"))
            #expect(try await manager.wait(vm.id.rawValue).exitCode == 5)
        }
    }

    @Test("a failed run leaves no record, no folder and no process")
    func failedRunRollsBack() async throws {
        let harness = try Harness(script: { _ in .init(launchError: UniError(.hypervisorFailed, "qemu failed to start (exit status 1): boom")) })
        try await harness.run { manager in
            let error = await #expect(throws: UniError.self) { try await manager.run(VMConfig(name: "web", image: harness.image)) }
            #expect(error?.message == "qemu failed to start (exit status 1): boom")
            let left = await manager.list(all: true)
            #expect(left.isEmpty)
            #expect(harness.store.vms.isEmpty)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: harness.directory.path + "/vms")
            #expect(leftovers.isEmpty)
        }
    }

    @Test("a failed start of an existing VM leaves it stopped with last_error")
    func failedStartKeepsRecord() async throws {
        let harness = try Harness(script: { _ in .init(launchError: UniError(.conflict, "host port 8080/tcp is already in use")) })
        try await harness.run { manager in
            _ = try await manager.create(VMConfig(name: "web", image: harness.image))
            await #expect(throws: UniError.self) { try await manager.start("web") }
            let vm = try await manager.inspect("web")
            #expect(vm.state == .stopped)
            #expect(vm.stopReason == .failedToStart)
            #expect(vm.lastError == "host port 8080/tcp is already in use")
        }
    }

    @Test("operations invalid in the VM's state are refused with a clear message")
    func invalidStates() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(VMConfig(name: "web", image: harness.image))
            let start = await #expect(throws: UniError.self) { try await manager.start("web") }
            #expect(start?.message == "vm web is already running")
            #expect(start?.code == .invalidState)
            let remove = await #expect(throws: UniError.self) { try await manager.remove("web") }
            #expect(remove?.message == "vm web is running: stop it first or use rm -f")
            _ = try await manager.stop("web")
            let stop = await #expect(throws: UniError.self) { try await manager.stop("web") }
            #expect(stop?.message == "vm web is not running (state: stopped)")
            let kill = await #expect(throws: UniError.self) { try await manager.kill("web") }
            #expect(kill?.message == "vm web is not running (state: stopped)")
        }
    }

    @Test("rm -f kills a running VM and removes it")
    func forceRemove() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: harness.image))
            try await manager.remove("web", force: true)
            #expect(harness.hypervisor.instance(for: vm.id)?.hasExited == true)
            #expect(await manager.list(all: true).isEmpty)
            let gone = await #expect(throws: UniError.self) { try await manager.inspect("web") }
            #expect(gone?.message == "no such vm: web")
            #expect(gone?.code == .notFound)
        }
    }

    @Test("names are unique; references resolve by name, id and unique prefix")
    func references() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.create(VMConfig(name: "web", image: harness.image))
            let duplicate = await #expect(throws: UniError.self) { try await manager.create(VMConfig(name: "web", image: harness.image)) }
            #expect(duplicate?.message == "the name 'web' is already used by vm \(vm.id)")
            #expect(duplicate?.code == .conflict)
            #expect(try await manager.inspect(vm.id.rawValue).name == "web")
            #expect(try await manager.inspect(String(vm.id.rawValue.prefix(5))).name == "web")
        }
    }

    @Test("create refuses a missing image, a directory, and an unknown format")
    func badImages() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let missing = await #expect(throws: UniError.self) { try await manager.create(VMConfig(image: "/nonexistent/k.elf")) }
            #expect(missing?.message == "image '/nonexistent/k.elf' does not exist")
            let directory = await #expect(throws: UniError.self) { try await manager.create(VMConfig(image: harness.directory.path)) }
            #expect(directory?.message.contains("is a directory") == true)
            let text = harness.directory.path + "/notes.txt"
            try "hello".write(toFile: text, atomically: true, encoding: .utf8)
            let unknown = await #expect(throws: UniError.self) { try await manager.create(VMConfig(image: text)) }
            #expect(unknown?.message.contains("is neither a kernel (ELF or bzImage) nor a bootable disk image") == true)
            #expect(await manager.list(all: true).isEmpty)
        }
    }

    @Test("a store that cannot write refuses create and leaves no folder")
    func storeFailure() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            harness.store.failWrites(with: UniError(.storeFailed, "disk full"))
            let error = await #expect(throws: UniError.self) { try await manager.create(VMConfig(name: "web", image: harness.image)) }
            #expect(error?.message == "cannot create vm web: disk full")
            #expect(error?.code == .storeFailed)
            #expect(await manager.healthProblem() == "store: disk full")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: harness.directory.path + "/vms")
            #expect(leftovers.isEmpty)
        }
    }

    @Test("load marks VMs a dead daemon left running as stopped and daemon_recovered")
    func recovery() async throws {
        let harness = try Harness()
        var orphan = VM(id: VMID.random(), name: "old", config: VMConfig(image: harness.image), imageKind: .kernel, createdAt: Date())
        orphan.state = .running
        orphan.pid = 999_999
        try await harness.store.save(orphan)
        try await harness.run { manager in
            let vm = try await manager.inspect("old")
            #expect(vm.state == .stopped)
            #expect(vm.daemonRecovered)
            #expect(vm.stopReason == .daemonRecovered)
            #expect(harness.store.vms.first?.daemonRecovered == true)
        }
    }

    @Test("run writes no record before starting, then starting (not fsynced) and running (durably); create alone is durable")
    func persistenceOfARun() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: harness.image))
            let created = try await manager.create(VMConfig(name: "later", image: harness.image))
            typealias Write = InMemoryVMStore.Write
            #expect(harness.store.writes == [
                Write(id: vm.id, state: .starting, durable: false),
                Write(id: vm.id, state: .running, durable: true),
                Write(id: created.id, state: .created, durable: true),
            ])
        }
    }

    @Test("QEMU orphan recovery kills the process a dead daemon spawned before it recorded the pid (qemu.pid)")
    func recoveryFromPIDFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let vm = VM(id: VMID.random(), name: "half", config: VMConfig(image: "/k.elf"), imageKind: .kernel, createdAt: Date())
        let folder = directory.path + "/" + vm.id.rawValue
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // A stand-in for QEMU: its command line names the VM's QMP socket, as QEMU's does.
        let stand = Process()
        stand.executableURL = URL(fileURLWithPath: "/bin/sh")
        stand.arguments = ["-c", "read line", folder + "/qmp.sock"]
        stand.standardInput = Pipe()
        try stand.run()
        defer { if stand.isRunning { stand.terminate() } }
        let hypervisor = QEMUHypervisor(binaryPath: "/bin/false", accelerator: .tcg)
        // Another VM's folder: the process is not its QEMU and is left alone.
        #expect(await hypervisor.stopOrphan(of: vm, directory: directory.path + "/other") == false)
        try "\(stand.processIdentifier)\n".write(toFile: folder + "/qemu.pid", atomically: true, encoding: .utf8)
        #expect(await hypervisor.stopOrphan(of: vm, directory: folder))
        stand.waitUntilExit()
        #expect(stand.terminationReason == .uncaughtSignal)
        #expect(stand.terminationStatus == SIGKILL)
    }

    @Test("load asks the hypervisor to end the process of every VM a dead daemon left with one")
    func recoveryAsksTheHypervisor() async throws {
        let harness = try Harness()
        var orphan = VM(id: VMID.random(), name: "half", config: VMConfig(image: harness.image), imageKind: .kernel, createdAt: Date())
        orphan.state = .starting
        let created = VM(id: VMID.random(), name: "idle", config: VMConfig(image: harness.image), imageKind: .kernel, createdAt: Date())
        try await harness.store.save(orphan)
        try await harness.store.save(created)
        let orphanID = orphan.id
        try await harness.run { manager in
            #expect(harness.hypervisor.orphansStopped == [orphanID])
            let vm = try await manager.inspect("half")
            #expect(vm.state == .stopped)
            #expect(vm.daemonRecovered)
        }
    }

    @Test("graceful shutdown of the service stops every running VM")
    func shutdownStopsVMs() async throws {
        let harness = try Harness()
        defer { harness.directory.remove() }
        try await harness.manager.load()
        let vm = try await harness.manager.withRunning { manager in
            try await manager.run(VMConfig(name: "web", image: harness.image))
        }
        #expect(harness.hypervisor.instance(for: vm.id)?.hasExited == true)
        #expect(try await harness.manager.inspect("web").state == .stopped)
    }
}
