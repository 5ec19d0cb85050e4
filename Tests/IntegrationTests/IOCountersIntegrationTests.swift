import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import UniKit
import UniKitTesting

extension Host {
    /// The Linux test guest (`Tests/Guests/linux/build.sh`), built once per
    /// test process; the first build downloads its Debian packages.
    static let linuxGuest: Result<String, any Error> = buildGuests("linux").map { $0 + "/linux.img" }

    static func linuxDisk() throws -> String { try linuxGuest.get() }
}

/// One QEMU launched by `QEMUHypervisor` itself, with TCG (Linux guests
/// hang under this machine's nested KVM), in its own folder.
struct LaunchedVM {
    let directory: TemporaryDirectory
    let console: ConsoleLog
    let instance: QEMUInstance

    static func launch(image: String, kind: ImageKind, ports: [PortMapping] = [], cmdline: String? = nil,
                       countsNetworkTraffic: Bool = true, network: NetworkMode = .user) async throws -> LaunchedVM {
        let directory = try TemporaryDirectory(prefix: "uni-io")
        do {
            let config = VMConfig(image: image, memory: .mebibytes(kind == .disk ? 256 : 32), ports: ports, kernelCommandLine: cmdline, network: network)
            let vm = VM(id: try VMID("0123456789ab"), name: "io", config: config, imageKind: kind, createdAt: Date())
            let console = ConsoleLog(path: directory.path + "/console.log")
            let hypervisor = QEMUHypervisor(binaryPath: try QEMUHypervisor.locateBinary(), accelerator: .tcg,
                                            countsNetworkTraffic: countsNetworkTraffic)
            let instance = try await hypervisor.launch(LaunchRequest(vm: vm, directory: directory.path, console: console))
            return LaunchedVM(directory: directory, console: console, instance: try #require(instance as? QEMUInstance))
        } catch {
            directory.remove()
            throw error
        }
    }

    var files: VMDirectory { VMDirectory(path: directory.path) }

    func waitForConsole(containing needle: String, timeout: Duration = .seconds(180)) async -> Bool {
        await Host.eventually(timeout: timeout) { String(decoding: console.tail(lines: nil), as: UTF8.self).contains(needle) }
    }

    /// Kills QEMU, waits for its end and removes the folder.
    func end() async {
        instance.forceStop()
        _ = await instance.waitForExit()
        directory.remove()
    }
}

extension Integration {
    /// The network and disk counters of real QEMU guests (docs/observability.md,
    /// "Network and disk counters").
    @Suite("I/O counters with real QEMU", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct IOCountersIntegrationTests {
        static let ready = "uni-linux: http ready"

        /// GETs `path` from the guest's forwarded port and returns the body's size.
        static func download(port: UInt16, path: String) async throws -> Int {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(120))
            #expect(response.status == .ok)
            var size = 0
            for try await chunk in response.body { size += chunk.readableBytes }
            return size
        }

        @Test("a 1 MiB download through -p counts >= 1 MB sent by the guest, its request as received; the disk counts its boot")
        func linuxDownload() async throws {
            let image = try Host.linuxDisk()
            let port = try Host.freePort()
            let vm = try await LaunchedVM.launch(image: image, kind: .disk, ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: port, guestPort: 80)])
            do {
                let booted = await vm.waitForConsole(containing: IOCountersIntegrationTests.ready)
                try #require(booted, "the Linux guest did not serve HTTP: \(String(decoding: vm.console.tail(lines: 20), as: UTF8.self))")
                let before = await vm.instance.ioCounters()
                let size = try await IOCountersIntegrationTests.download(port: port, path: "/1m")
                #expect(size == 1 << 20)
                // The reader lets records gather for 10 ms between reads.
                #expect(await Host.eventually(timeout: .seconds(2)) { await vm.instance.ioCounters().networkTransmittedBytes ?? 0 >= (before.networkTransmittedBytes ?? 0) + (1 << 20) })
                let after = await vm.instance.ioCounters()
                let sent = try #require(after.networkTransmittedBytes) - (before.networkTransmittedBytes ?? 0)
                let received = try #require(after.networkReceivedBytes) - (before.networkReceivedBytes ?? 0)
                // Headers of every frame on top of the body; the request and the
                // ACKs the other way, far fewer bytes (the direction is right).
                #expect(sent >= 1_048_576 && sent < 1_200_000, "sent \(sent)")
                #expect(received > 0 && received < 200_000, "received \(received)")
                // SeaBIOS and syslinux read the 14 MB kernel from the disk.
                #expect(try #require(after.diskReadBytes) > 10_000_000)
                #expect(try #require(after.diskReadOperations) > 0)
                #expect(after.diskWrittenBytes != nil && after.diskWriteOperations != nil)
                #expect(vm.instance.process.termination == nil)
                #expect(try await vm.instance.qmp.execute("query-status")["status"]?.stringValue == "running")

                // A `user` guest reaches the host's loopback through 10.0.2.2
                // (docs/security.md); NetworkIsolationIntegrationTests shows
                // `isolated` does not.
                let beacon = try await LoopbackBeacon.start()
                let fetched = try? await IOCountersIntegrationTests.text(port: port, path: "/cgi-bin/fetch?\(beacon.port)")
                await beacon.stop()
                #expect(fetched?.hasPrefix("fetched: HTTP/1.0 200") == true && fetched?.hasSuffix(beacon.token) == true, "\(String(describing: fetched))")
            } catch {
                await vm.end()
                throw error
            }
            await vm.end()
            #expect(!FileManager.default.fileExists(atPath: vm.files.networkTransmittedDumpPath))
        }

        @Test("heavy traffic is counted while every thread of Swift's cooperative pool is blocked")
        func busyPool() async throws {
            let image = try Host.linuxDisk()
            let port = try Host.freePort()
            let vm = try await LaunchedVM.launch(image: image, kind: .disk, ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: port, guestPort: 80)])
            do {
                try #require(await vm.waitForConsole(containing: IOCountersIntegrationTests.ready))
                let before = await vm.instance.ioCounters().networkTransmittedBytes ?? 0
                // The download runs on SwiftNIO's threads, the counter on its
                // own; the pool's threads sleep (as a busy manager's would be
                // taken) for longer than the download needs.
                let download = Task.detached { try await IOCountersIntegrationTests.download(port: port, path: "/cgi-bin/zero?16") }
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<ProcessInfo.processInfo.activeProcessorCount {
                        group.addTask { usleep(3_000_000) }
                    }
                }
                #expect(try await download.value == 16 << 20)
                #expect(await Host.eventually(timeout: .seconds(2)) { await vm.instance.ioCounters().networkTransmittedBytes ?? 0 >= before + (16 << 20) })
                #expect(vm.instance.process.termination == nil)
            } catch {
                await vm.end()
                throw error
            }
            await vm.end()
        }

        @Test("a kernel-image VM without traffic: network counters present and small, no disk counters")
        func kernelImage() async throws {
            let vm = try await LaunchedVM.launch(image: try Host.kernel(), kind: .kernel)
            do {
                #expect(await vm.waitForConsole(containing: "uni-guest: idle"))
                let counters = await vm.instance.ioCounters()
                #expect(try #require(counters.networkReceivedBytes) < 10_000)
                #expect(try #require(counters.networkTransmittedBytes) < 10_000)
                #expect(counters.diskReadBytes == nil && counters.diskWrittenBytes == nil)
                #expect(counters.diskReadOperations == nil && counters.diskWriteOperations == nil)
            } catch {
                await vm.end()
                throw error
            }
            await vm.end()
        }

        @Test("a disk-image VM reports its boot disk's reads; once QEMU is gone the disk counters are unavailable, the FIFOs removed")
        func diskImage() async throws {
            let vm = try await LaunchedVM.launch(image: try Host.disk(), kind: .disk)
            #expect(await vm.waitForConsole(containing: "uni-disk-guest: booted from disk"))
            let counters = await vm.instance.ioCounters()
            #expect(try #require(counters.diskReadBytes) >= 512)  // SeaBIOS read the boot sector
            #expect(try #require(counters.diskReadOperations) >= 1)
            #expect(counters.diskWrittenBytes == 0 && counters.diskWriteOperations == 0)
            #expect(counters.networkReceivedBytes != nil && counters.networkTransmittedBytes != nil)
            vm.instance.forceStop()
            _ = await vm.instance.waitForExit()
            let ended = await vm.instance.ioCounters()
            #expect(ended.diskReadBytes == nil && ended.diskReadOperations == nil)
            #expect(ended.networkTransmittedBytes == counters.networkTransmittedBytes)
            await vm.instance.network?.waitUntilFinished()
            #expect(!FileManager.default.fileExists(atPath: vm.files.networkReceivedDumpPath))
            #expect(!FileManager.default.fileExists(atPath: vm.files.networkTransmittedDumpPath))
            vm.directory.remove()
        }

        @Test("without network counting QEMU gets no filter and the network counters are unavailable")
        func countingOff() async throws {
            let vm = try await LaunchedVM.launch(image: try Host.kernel(), kind: .kernel, countsNetworkTraffic: false)
            let counters = await vm.instance.ioCounters()
            #expect(counters == .unavailable)
            #expect(!FileManager.default.fileExists(atPath: vm.files.networkReceivedDumpPath))
            await vm.end()
        }
    }
}

extension Integration {
    /// The cost of network counting: `scripts/bench-network-counter.sh` runs
    /// this (docs/performance.md, "Network byte counting").
    @Suite("network counting benchmark", .serialized,
           .enabled(if: ProcessInfo.processInfo.environment["UNI_BENCH_NETWORK"] == "1", "a benchmark: run scripts/bench-network-counter.sh"))
    struct NetworkCountingBenchmark {
        @Test("100 MiB through -p, with and without the filter-dump counters")
        func transfer() async throws {
            let environment = ProcessInfo.processInfo.environment
            let runs = Int(environment["UNI_BENCH_RUNS"] ?? "") ?? 5
            let mebibytes = Int(environment["UNI_BENCH_MIB"] ?? "") ?? 100
            let image = try Host.linuxDisk()
            // Both VMs boot first and the downloads alternate, so both variants
            // see the same machine load over time.
            var vms: [(name: String, vm: LaunchedVM, port: UInt16)] = []
            defer { for entry in vms { entry.vm.instance.forceStop() } }
            for (name, counting) in [("without counting", false), ("with counting", true)] {
                let port = try Host.freePort()
                let vm = try await LaunchedVM.launch(image: image, kind: .disk, ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: port, guestPort: 80)],
                                                     countsNetworkTraffic: counting)
                vms.append((name, vm, port))
            }
            for entry in vms {
                try #require(await entry.vm.waitForConsole(containing: IOCountersIntegrationTests.ready))
                _ = try await IOCountersIntegrationTests.download(port: entry.port, path: "/cgi-bin/zero?4")  // warm-up
            }
            var rates: [String: [Double]] = [:]
            var qemuCPU: [String: [Double]] = [:]
            var readerCPU: [Double] = []
            for _ in 0..<runs {
                for entry in vms {
                    let before = await entry.vm.instance.ioCounters().networkTransmittedBytes
                    let cpuBefore = NetworkCountingBenchmark.counterThreadsCPUSeconds()
                    let qemuBefore = NetworkCountingBenchmark.cpuSeconds(of: entry.vm.instance.process.pid)
                    let start = ContinuousClock.now
                    let size = try await IOCountersIntegrationTests.download(port: entry.port, path: "/cgi-bin/zero?\(mebibytes)")
                    let elapsed = ContinuousClock.now - start
                    #expect(size == mebibytes << 20)
                    try await Task.sleep(for: .milliseconds(50))  // the reader's 10 ms batching
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    rates[entry.name, default: []].append(Double(size) / 1e6 / seconds)
                    qemuCPU[entry.name, default: []].append(NetworkCountingBenchmark.cpuSeconds(of: entry.vm.instance.process.pid) - qemuBefore)
                    if let before, let after = await entry.vm.instance.ioCounters().networkTransmittedBytes {
                        readerCPU.append(NetworkCountingBenchmark.counterThreadsCPUSeconds() - cpuBefore)
                        print("bench: counted \(after - before) bytes sent for a \(size)-byte body (+\(String(format: "%.2f", Double(after - before - UInt64(size)) / Double(size) * 100))%)")
                    }
                }
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            for entry in vms {
                let values = rates[entry.name] ?? []
                print("bench: \(entry.name): QEMU CPU per run median \(String(format: "%.2f", median(qemuCPU[entry.name] ?? []))) s")
                print("bench: \(entry.name): median \(String(format: "%.1f", median(values))) MB/s over \(values.count) runs of \(mebibytes) MiB: \(values.map { String(format: "%.1f", $0) }.joined(separator: " "))")
            }
            let ratio = median(rates["with counting"] ?? []) / median(rates["without counting"] ?? [])
            print("bench: with/without = \(String(format: "%.3f", ratio)); reader thread CPU per run: median \(String(format: "%.3f", median(readerCPU))) s")
            for entry in vms { await entry.vm.end() }
            vms = []
        }

        /// User + system CPU seconds of this process's `uni-net-counter` threads.
        static func counterThreadsCPUSeconds() -> Double {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(getpid())/task")) ?? []
            return tasks.reduce(0) { total, task in
                let path = "/proc/\(getpid())/task/\(task)/stat"
                guard let stat = try? String(contentsOfFile: path, encoding: .utf8), stat.contains("(uni-net-counter)") else { return total }
                return total + cpuSeconds(statLine: stat)
            }
        }

        /// User + system CPU seconds of process `pid`.
        static func cpuSeconds(of pid: Int32) -> Double {
            cpuSeconds(statLine: (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "")
        }

        /// utime + stime of a `/proc/.../stat` line, in seconds.
        static func cpuSeconds(statLine: String) -> Double {
            guard let close = statLine.lastIndex(of: ")") else { return 0 }
            let fields = statLine[statLine.index(after: close)...].split(separator: " ")
            guard fields.count > 12 else { return 0 }
            return Double((Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }
    }
}
