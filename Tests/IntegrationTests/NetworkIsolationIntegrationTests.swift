import AsyncHTTPClient
import Foundation
import Testing
@testable import UniKit
import UniKitTesting

/// An HTTP server on the host's loopback (Python's, from scripts/setup.sh)
/// whose page is a token no guest could guess: a guest that prints it
/// reached the host through slirp's `10.0.2.2`.
struct LoopbackBeacon {
    let port: UInt16
    let token: String
    private let directory: TemporaryDirectory
    private let process: ChildProcess

    static func start() async throws -> LoopbackBeacon {
        let directory = try TemporaryDirectory(prefix: "uni-beacon")
        let token = "beacon-" + VMID.random().rawValue
        try Data(token.utf8).write(to: URL(fileURLWithPath: directory.path + "/index.html"))
        let port = try Host.freePort()
        // UniKit's child process, not Foundation's: Process.waitUntilExit
        // spins a run loop that never sees the exit on a pool thread.
        let process = try ChildProcess(executable: "/usr/bin/python3",
                                       arguments: ["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory.path, String(port)]) { _ in }
        let beacon = LoopbackBeacon(port: port, token: token, directory: directory, process: process)
        let serving = await Host.eventually(timeout: .seconds(20)) { await Host.get("http://127.0.0.1:\(port)/").1 == token }
        guard serving else {
            await beacon.stop()
            throw UniError(.internalError, "the loopback beacon did not serve on 127.0.0.1:\(port)")
        }
        return beacon
    }

    func stop() async {
        process.send(SIGKILL)
        _ = await process.waitForTermination()
        directory.remove()
    }
}

extension Integration.IOCountersIntegrationTests {
    /// The body of `path` from the guest's forwarded `port`, as text.
    static func text(port: UInt16, path: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(60))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }
}

extension Integration {
    /// `--network isolated` (docs/security.md): QEMU's `restrict=on` keeps
    /// the guest from the host's loopback, and its published ports work.
    /// The reach of a `user` guest is shown by the I/O counters' download test.
    @Suite("Network isolation with real QEMU", .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct NetworkIsolationIntegrationTests {
        @Test("an isolated Linux guest cannot reach a host loopback server through 10.0.2.2; its published port answers")
        func isolatedGuest() async throws {
            let image = try Host.linuxDisk()
            let beacon = try await LoopbackBeacon.start()
            let port = try Host.freePort()
            let vm: LaunchedVM
            do {
                vm = try await LaunchedVM.launch(image: image, kind: .disk, ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: port, guestPort: 80)],
                                                 network: .isolated)
            } catch {
                await beacon.stop()
                throw error
            }
            do {
                let booted = await vm.waitForConsole(containing: IOCountersIntegrationTests.ready)
                try #require(booted, "the Linux guest did not serve HTTP: \(String(decoding: vm.console.tail(lines: 20), as: UTF8.self))")
                #expect(try await IOCountersIntegrationTests.text(port: port, path: "/healthz") == "ok\n")
                let fetched = try await IOCountersIntegrationTests.text(port: port, path: "/cgi-bin/fetch?\(beacon.port)")
                #expect(fetched == "fetch failed")
                #expect(!fetched.contains(beacon.token))
            } catch {
                await vm.end()
                await beacon.stop()
                throw error
            }
            await vm.end()
            await beacon.stop()
        }
    }
}
