import Foundation
import Logging
import Synchronization
import Testing
@testable import UniKit
import UniKitTesting

/// Restart policies and their backoff, driven by a manual clock: no test
/// here sleeps for a backoff.
@Suite("Restart policies (scripted hypervisor, manual clock)")
struct RestartPolicyTests {
    struct Harness {
        let directory: TemporaryDirectory
        let store: InMemoryVMStore
        let hypervisor: ScriptedHypervisor
        let clock = ManualClock()
        let manager: VMManager
        let image: String
        let now: WallClock

        let prober = ScriptedHealthProber()

        init(store: InMemoryVMStore = InMemoryVMStore()) throws {
            directory = try TemporaryDirectory()
            self.store = store
            hypervisor = ScriptedHypervisor()
            let now = WallClock()
            self.now = now
            var configuration = VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path), now: { now.date }, clock: clock)
            configuration.restartBackoff = RestartBackoff(initial: .milliseconds(500), maximum: .seconds(2), stableRun: .seconds(10))
            manager = VMManager(configuration: configuration,
                                backends: VMManagerBackends(store: store, hypervisor: hypervisor, healthProber: prober), logger: Logger(label: "test"))
            image = directory.makeFakeKernel()
        }

        func run(_ body: @Sendable (VMManager) async throws -> Void) async throws {
            defer { directory.remove() }
            try await manager.load()
            try await manager.withRunning(body)
        }

        func config(_ policy: String) throws -> VMConfig {
            VMConfig(name: "svc", image: image, restartPolicy: try RestartPolicy.parse(policy))
        }

        /// The guest of the current run exits with `code`; returns once the exit is recorded.
        func exitGuest(code: Int32, after run: Duration = .seconds(1)) async throws {
            let instance = try #require(hypervisor.instance(for: try await manager.inspect("svc").id))
            now.advance(by: run)
            instance.exit(code: code)
            #expect(await eventually { (try? await manager.inspect("svc").state) == .stopped })
        }

        /// Whether "svc" runs after `count` restarts (a restart shows `starting` first).
        func isRunning(afterRestarts count: Int) async -> Bool {
            guard let vm = try? await manager.inspect("svc") else { return false }
            return vm.restartCount == count && vm.state == .running
        }

        /// Waits (with a deadline) until the prober has seen `count` probes.
        func waitForProbes(atLeast count: Int) async {
            let deadline = ContinuousClock.now + .seconds(60)  // only reached when the test fails
            while prober.probes.count < count, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(2)) }
        }

        func eventually(_ condition: @Sendable () async -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(60)  // only reached when the test fails
            while ContinuousClock.now < deadline {
                if await condition() { return true }
                try? await Task.sleep(for: .milliseconds(2))
            }
            return await condition()
        }
    }

    /// The wall clock of the records, moved by hand so run lengths are exact.
    final class WallClock: Sendable {
        private let offset = Mutex<TimeInterval>(0)
        private let start = Date(timeIntervalSince1970: 1_800_000_000)
        var date: Date { start.addingTimeInterval(offset.withLock { $0 }) }
        func advance(by duration: Duration) { offset.withLock { $0 += Double(duration.wholeMilliseconds) / 1000 } }
    }

    @Test("on-failure: a non-zero exit restarts after 500 ms, then 1 s, then 2 s (the cap); exit 0 is left alone; each end is kept")
    func onFailureBacksOff() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(try harness.config("on-failure"))
            for (attempt, delay) in [(1, Duration.milliseconds(500)), (2, .seconds(1)), (3, .seconds(2)), (4, .seconds(2))] {
                try await harness.exitGuest(code: 3)
                await harness.clock.waitForSleep(ofLength: delay)
                #expect(harness.hypervisor.launchCount == attempt, "no restart before the delay")
                harness.clock.advance(by: delay)
                #expect(await harness.eventually { await harness.isRunning(afterRestarts: attempt) })
                let vm = try await manager.inspect("svc")
                #expect(vm.state == .running)
                #expect(vm.lastRestartAt != nil)
                #expect(vm.exits.count == attempt)
                #expect(vm.exits.last?.exitCode == 3 && vm.exits.last?.reason == .exited)
            }
            try await harness.exitGuest(code: 0)
            let handled = await manager.restartsHandled
            #expect(await manager.pendingRestarts.isEmpty, "exit code 0 is not a failure")
            #expect(handled == 4)
            #expect(try await manager.inspect("svc").restartCount == 4)
            #expect(harness.store.vms.first?.restartCount == 4, "the count is persisted")
        }
    }

    @Test("a run as long as the stable run starts the backoff again; always restarts a clean exit; a crash counts as a failure")
    func stableRunResetsBackoff() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(try harness.config("always"))
            try await harness.exitGuest(code: 0)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await harness.isRunning(afterRestarts: 1) })
            try await harness.exitGuest(code: 0)
            await harness.clock.waitForSleep(ofLength: .seconds(1))
            harness.clock.advance(by: .seconds(1))
            #expect(await harness.eventually { await harness.isRunning(afterRestarts: 2) })
            // Eleven seconds of running: the next restart waits 500 ms again.
            let instance = try #require(harness.hypervisor.instance(for: try await manager.inspect("svc").id))
            harness.now.advance(by: .seconds(11))
            instance.crash(signal: SIGSEGV)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await harness.isRunning(afterRestarts: 3) })
            #expect(try await manager.inspect("svc").exits.map(\.reason) == [.exited, .exited, .crashed])
        }
    }

    @Test("stop, kill and start during the backoff take the restart back; a stop of a running VM is never undone")
    func requestsWin() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(try harness.config("always"))
            // A stop while it runs: never restarted.
            _ = try await manager.stop("svc")
            #expect(try await manager.inspect("svc").stopReason == .stopped)
            #expect(await manager.pendingRestarts.isEmpty)

            // A stop while it waits: the stop answers with the stopped VM, and the restart is called off.
            _ = try await manager.start("svc")
            try await harness.exitGuest(code: 1)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            let stopped = try await manager.stop("svc")
            #expect(stopped.state == .stopped)
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await manager.restartsHandled == 1 })
            #expect(try await manager.inspect("svc").state == .stopped)
            #expect(harness.hypervisor.launchCount == 2)

            // A kill while it waits does the same.
            _ = try await manager.start("svc")
            try await harness.exitGuest(code: 1)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            #expect(try await manager.kill("svc").state == .stopped)
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await manager.restartsHandled == 2 })
            #expect(harness.hypervisor.launchCount == 3)

            // A start by hand while it waits: one process, not two.
            _ = try await manager.start("svc")
            try await harness.exitGuest(code: 1)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            let vm = try await manager.start("svc")
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await manager.restartsHandled == 3 })
            #expect(harness.hypervisor.launchCount == 5)
            #expect(harness.hypervisor.liveInstanceCount[vm.id] == 1)
            #expect(try await manager.inspect("svc").restartCount == 0)
        }
    }

    @Test("on-failure:2 gives up after two restarts in a row; rm during the wait leaves nothing to restart")
    func retriesBounded() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(try harness.config("on-failure:2"))
            for (attempt, delay) in [(1, Duration.milliseconds(500)), (2, .seconds(1))] {
                try await harness.exitGuest(code: 2)
                await harness.clock.waitForSleep(ofLength: delay)
                harness.clock.advance(by: delay)
                #expect(await harness.eventually { await harness.isRunning(afterRestarts: attempt) })
            }
            try await harness.exitGuest(code: 2)
            #expect(await manager.pendingRestarts.isEmpty, "the third failure in a row is not restarted")
            #expect(try await manager.inspect("svc").state == .stopped)

            _ = try await manager.start("svc")
            try await harness.exitGuest(code: 2)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            try await manager.remove("svc")
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await manager.restartsHandled == 3 })
            #expect(await manager.list(all: true).isEmpty)
        }
    }

    @Test("a new daemon starts again the always VMs it recovered or that a daemon shutdown stopped, and only those")
    func alwaysAfterDaemonRestart() async throws {
        let store = InMemoryVMStore()
        let harness = try Harness(store: store)
        var recovered = VM(id: VMID.random(), name: "recovered", config: VMConfig(name: "recovered", image: harness.image, restartPolicy: .init(mode: .always)), imageKind: .kernel, createdAt: Date())
        recovered.state = .running
        recovered.pid = 99_999_999
        var shutdown = VM(id: VMID.random(), name: "shutdown", config: VMConfig(name: "shutdown", image: harness.image, restartPolicy: .init(mode: .always)), imageKind: .kernel, createdAt: Date())
        shutdown.state = .stopped
        shutdown.stopReason = .daemonShutdown
        var stoppedByHand = VM(id: VMID.random(), name: "by-hand", config: VMConfig(name: "by-hand", image: harness.image, restartPolicy: .init(mode: .always)), imageKind: .kernel, createdAt: Date())
        stoppedByHand.state = .stopped
        stoppedByHand.stopReason = .stopped
        var onFailure = VM(id: VMID.random(), name: "on-failure", config: VMConfig(name: "on-failure", image: harness.image, restartPolicy: .init(mode: .onFailure)), imageKind: .kernel, createdAt: Date())
        onFailure.state = .stopped
        onFailure.stopReason = .daemonShutdown
        for vm in [recovered, shutdown, stoppedByHand, onFailure] { try await store.save(vm) }
        try await harness.run { manager in
            #expect(await harness.eventually { await manager.restartsHandled == 2 })
            let states = Dictionary(uniqueKeysWithValues: await manager.list(all: true).map { ($0.name, $0.state) })
            #expect(states == ["recovered": .running, "shutdown": .running, "by-hand": .stopped, "on-failure": .stopped])
        }
        // The shutdown of that daemon stopped them as `daemon_shutdown`.
        #expect(store.vms.first { $0.name == "recovered" }?.stopReason == .daemonShutdown)
    }

    /// One probe: waits until the loop sleeps its interval, lets it pass, and
    /// returns once the result is recorded.
    static func probe(_ harness: Harness, answering answer: HealthProbeResult, interval: Duration = .seconds(10)) async {
        let before = harness.prober.probes.count
        harness.prober.answer = answer
        await harness.clock.waitForSleep(ofLength: interval)
        harness.clock.advance(by: interval)
        _ = await harness.eventually { harness.prober.probes.count > before }
        // Recorded under the gate once the probe returns; the next sleep starts after.
        await harness.clock.waitForSleep(ofLength: interval)
    }

    @Test("health: starting, healthy, unhealthy after 3 failures in a row, healthy again; failures in the start period do not count; a policy of never leaves it running")
    func healthTransitions() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            var config = VMConfig(name: "svc", image: harness.image, ports: [PortMapping(hostPort: 18_080, guestPort: 80)],
                                  healthCheck: HealthCheck(kind: .http, guestPort: 80, path: "/healthz", startPeriod: .seconds(25)))
            config.name = "svc"
            let vm = try await manager.run(config)
            #expect(vm.health == .starting)
            // Within the start period (25 s of wall clock): a failure does not count.
            await Self.probe(harness, answering: .unhealthy("HTTP 503"))
            var current = try await manager.inspect("svc")
            #expect(current.health == .starting && current.healthFailures == 0 && current.lastHealthError == "HTTP 503")
            #expect(harness.prober.probes.last! == (host: "127.0.0.1", port: 18_080))
            await Self.probe(harness, answering: .healthy)
            current = try await manager.inspect("svc")
            #expect(current.health == .healthy && current.lastHealthCheckAt != nil && current.lastHealthError == nil)
            harness.now.advance(by: .seconds(30))
            for failures in 1...3 {
                await Self.probe(harness, answering: .unhealthy("HTTP 500"))
                current = try await manager.inspect("svc")
                #expect(current.healthFailures == failures)
                #expect(current.health == (failures < 3 ? .healthy : .unhealthy))
            }
            #expect(current.state == .running, "never: an unhealthy VM keeps running")
            #expect(harness.store.record(current.id)?.health == .unhealthy, "the change is saved")
            await Self.probe(harness, answering: .healthy)
            #expect(try await manager.inspect("svc").health == .healthy)
            _ = try await manager.stop("svc")
            let stopped = try await manager.inspect("svc")
            #expect(stopped.health == .none)
        }
    }

    @Test("health: an unhealthy VM under on-failure is killed as unhealthy and restarted")
    func unhealthyRestarts() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let config = VMConfig(name: "svc", image: harness.image, ports: [PortMapping(hostPort: 18_081, guestPort: 80)],
                                  restartPolicy: .init(mode: .onFailure), healthCheck: HealthCheck(kind: .tcp, guestPort: 80, retries: 1))
            _ = try await manager.run(config)
            harness.prober.answer = .unhealthy("connection closed before the guest answered")
            await harness.clock.waitForSleep(ofLength: .seconds(10))
            harness.clock.advance(by: .seconds(10))
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            let stopped = try await manager.inspect("svc")
            #expect(stopped.state == .stopped && stopped.stopReason == .unhealthy)
            #expect(stopped.exits.last?.reason == .unhealthy)
            harness.prober.answer = .healthy
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await harness.isRunning(afterRestarts: 1) })
            #expect(try await manager.inspect("svc").health == .starting)
            // Each step is an event, in order.
            let kinds = manager.events.events(matching: VMEventFilter(vms: ["svc"])).map(\.kind)
            #expect(kinds == [.transition, .transition, .transition, .health, .transition, .exit, .restart, .transition, .transition])
            let exit = manager.events.events().first { $0.kind == .exit }
            #expect(exit?.attributes["reason"] == "unhealthy" && exit?.attributes["signal"] == "9")
        }
    }

    /// Runs `manager.run()` in a task the test can cancel (a graceful shutdown's path).
    static func startService(_ manager: VMManager) async -> Task<Void, any Error> {
        let task = Task { try await manager.run() }
        while await !manager.isSupervising { await Task.yield() }
        return task
    }

    @Test("a restart whose launch is in flight when shutdown begins finishes, then the shutdown stops it: no QEMU outlives run()")
    func restartInFlightAtShutdown() async throws {
        let harness = try Harness()
        defer { harness.directory.remove() }
        let manager = harness.manager
        try await manager.load()
        let service = await Self.startService(manager)
        let vm = try await manager.run(try harness.config("always"))
        let hold = harness.hypervisor.suspendNextLaunch()
        try await harness.exitGuest(code: 1)
        await harness.clock.waitForSleep(ofLength: .milliseconds(500))
        harness.clock.advance(by: .milliseconds(500))
        await hold.waitUntilReached()             // the restart holds the gate, in launch; the VM is `starting`
        service.cancel()                          // shutdown begins: shuttingDown = true, stopAll()
        #expect(await harness.eventually { await manager.shuttingDown })
        hold.release()                            // the launch completes during/after stopAll
        try? await service.value                  // run() has returned: the daemon would exit now
        let after = try await manager.inspect("svc")
        #expect(after.state == .stopped, "state after the service ended: \(after.state)")
        #expect((harness.hypervisor.liveInstanceCount[vm.id] ?? 0) == 0,
                "live QEMU processes after shutdown: \(harness.hypervisor.liveInstanceCount[vm.id] ?? 0)")
        #expect(harness.store.record(vm.id)?.state == .stopped, "stored state: \(String(describing: harness.store.record(vm.id)?.state))")
    }

    @Test("a restart pending in its backoff when the daemon stops is planned again by the next daemon")
    func pendingRestartLostAcrossDaemons() async throws {
        let store = InMemoryVMStore()
        let first = try Harness(store: store)
        defer { first.directory.remove() }
        try await first.manager.load()
        let service = await Self.startService(first.manager)
        _ = try await first.manager.run(try first.config("always"))
        try await first.exitGuest(code: 1)
        await first.clock.waitForSleep(ofLength: .milliseconds(500))
        #expect(first.manager.events.events().last?.kind == .restart, "a restart was planned")
        service.cancel()                          // daemon shutdown during the 500 ms backoff
        try? await service.value

        let second = try Harness(store: store)    // next daemon, same records
        defer { second.directory.remove() }
        try await second.manager.load()
        let next = await Self.startService(second.manager)
        // Planned again, with the first wait of a row.
        await second.clock.waitForSleep(ofLength: .milliseconds(500))
        second.clock.advance(by: .milliseconds(500))
        let restarted = await second.eventually { (try? await second.manager.inspect("svc").state) == .running }
        let pending = await second.manager.pendingRestarts.count
        let reason = try await second.manager.inspect("svc").stopReason
        #expect(restarted, "always VM left stopped by the next daemon; pending restarts there: \(pending), stop_reason \(String(describing: reason))")
        next.cancel()
        try? await next.value
    }

    @Test("a restart that fails before the launch (image gone) is a failed start: it counts in the row, and on-failure:2 gives up")
    func preLaunchFailureIgnoresRetryLimit() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.run(try harness.config("on-failure:2"))
            try await harness.exitGuest(code: 1, after: .seconds(11))   // a stable run, then a failure
            try FileManager.default.removeItem(atPath: harness.image)    // the image disappears (or the store is full)
            // The failed starts count in the row: 500 ms, 1 s, then on-failure:2 gives up.
            for delay in [Duration.milliseconds(500), .seconds(1)] {
                await harness.clock.waitForSleep(ofLength: delay)
                let handled = await manager.restartsHandled
                harness.clock.advance(by: delay)
                _ = await harness.eventually { await manager.restartsHandled > handled }
            }
            #expect(await harness.eventually { manager.events.events().contains { $0.kind == .restartGaveUp } })
            let restarts = manager.events.events().filter { $0.kind == .restart }
            #expect(restarts.map { $0.attributes["delay_ms"] } == ["500", "1000"])
            let vm = try await manager.inspect("svc")
            #expect(vm.state == .stopped && vm.stopReason == .failedToStart && vm.restartGaveUp)
            #expect(vm.lastError?.contains(harness.image) == true, "\(String(describing: vm.lastError))")
            #expect(vm.exits.map(\.reason) == [.exited, .failedToStart, .failedToStart])
            #expect(harness.store.record(vm.id)?.restartGaveUp == true, "a new daemon will not plan it again")
        }
    }

    @Test("after a restart only one health loop probes; rm ends it; a 0.0.0.0 mapping is probed at 127.0.0.1")
    func oneHealthLoopAfterRestart() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let config = VMConfig(name: "svc", image: harness.image, ports: [PortMapping(hostAddress: "0.0.0.0", hostPort: 18_082, guestPort: 80)],
                                  restartPolicy: .init(mode: .onFailure), healthCheck: HealthCheck(kind: .tcp, guestPort: 80))
            _ = try await manager.run(config)
            await RestartPolicyTests.probe(harness, answering: .healthy)
            harness.now.advance(by: .seconds(3))
            try await harness.exitGuest(code: 1)
            await harness.clock.waitForSleep(ofLength: .milliseconds(500))
            harness.clock.advance(by: .milliseconds(500))
            #expect(await harness.eventually { await harness.isRunning(afterRestarts: 1) })
            // The old loop (asleep since before the crash) and the new one both sleep 10 s now.
            #expect(await harness.eventually { harness.clock.pendingSleeps.filter { $0 == .seconds(10) }.count == 2 })
            let before = harness.prober.probes.count
            for round in 1...3 {
                harness.clock.advance(by: .seconds(10))
                await harness.waitForProbes(atLeast: before + round)
                // Only the new loop sleeps again: the old one saw another process and ended.
                #expect(await harness.eventually { harness.clock.pendingSleeps.filter { $0 == .seconds(10) }.count == 1 })
            }
            #expect(harness.prober.probes.count - before == 3, "probes in 3 intervals: \(harness.prober.probes.count - before)")
            #expect(harness.prober.probes.allSatisfy { $0.host == "127.0.0.1" })
            #expect(harness.clock.pendingSleeps.filter { $0 == .seconds(10) }.count == 1, "sleeping loops: \(harness.clock.pendingSleeps)")
            try await manager.remove("svc", force: true)
            harness.clock.advance(by: .seconds(10))
            #expect(await harness.eventually { harness.clock.pendingSleeps.filter { $0 == .seconds(10) }.isEmpty }, "a loop survived rm: \(harness.clock.pendingSleeps)")
        }
    }
}
