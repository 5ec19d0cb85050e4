import Foundation
import Testing
import UniCLI
import UniKit
import UniKitTesting

/// `uni stats` and the stats API against real QEMU guests: the numbers are
/// the QEMU process's own, read from `/proc` by the one sampler.
@Suite("Stats of real VMs", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed"))
struct StatsIntegrationTests {
    @Test("a guest that burns CPU shows high CPU %, an idle one low; memory is the process's RSS, not the configured size")
    func burnAndIdle() async throws {
        let kernel = try Host.kernel()
        try await DaemonHarness().run { harness, _ in
            let client = harness.client
            _ = try await client.create(VMConfig(name: "burner", image: kernel, memory: .mebibytes(256), kernelCommandLine: "burn"))
            _ = try await client.create(VMConfig(name: "idler", image: kernel, memory: .mebibytes(256)))
            #expect(try await harness.waitForConsole("burner", containing: "burning cpu"))
            // The harness's poller samples every 100 ms. A spinning TCG vCPU
            // takes a whole core when it can have one; on a shared machine
            // it gets less, so the check is relative to the idle guest: the
            // burner must use several times its CPU, and a real share of a core.
            var burner = try await client.stats("burner").current
            var idler = try await client.stats("idler").current
            let separated = await Host.eventually(timeout: .seconds(15)) {
                burner = (try? await client.stats("burner").current) ?? burner
                idler = (try? await client.stats("idler").current) ?? idler
                guard let hot = burner.cpuPercent, let cold = idler.cpuPercent else { return false }
                return hot > 25 && hot > 3 * cold
            }
            #expect(separated, "burner \(String(describing: burner.cpuPercent))%, idler \(String(describing: idler.cpuPercent))%")
            for stats in [burner, idler] {
                let rss = try #require(stats.memoryRSSBytes)
                #expect(rss > 1 << 20 && rss < 256 << 20, "RSS \(rss) of \(stats.name)")
                #expect(stats.source == .proc)
                #expect(stats.diskReadBytes == nil)  // a kernel image has no disk
            }

            let table = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "stats"])
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.hasPrefix("ID"))
            #expect(table.stdout.contains("burner") && table.stdout.contains("idler"))
            let json = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "stats", "--output", "json", "burner"])
            let lines = json.stdout.split(separator: "\n")
            #expect(lines.count == 1)
            let decoded = try JSONCoding.makeDecoder().decode(VMStats.self, from: Data(lines[0].utf8))
            #expect(decoded.name == "burner")
            let stopped = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "stats", "nope"])
            #expect(stopped.status == 1)
            #expect(stopped.stderr == "error: no such vm: nope\n")
        }
    }
}
