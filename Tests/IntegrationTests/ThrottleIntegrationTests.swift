import Foundation
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

/// Disk throttling with real QEMU and the real binaries: a guest that reads
/// its boot disk in a loop, measured through QMP `query-blockstats`.
@Suite("Disk throttling with real QEMU", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
struct ThrottleIntegrationTests {
    static let reading = "uni-disk-guest: reading the disk in a loop"

    /// The boot disk's read operations per second over a 2 s window.
    /// The test's own QMP sessions queue behind unid's in QEMU's backlog.
    static func readRate(_ qmp: QMPClient) async throws -> Double {
        let clock = ContinuousClock()
        let before = try await readOperations(qmp)
        let start = clock.now
        try await Task.sleep(for: .seconds(2))
        let after = try await readOperations(qmp)
        let elapsed = clock.now - start
        return Double(after - before) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    static func readOperations(_ qmp: QMPClient) async throws -> UInt64 {
        let answer = try await qmp.execute("query-blockstats")
        return try #require(QEMUInstance.bootDiskStatistics(in: answer)?.readOperations)
    }

    @Test("--disk-iops holds the guest's reads to the limit; uni update lifts it, sets a new one live and for the next start; --disk-bps too")
    func iopsLimitAndUpdate() async throws {
        let image = try Host.diskLoop()
        let dir = try TemporaryDirectory(prefix: "uni-it")
        defer { dir.remove() }
        func uni(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try Host.runProduct("uni", ["--data-dir", dir.path] + arguments)
        }
        func inspect() throws -> VM { try JSONCoding.makeDecoder().decode(VM.self, from: Data(try uni(["inspect", "dl"]).stdout.utf8)) }
        let unid = try Host.startDaemon(dataDir: dir.path)
        defer { unid.send(SIGKILL) }
        #expect(await Host.eventually { (try? uni(["ps"]).status) == 0 })

        let run = try uni(["run", "--name", "dl", "--disk-iops", "50", image])
        try #require(run.status == 0, "\(run.stderr)")
        let id = try VMID(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let qmp = QMPClient(socketPath: DataDirectory(root: dir.path).files(of: id).qmpSocketPath)
        #expect(await Host.eventually { (try? uni(["logs", "dl"]).stdout.contains(ThrottleIntegrationTests.reading)) == true })

        let limited = try await ThrottleIntegrationTests.readRate(qmp)
        #expect(limited > 5 && limited <= 50 * 1.3, "at --disk-iops 50: \(limited) reads/s")
        #expect(try inspect().config.diskThrottle == DiskThrottle(iops: 50))

        #expect(try uni(["update", "dl", "--disk-iops", "0"]).stdout == "dl\n")
        let free = try await ThrottleIntegrationTests.readRate(qmp)
        #expect(free >= 50 * 4, "without a limit: \(free) reads/s")

        #expect(try uni(["update", "dl", "--disk-iops", "20"]).status == 0)
        let lowered = try await ThrottleIntegrationTests.readRate(qmp)
        #expect(lowered > 2 && lowered <= 20 * 1.3, "after update --disk-iops 20: \(lowered) reads/s")
        #expect(try inspect().config.diskThrottle == DiskThrottle(iops: 20))

        // A sector is 512 bytes: 5K per second is 10 reads.
        #expect(try uni(["update", "dl", "--disk-iops", "0", "--disk-bps", "5K"]).status == 0)
        let byBytes = try await ThrottleIntegrationTests.readRate(qmp)
        #expect(byBytes > 1 && byBytes <= 10 * 1.3, "after update --disk-bps 5K: \(byBytes) reads/s")

        // Kept for the next start, on QEMU's own command line.
        #expect(try uni(["kill", "dl"]).status == 0)
        #expect(try uni(["start", "dl"]).status == 0)
        let pid = try #require(try inspect().pid)
        let commandLine = try String(decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")), as: UTF8.self)
        #expect(commandLine.contains(",throttling.bps-total=5120"), "\(commandLine)")
        #expect(!commandLine.contains("throttling.iops-total"), "\(commandLine)")
        #expect(await Host.eventually { (try? uni(["logs", "dl"]).stdout.contains(ThrottleIntegrationTests.reading)) == true })
        let restarted = try await ThrottleIntegrationTests.readRate(qmp)
        #expect(restarted > 1 && restarted <= 10 * 1.3, "after a restart with --disk-bps 5K: \(restarted) reads/s")

        // A kernel image has no disk: refused by the daemon, nothing created.
        let kernel = try Host.kernel()
        let refused = try uni(["run", "--name", "k", "--disk-iops", "10", kernel])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("it is a kernel image, which has no boot disk"), "\(refused.stderr)")
        #expect(try uni(["inspect", "k"]).status != 0)
        #expect(try uni(["kill", "dl"]).status == 0)
        unid.send(SIGTERM)
        #expect(await unid.waitForTermination() == .exited(0))
        #expect(Host.qemuProcesses(under: dir.path).isEmpty)
    }
}
