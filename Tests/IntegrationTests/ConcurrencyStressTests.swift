import Foundation
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

extension Integration {
    /// Pairs of requests on one VM, sent at once to a real `unid` running real
    /// QEMU (TCG), over and over. After every pair the daemon must be in a
    /// state a person would accept: at most one QEMU per VM, none without a
    /// record, no VM stuck in `starting` or `stopping`, and the API and the
    /// files on disk telling the same story (issue #13).
    ///
    /// `UNI_STRESS_ROUNDS` sets the rounds per pair (default 10; CI keeps the default).
    @Suite("unid under concurrent requests (real QEMU)", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed"))
    struct ConcurrencyStressTests {
        static let rounds = Int(ProcessInfo.processInfo.environment["UNI_STRESS_ROUNDS"] ?? "") ?? 10

        enum Pair: String, CaseIterable {
            case startStart = "start + start"
            case startForceRemove = "start + rm -f"
            case stopKill = "stop + kill"
            case runRunOneName = "run + run (one name)"
            case startStop = "start + stop"
            case removeRemove = "rm + rm"
        }

        @Test("every pair, many times: one QEMU per VM, none orphaned, none stuck, memory and disk agree")
        func pairs() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-st")
            defer { dir.remove() }
            let unid = try ChildProcess(executable: Host.binDirectory + "/unid",
                                        arguments: ["--data-dir", dir.path, "--accel", "tcg", "--stop-timeout", "2s", "--log-level", "error"]) { _ in }
            defer { unid.send(SIGKILL) }
            let client = UniClient(socketPath: DataDirectory(root: dir.path).socketPath)
            #expect(await Host.eventually { (try? await client.info()) != nil })

            var tally: [String: [String: Int]] = [:]
            for round in 1...Self.rounds {
                for pair in Pair.allCases {
                    let name = "p\(round)"
                    let outcomes = try await play(pair, name: name, kernel: kernel, client: client)
                    for outcome in outcomes { tally[pair.rawValue, default: [:]][outcome, default: 0] += 1 }
                    try await checkInvariants(client: client, dataDir: dir.path, after: "\(pair.rawValue), round \(round)")
                    for vm in try await client.list(all: true) { try await client.remove(vm.id.rawValue, force: true) }
                }
            }
            // Which side won how often, for the record: a pair that always ends
            // the same way raced nothing.
            print("stress outcomes: \(tally)")
            #expect(Host.qemuProcesses(under: dir.path).isEmpty)
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
        }

        /// Sets the VM up for `pair`, sends both requests at once, and returns
        /// each one's outcome (`ok` or the error code) for the tally.
        func play(_ pair: Pair, name: String, kernel: String, client: UniClient) async throws -> [String] {
            let config = VMConfig(name: name, image: kernel)
            func outcome(_ body: @escaping @Sendable () async throws -> Void) async -> String {
                do {
                    try await body()
                    return "ok"
                } catch let error as UniError {
                    #expect([.invalidState, .notFound, .conflict].contains(error.code), "\(pair.rawValue): unexpected error \(error.code): \(error.message)")
                    return error.code.description
                } catch {
                    Issue.record("\(pair.rawValue): \(error)")
                    return "error"
                }
            }
            switch pair {
            case .startStart, .startForceRemove, .startStop, .removeRemove:
                _ = try await client.create(config, start: true)
                _ = try await client.kill(name)
            case .stopKill:
                _ = try await client.create(config, start: true)
            case .runRunOneName:
                break
            }
            let first: @Sendable () async throws -> Void
            let second: @Sendable () async throws -> Void
            switch pair {
            case .startStart:
                first = { _ = try await client.start(name) }
                second = { _ = try await client.start(name) }
            case .startForceRemove:
                first = { _ = try await client.start(name) }
                second = { try await client.remove(name, force: true) }
            case .stopKill:
                first = { _ = try await client.stop(name) }
                second = { _ = try await client.kill(name) }
            case .runRunOneName:
                first = { _ = try await client.create(config, start: true) }
                second = { _ = try await client.create(config, start: true) }
            case .startStop:
                first = { _ = try await client.start(name) }
                second = { _ = try await client.stop(name) }
            case .removeRemove:
                first = { try await client.remove(name, force: true) }
                second = { try await client.remove(name, force: true) }
            }
            async let a = outcome(first)
            async let b = outcome(second)
            let results = await [a, b]
            switch pair {
            case .runRunOneName, .removeRemove:
                #expect(results.filter { $0 == "ok" }.count == 1, "\(pair.rawValue): exactly one must win, got \(results)")
            case .startStart:
                // The API's docker habit: the second start finds it running and
                // succeeds; the one-QEMU invariant below is what matters.
                #expect(results.allSatisfy { $0 == "ok" }, "\(pair.rawValue): \(results)")
            case .stopKill:
                // The kill always works; a stop that comes second finds the VM stopped.
                #expect(results[1] == "ok", "\(pair.rawValue): the kill must work, got \(results)")
            case .startForceRemove, .startStop:
                #expect(results.contains("ok"), "\(pair.rawValue): \(results)")
            }
            return results
        }

        func checkInvariants(client: UniClient, dataDir: String, after label: String) async throws {
            let vms = try await client.list(all: true)
            let qemu = Host.qemuProcesses(under: dataDir)
            var qemuByVM: [String: Int] = [:]
            for pid in qemu {
                let cmdline = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
                guard let range = cmdline.range(of: dataDir + "/vms/") else { continue }
                qemuByVM[String(cmdline[range.upperBound...].prefix(12)), default: 0] += 1
            }
            for (id, count) in qemuByVM {
                #expect(count == 1, "\(label): vm \(id) has \(count) QEMU processes")
                #expect(vms.contains { $0.id.rawValue == id }, "\(label): a QEMU runs for vm \(id), which has no record")
            }
            for vm in vms {
                #expect(vm.state != .starting && vm.state != .stopping, "\(label): vm \(vm.name) is stuck in \(vm.state)")
                #expect((qemuByVM[vm.id.rawValue] ?? 0) == (vm.state == .running ? 1 : 0),
                        "\(label): vm \(vm.name) is \(vm.state) with \(qemuByVM[vm.id.rawValue] ?? 0) QEMU processes")
                let path = DataDirectory(root: dataDir).files(of: vm.id).recordPath
                let onDisk = FileManager.default.contents(atPath: path).flatMap { try? JSONCoding.makeDecoder().decode(VM.self, from: $0) }
                #expect(onDisk?.state == vm.state, "\(label): the API says \(vm.state), \(path) says \(String(describing: onDisk?.state))")
            }
            let folders = (try? FileManager.default.contentsOfDirectory(atPath: dataDir + "/vms")) ?? []
            for folder in folders where VMID.isWellFormed(folder) {
                let left = (try? FileManager.default.contentsOfDirectory(atPath: dataDir + "/vms/" + folder)) ?? []
                #expect(vms.contains { $0.id.rawValue == folder }, "\(label): \(dataDir)/vms/\(folder) outlived its VM, holding \(left.sorted())")
            }
        }
    }
}
