import Foundation
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

extension Integration {
    /// Disk throttling with real QEMU and the real binaries: a guest that reads
    /// its boot disk in a loop, measured through QMP `query-blockstats`.
    @Suite("Disk throttling with real QEMU", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct ThrottleIntegrationTests {
        static let reading = "uni-disk-guest: reading the disk in a loop"

        /// The boot disk's read operations per second, counted over about 3 s.
        /// Each count is bracketed by the times its QMP call was sent and
        /// answered; under load an answer can come late, so the rate is
        /// returned as a range: the count over the longest and the shortest
        /// window the two counts can span.
        static func readRate(_ qmp: QMPClient) async throws -> ClosedRange<Double> {
            let clock = ContinuousClock()
            let firstSent = clock.now
            let before = try await readOperations(qmp)
            let firstAnswered = clock.now
            try await Task.sleep(for: .seconds(3))
            let secondSent = clock.now
            let after = try await readOperations(qmp)
            let secondAnswered = clock.now
            func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
            let count = Double(after - before)
            return count / seconds(secondAnswered - firstSent)...count / seconds(secondSent - firstAnswered)
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
            func inspect() throws -> VM { try JSONCoding.makeDecoder().decode([VM].self, from: Data(try uni(["inspect", "dl"]).stdout.utf8))[0] }
            let unid = try Host.startDaemon(dataDir: dir.path)
            defer { unid.send(SIGKILL) }
            #expect(await Host.eventually { (try? uni(["ps"]).status) == 0 })

            let run = try uni(["run", "--name", "dl", "--disk-iops", "10", image])
            try #require(run.status == 0, "\(run.stderr)")
            let id = try VMID(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            let qmp = QMPClient(socketPath: DataDirectory(root: dir.path).files(of: id).qmpSocketPath)
            #expect(await Host.eventually { (try? uni(["logs", "dl"]).stdout.contains(ThrottleIntegrationTests.reading)) == true })

            // Bounds that hold on a loaded machine (the whole suite runs beside
            // this test; a starved TCG guest reads ~100/s instead of ~4000/s).
            let limited = try await ThrottleIntegrationTests.readRate(qmp)
            #expect(limited.upperBound > 2 && limited.lowerBound <= 10 * 1.3, "at --disk-iops 10: \(limited) reads/s")
            #expect(try inspect().config.diskThrottle == DiskThrottle(iops: 10))

            #expect(try uni(["update", "dl", "--disk-iops", "0"]).stdout == "dl\n")
            let free = try await ThrottleIntegrationTests.readRate(qmp)
            #expect(free.lowerBound >= 10 * 4, "without a limit: \(free) reads/s")

            #expect(try uni(["update", "dl", "--disk-iops", "4"]).status == 0)
            let lowered = try await ThrottleIntegrationTests.readRate(qmp)
            #expect(lowered.upperBound > 1 && lowered.lowerBound <= 4 * 1.3 + 1, "after update --disk-iops 4: \(lowered) reads/s")
            #expect(try inspect().config.diskThrottle == DiskThrottle(iops: 4))

            // A sector is 512 bytes: 2560 bytes per second is 5 reads.
            #expect(try uni(["update", "dl", "--disk-iops", "0", "--disk-bps", "2560"]).status == 0)
            let byBytes = try await ThrottleIntegrationTests.readRate(qmp)
            #expect(byBytes.upperBound > 1 && byBytes.lowerBound <= 5 * 1.3 + 1, "after update --disk-bps 2560: \(byBytes) reads/s")

            // Kept for the next start, on QEMU's own command line.
            #expect(try uni(["kill", "dl"]).status == 0)
            #expect(try uni(["start", "dl"]).status == 0)
            let pid = try #require(try inspect().pid)
            let commandLine = try String(decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")), as: UTF8.self)
            #expect(commandLine.contains(",throttling.bps-total=2560"), "\(commandLine)")
            #expect(!commandLine.contains("throttling.iops-total"), "\(commandLine)")
            #expect(await Host.eventually { (try? uni(["logs", "dl"]).stdout.contains(ThrottleIntegrationTests.reading)) == true })
            let restarted = try await ThrottleIntegrationTests.readRate(qmp)
            #expect(restarted.upperBound > 1 && restarted.lowerBound <= 5 * 1.3 + 1, "after a restart with --disk-bps 2560: \(restarted) reads/s")

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
}
