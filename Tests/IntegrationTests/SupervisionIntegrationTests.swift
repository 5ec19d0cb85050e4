import Foundation
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

extension Integration {
    /// Health checks against the Linux test guest's real HTTP server, through
    /// QEMU's user-mode port forwarding, and restart policies of real QEMU
    /// processes (docs/health.md).
    @Suite("Health checks and restarts of real guests", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed"))
    struct SupervisionIntegrationTests {
        @Test("the slirp trap: a published port nothing listens on is unhealthy for tcp and http; the served one is healthy; health goes both ways and shows in uni ps")
        func realGuest() async throws {
            let image = try Host.linuxDisk()
            let served = try Host.freePort()
            let unserved = try Host.freePort()
            try await DaemonHarness().run { harness, _ in
                let client = harness.client
                let check = HealthCheck(kind: .http, guestPort: 80, path: "/healthz", interval: .milliseconds(300), timeout: .seconds(3), retries: 2)
                _ = try await client.create(VMConfig(name: "web", image: image, memory: .mebibytes(256),
                                                     ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: served, guestPort: 80),
                                                             PortMapping(hostAddress: "127.0.0.1", hostPort: unserved, guestPort: 81)],
                                                     healthCheck: check), start: true)
                let booted = await Host.eventually(timeout: .seconds(180)) { (try? await harness.logs("web"))?.contains(IOCountersIntegrationTests.ready) == true }
                try #require(booted)

                // The prober itself: QEMU accepts on both host ports; only the guest can tell them apart.
                let prober = SocketHealthProber()
                #expect(await prober.probe(HealthCheck(kind: .tcp, guestPort: 80), host: "127.0.0.1", port: served) == .healthy)
                let refused = await prober.probe(HealthCheck(kind: .tcp, guestPort: 81), host: "127.0.0.1", port: unserved)
                #expect(refused == .unhealthy("connection closed before the guest answered: nothing listens on guest port 81"))
                #expect(await prober.probe(HealthCheck(kind: .http, guestPort: 80, path: "/healthz"), host: "127.0.0.1", port: served) == .healthy)
                #expect(await prober.probe(HealthCheck(kind: .http, guestPort: 80, path: "/missing"), host: "127.0.0.1", port: served) == .unhealthy("HTTP 404"))
                let httpRefused = await prober.probe(HealthCheck(kind: .http, guestPort: 81), host: "127.0.0.1", port: unserved)
                #expect(httpRefused == .unhealthy("connection closed without an HTTP answer: nothing listens on the guest port"))

                // The manager's checks, both ways.
                func health() async -> HealthStatus? { try? await client.inspect("web").health }
                #expect(await Host.eventually(timeout: .seconds(30)) { await health() == .healthy })
                let ps = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "ps"])
                #expect(ps.stdout.contains("healthy"), "\(ps.stdout)")
                _ = await Host.get("http://127.0.0.1:\(served)/cgi-bin/health?down")
                #expect(await Host.eventually(timeout: .seconds(30)) { await health() == .unhealthy })
                let sick = try await client.inspect("web")
                #expect(sick.state == .running && sick.lastHealthError == "HTTP 404")
                _ = await Host.get("http://127.0.0.1:\(served)/cgi-bin/health?up")
                #expect(await Host.eventually(timeout: .seconds(30)) { await health() == .healthy })
            }
        }

        @Test("on-failure:2 restarts a guest that exits 7 twice, then gives up; a QEMU killed from outside is a crash, restarted with a new process")
        func restarts() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, manager in
                let client = harness.client
                _ = try await client.create(VMConfig(name: "job", image: kernel, kernelCommandLine: "exit=7", restartPolicy: try RestartPolicy.parse("on-failure:2")), start: true)
                let gaveUp = await Host.eventually(timeout: .seconds(30)) {
                    manager.events.events(matching: VMEventFilter(vms: ["job"])).contains { $0.kind == .restartGaveUp }
                }
                #expect(gaveUp)
                let job = try await client.inspect("job")
                #expect(job.state == .stopped && job.restartCount == 2 && job.startCount == 3)
                #expect(job.exits.map(\.exitCode) == [7, 7, 7] && job.exits.allSatisfy { $0.reason == .exited })
                let restarts = manager.events.events(matching: VMEventFilter(vms: ["job"])).filter { $0.kind == .restart }
                #expect(restarts.map { $0.attributes["delay_ms"] } == ["500", "1000"])

                let first = try await client.create(VMConfig(name: "svc", image: kernel, restartPolicy: .init(mode: .onFailure)), start: true)
                let pid = try #require(first.pid)
                kill(pid, SIGKILL)
                #expect(await Host.eventually(timeout: .seconds(30)) {
                    guard let vm = try? await client.inspect("svc") else { return false }
                    return vm.state == .running && vm.restartCount == 1
                })
                let svc = try await client.inspect("svc")
                #expect(svc.pid != nil && svc.pid != pid)
                #expect(svc.exits.map(\.reason) == [.crashed] && svc.exits.first?.signal == SIGKILL)
                #expect(Host.qemuProcesses(under: harness.directory.path).count == 1)
            }
        }
    }
}
