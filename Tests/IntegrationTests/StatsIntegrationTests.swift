import Foundation
import Testing
import UniCLI
import UniKit
import UniKitTesting

extension Integration {
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

        @Test("a Linux guest: 1 MiB through -p and its disk reads show in uni stats and the API, with units in the table")
        func linuxTrafficAndDisk() async throws {
            let image = try Host.linuxDisk()
            let port = try Host.freePort()
            try await DaemonHarness().run { harness, _ in
                let client = harness.client
                _ = try await client.create(VMConfig(name: "web", image: image, memory: .mebibytes(256),
                                                     ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: port, guestPort: 80)]), start: true)
                let booted = await Host.eventually(timeout: .seconds(180)) { (try? await harness.logs("web"))?.contains(IOCountersIntegrationTests.ready) == true }
                let console = (try? await harness.logs("web", tail: 20)) ?? ""
                try #require(booted, "the Linux guest did not serve HTTP: \(console)")
                let before = try await client.stats("web").current
                #expect(try await IOCountersIntegrationTests.download(port: port, path: "/1m") == 1 << 20)
                // The harness's poller samples every 100 ms; one-shot stats also read afresh.
                var after = before
                let counted = await Host.eventually(timeout: .seconds(5)) {
                    after = (try? await client.stats("web").current) ?? after
                    return (after.networkTransmittedBytes ?? 0) >= (before.networkTransmittedBytes ?? 0) + (1 << 20)
                }
                #expect(counted, "transmitted \(String(describing: before.networkTransmittedBytes)) -> \(String(describing: after.networkTransmittedBytes))")
                // SeaBIOS and syslinux read the kernel from the disk.
                #expect(try #require(after.diskReadBytes) > 10_000_000)
                #expect(try #require(after.diskReadOperations) > 0)

                let json = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "stats", "--output", "json", "web"])
                #expect(json.status == 0, "\(json.stderr)")
                let line = try JSONCoding.makeDecoder().decode(VMStats.self, from: Data(json.stdout.utf8))
                #expect(try #require(line.networkTransmittedBytes) >= 1 << 20)
                #expect(try #require(line.diskReadBytes) > 10_000_000)
                let table = try Host.runProduct("uni", ["--data-dir", harness.directory.path, "stats", "web"])
                let row = try #require(table.stdout.split(separator: "\n").last { $0.contains("web") })
                #expect(row.contains("MiB"), "\(table.stdout)")
                #expect(!row.contains(" - "), "a running disk-image VM has every figure: \(table.stdout)")
            }
        }

        @Test("uni stats --watch on a terminal: redraws in place, and Ctrl-C shows the cursor again after a whole frame")
        func watchOnTerminal() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                _ = try await harness.client.create(VMConfig(name: "watched", image: kernel), start: true)
                let terminal = try CapturedOutput(terminal: true)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: Host.binDirectory + "/uni")
                process.arguments = ["--data-dir", harness.directory.path, "stats", "--watch", "--interval", "200ms"]
                process.standardInput = terminal.child
                process.standardOutput = terminal.child
                process.standardError = terminal.child
                try process.run()
                defer { if process.isRunning { process.terminate() } }
                let clear = "\u{1B}[H\u{1B}[2J"
                // Two frames: the first, then one redraw in place.
                let redrawn = await Host.eventually(timeout: .seconds(20)) {
                    terminal.read()
                    return terminal.output.components(separatedBy: clear).count > 2
                }
                #expect(redrawn, "\(terminal.output.debugDescription)")
                // What the terminal does on Ctrl-C: SIGINT to the foreground
                // process. This test process starts it with SIGINT blocked,
                // which uni must undo.
                process.interrupt()
                let ended = await Host.eventually(timeout: .seconds(10)) { !process.isRunning }
                try #require(ended)
                terminal.read()
                #expect(process.terminationStatus == 130)
                let output = terminal.output
                #expect(output.hasPrefix("\u{1B}[?25l"), "the cursor is hidden first: \(output.debugDescription)")
                // The terminal turns \n into \r\n.
                #expect(output.hasSuffix("\u{1B}[?25h\r\n"), "the cursor is shown again on a fresh line: \(output.debugDescription)")
                let lastFrame = try #require(output.components(separatedBy: clear).last)
                #expect(lastFrame.hasPrefix("ID"), "\(lastFrame.debugDescription)")
                #expect(lastFrame.contains("watched"))
                #expect(lastFrame.hasSuffix("\r\n\u{1B}[?25h\r\n"), "a whole table, then the cursor: \(lastFrame.debugDescription)")
            }
        }

        @Test("uni stats --watch into a pipe: tables one after another with no terminal codes; --output json is one object per VM per sample")
        func watchIntoPipe() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                for name in ["one", "two"] { _ = try await harness.client.create(VMConfig(name: name, image: kernel), start: true) }
                func watch(_ extra: [String], until done: @escaping (String) -> Bool) async throws -> String {
                    let pipe = try CapturedOutput(terminal: false)
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: Host.binDirectory + "/uni")
                    process.arguments = ["--data-dir", harness.directory.path, "stats", "--watch", "--interval", "100ms"] + extra
                    process.standardOutput = pipe.child
                    process.standardError = pipe.child
                    try process.run()
                    // SIGKILL: this test process starts children with SIGINT and SIGTERM blocked.
                    defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
                    let seen = await Host.eventually(timeout: .seconds(20)) {
                        pipe.read()
                        return done(pipe.output)
                    }
                    #expect(seen, "\(pipe.output.debugDescription)")
                    return pipe.output
                }
                let tables = try await watch([]) { $0.components(separatedBy: "ID ").count > 3 }
                #expect(!tables.contains("\u{1B}"), "no terminal codes into a pipe: \(tables.debugDescription)")
                #expect(tables.hasPrefix("ID "))
                #expect(tables.contains("\n\nID "), "a blank line between tables")

                let lines = try await watch(["--output", "json"]) { $0.split(separator: "\n").count >= 6 }
                let samples = try lines.split(separator: "\n").dropLast().map { try JSONCoding.makeDecoder().decode(VMStats.self, from: Data($0.utf8)) }
                #expect(Set(samples.map(\.name)) == ["one", "two"])
                #expect(samples.count >= 5)
            }
        }
    }
}
