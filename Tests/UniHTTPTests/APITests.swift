import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
import UniCLI
import UniHTTP
import UniKit
import UniKitTesting

/// A real API server on a temporary Unix socket, over a manager whose
/// hypervisor is scripted.
struct APIHarness {
    let directory: TemporaryDirectory
    let manager: VMManager
    let hypervisor: ScriptedHypervisor
    let statsSource = FixedStatsSource(VMStatsReading(source: .proc, cpuSeconds: 1, memoryRSSBytes: 48 << 20))
    let image: String
    var socketPath: String { directory.path + "/unid.sock" }
    var client: UniClient { UniClient(socketPath: socketPath) }

    init(script: @escaping @Sendable (VM) -> ScriptedHypervisor.Script = { _ in .init(consoleOutput: "booted\n") }) throws {
        directory = try TemporaryDirectory()
        hypervisor = ScriptedHypervisor(script: script)
        let dataDirectory = DataDirectory(root: directory.path)
        manager = VMManager(configuration: VMManagerConfiguration(dataDirectory: dataDirectory, statsSecondSampleDelay: .milliseconds(20)),
                            backends: VMManagerBackends(store: FileVMStore(dataDirectory: dataDirectory), hypervisor: hypervisor,
                                                        statsSource: statsSource),
                            logger: Logger(label: "test"))
        image = directory.makeFakeKernel()
    }

    func run(_ body: @escaping @Sendable (APIHarness) async throws -> Void) async throws {
        defer { directory.remove() }
        try await manager.load()
        let info = DaemonInfo(version: UniVersion.current, accelerator: .tcg, dataDirectory: directory.path, pid: getpid())
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let app = try APIServer.makeApplication(router: APIRouter.build(manager: manager, info: info), socketPath: socketPath,
                                                logger: Logger(label: "test"), onServerRunning: { readyContinuation.yield() })
        try await manager.withRunning { _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService(gracefulShutdownSignals: []) }
                for await _ in ready { break }
                do {
                    try await body(self)
                } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    /// A raw request, for bodies the typed client would never send.
    func raw(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: URL(httpURLWithSocketPath: socketPath, uri: path)!.absoluteString)
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: bytes))
    }
}

@Suite("API over the Unix socket")
struct APITests {
    @Test("run, list, inspect, logs, stop, start, kill and rm through the typed client")
    func lifecycle() async throws {
        try await APIHarness().run { harness in
            let client = harness.client
            let vm = try await client.create(VMConfig(name: "web", image: harness.image, ports: [PortMapping(hostPort: 18080, guestPort: 80)]))
            #expect(vm.state == .running)
            #expect(try await client.list().map(\.id) == [vm.id])
            #expect(try await client.inspect("web").config.ports.first?.hostPort == 18080)
            var logs = ""
            for try await chunk in try await client.logs("web") { logs += String(decoding: chunk, as: UTF8.self) }
            #expect(logs == "booted\n")
            #expect(try await client.stop("web", timeout: .seconds(2)).exitCode == 0)
            #expect(try await client.list().isEmpty)
            #expect(try await client.list(all: true).count == 1)
            #expect(try await client.start("web").startCount == 2)
            #expect(try await client.kill("web").exitCode == 137)
            try await client.remove("web")
            #expect(try await client.list(all: true).isEmpty)
            let info = try await client.info()
            #expect(info.version == UniVersion.current)
        }
    }

    @Test("the socket is mode 0600")
    func socketMode() async throws {
        try await APIHarness().run { harness in
            let mode = try FileManager.default.attributesOfItem(atPath: harness.socketPath)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test("errors come back as JSON with the status of their code")
    func errors() async throws {
        try await APIHarness().run { harness in
            let missing = try await harness.raw(.GET, "/v1/vms/nope")
            #expect(missing.status == 404)
            #expect(missing.body == #"{"code":"not_found","error":"no such vm: nope"}"#)

            let notJSON = try await harness.raw(.POST, "/v1/vms", body: "{oops")
            #expect(notJSON.status == 400)
            #expect(notJSON.body.contains("invalid VM config body: not valid JSON"))

            let noImage = try await harness.raw(.POST, "/v1/vms", body: "{}")
            #expect(noImage.status == 400)
            #expect(noImage.body.contains("missing field 'image'"))

            let badMemory = try await harness.raw(.POST, "/v1/vms", body: #"{"image":"\#(harness.image)","memory_bytes":5}"#)
            #expect(badMemory.status == 400)
            #expect(badMemory.body.contains("invalid memory '5'"))

            let badFlag = try await harness.raw(.GET, "/v1/vms?all=maybe")
            #expect(badFlag.status == 400)
            #expect(badFlag.body.contains("invalid all 'maybe': expected true or false"))

            let badTimeout = try await harness.raw(.POST, "/v1/vms/x/stop?timeout=soon")
            #expect(badTimeout.status == 400)

            let unknownRoute = try await harness.raw(.GET, "/v2/whatever")
            #expect(unknownRoute.status == 404)
            #expect(unknownRoute.body.contains("\"code\":\"not_found\""))

            _ = try await harness.client.create(VMConfig(name: "web", image: harness.image))
            let conflict = try await harness.raw(.DELETE, "/v1/vms/web")
            #expect(conflict.status == 409)
            #expect(conflict.body.contains("vm web is running: stop it first or use rm -f"))

            // Docker's habit: a start of a running VM changes nothing and succeeds.
            let again = try await harness.raw(.POST, "/v1/vms/web/start")
            #expect(again.status == 200 && again.body.contains(#""state":"running""#))
            _ = try await harness.client.stop("web")
            #expect(try await harness.client.stop("web").state == .stopped, "a stop of a stopped VM answers it as it is")
            let typed = await #expect(throws: UniError.self) { try await harness.client.kill("web") }
            #expect(typed?.code == .invalidState)
            #expect(typed?.message.hasPrefix("vm web is") == true)
        }
    }

    @Test("GET /v1/records/unreadable lists a corrupt state.json with its path and id; GET /v1/vms keeps its shape; rm is 409 naming the path")
    func unreadableRecords() async throws {
        let harness = try APIHarness()
        let broken = try VMID("0badc0ffee00")
        let folder = harness.directory.path + "/vms/\(broken)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("{\"schema_version\": 1, \"id\": \"0badc0".utf8).write(to: URL(fileURLWithPath: folder + "/state.json"))
        try await harness.run { harness in
            let good = try await harness.client.create(VMConfig(name: "good", image: harness.image), start: false)
            let raw = try await harness.raw(.GET, "/v1/records/unreadable")
            #expect(raw.status == 200)
            let fields = try JSONSerialization.jsonObject(with: Data(raw.body.utf8)) as? [[String: String]]
            #expect(fields == [["id": "0badc0ffee00", "path": folder + "/state.json", "reason": "not a valid VM record (not valid JSON)"]])
            #expect(try await harness.client.unreadableRecords()
                    == [UnreadableRecord(id: broken, path: folder + "/state.json", reason: "not a valid VM record (not valid JSON)")])
            // The list of VMs is still an array of VM records only.
            #expect(try await harness.client.list(all: true).map(\.id) == [good.id])

            let rm = try await harness.raw(.DELETE, "/v1/vms/\(broken)?force=true")
            #expect(rm.status == 409)
            #expect(rm.body.contains("\"code\":\"invalid_state\""))
            let typed = await #expect(throws: UniError.self) { try await harness.client.remove(broken.rawValue) }
            #expect(typed?.message == "vm \(broken) cannot be used: its record \(folder)/state.json cannot be read (not a valid VM record (not valid JSON)); "
                    + "unid leaves it as it is: repair it or delete it by hand (rm -r '\(folder)'), then restart unid")
            #expect(FileManager.default.fileExists(atPath: folder + "/state.json"))
        }
    }

    @Test("values that would reach QEMU unchecked are refused with 400 naming them")
    func refusedValues() async throws {
        try await APIHarness().run { harness in
            let address = "127.0.0.1:18093-:22,guestfwd=tcp:10.0.2.100:1234-cmd:/bin/true,hostfwd=tcp:127.0.0.1"
            let injection = try await harness.raw(.POST, "/v1/vms",
                                                  body: #"{"image":"\#(harness.image)","ports":[{"host_address":"\#(address)","host_port":18093,"guest_port":22,"protocol":"tcp"}]}"#)
            #expect(injection.status == 400)
            let body = try JSONDecoder().decode(APIErrorBody.self, from: Data(injection.body.utf8))
            #expect(body.code == "invalid_argument")
            #expect(body.error == "invalid port mapping: host address '\(address)' is not an IPv4 address: expected four numbers 0-255 such as 127.0.0.1")

            let zero = try await harness.raw(.POST, "/v1/vms", body: #"{"image":"\#(harness.image)","ports":[{"host_port":0,"guest_port":80,"protocol":"tcp"}]}"#)
            #expect(zero.status == 400)
            #expect(zero.body.contains("invalid port mapping '0:80/tcp': host port 0 is out of range (1-65535)"))

            let cmdline = try await harness.raw(.POST, "/v1/vms", body: #"{"image":"\#(harness.image)","cmdline":"\#(String(repeating: "a", count: 102_400))"}"#)
            #expect(cmdline.status == 400)
            #expect(cmdline.body.contains("invalid kernel command line: 102400 bytes, at most 2047 allowed"))

            let network = try await harness.raw(.POST, "/v1/vms", body: #"{"image":"\#(harness.image)","network":"host"}"#)
            #expect(network.status == 400)
            #expect(try JSONDecoder().decode(APIErrorBody.self, from: Data(network.body.utf8)).error == "invalid VM config body: invalid network 'host': use user or isolated")
            #expect(try await harness.client.list(all: true).isEmpty)
        }
    }

    @Test("type and range errors name the field; a body over 1 MiB is 413")
    func bodyErrors() async throws {
        try await APIHarness().run { harness in
            let cases = [
                (#"{"image":"/x","cpus":"two"}"#, "field 'cpus' must be a whole number"),
                (#"{"image":"/x","ports":[{"host_port":70000,"guest_port":80}]}"#, "field 'ports[0].host_port': 70000 is out of range (1-65535)"),
                (#"{"image":"/x","memory_bytes":-1}"#, "field 'memory_bytes': -1 is out of range"),
                (#"{"image":"/x","cpus":1e100}"#, "field 'cpus': 1e+100 is out of range (1-64)"),
            ]
            for (json, message) in cases {
                let answer = try await harness.raw(.POST, "/v1/vms", body: json)
                #expect(answer.status == 400)
                #expect(answer.body.contains("invalid VM config body: \(message)"), "\(answer.body)")
            }
            let large = try await harness.raw(.POST, "/v1/vms", body: #"{"image":"/x","cmdline":""# + String(repeating: "a", count: 2 << 20) + #""}"#)
            #expect(large.status == 413)
            #expect(large.body == #"{"code":"payload_too_large","error":"request body is larger than 1 MiB (1048576 bytes)"}"#)
        }
    }

    @Test("update: the typed client changes a VM's limits; bad bodies and values are 400 naming the field or value")
    func update() async throws {
        try await APIHarness().run { harness in
            _ = try await harness.client.create(VMConfig(name: "web", image: harness.image, memory: .mebibytes(64)))
            let updated = try await harness.client.update("web", ResourceUpdate(cpuShares: 250, memoryMax: .mebibytes(256)))
            #expect(updated.config.quota == ResourceQuota(cpuShares: 250, memoryMax: .mebibytes(256)))
            #expect(try await harness.client.inspect("web").config.quota.cpuShares == 250)
            let cases = [
                (#"{"cpu_shares":0}"#, "invalid cpu shares '0': use a whole number from 1 to 10000 (default 100)"),
                (#"{"cpu_shares":"x"}"#, "invalid update body: field 'cpu_shares' must be a whole number"),
                (#"{"memory_max_bytes":1048576}"#, "invalid memory max '1M': it must be at least the VM's memory (64M); QEMU needs some more of its own"),
                (#"{"disk_iops":5}"#, "invalid disk throttle for '\(harness.image)': it is a kernel image, which has no boot disk; --disk-iops and --disk-bps apply to disk images only"),
                (#"{"disk_iops":-1}"#, "invalid update body: field 'disk_iops': -1 is out of range (0-1000000000000000)"),
                (#"{"cpu_shares":5,"memory_max":1}"#, "invalid update body: unknown field 'memory_max' (allowed: cpu_shares, memory_max_bytes, disk_iops, disk_bps)"),
                (#"{}"#, "nothing to update: give at least one of cpu_shares, memory_max_bytes, disk_iops, disk_bps (uni update: --cpu-shares, --memory-max, --disk-iops, --disk-bps)"),
            ]
            for (json, message) in cases {
                let answer = try await harness.raw(.POST, "/v1/vms/web/update", body: json)
                #expect(answer.status == 400, "\(json): \(answer.body)")
                let body = try JSONDecoder().decode(APIErrorBody.self, from: Data(answer.body.utf8))
                #expect(body.error == message)
            }
            let missing = try await harness.raw(.POST, "/v1/vms/nope/update", body: #"{"cpu_shares":5}"#)
            #expect(missing.status == 404)
            let create = try await harness.raw(.POST, "/v1/vms", body: #"{"image":"\#(harness.image)","quota":{"cpu_shares":10001}}"#)
            #expect(create.status == 400)
            #expect(create.body.contains("invalid cpu shares '10001'"))
            #expect(try await harness.client.inspect("web").config.quota == ResourceQuota(cpuShares: 250, memoryMax: .mebibytes(256)))
        }
    }

    @Test("an empty vm reference is refused by the client and by the API")
    func emptyReference() async throws {
        try await APIHarness().run { harness in
            _ = try await harness.client.create(VMConfig(name: "web", image: harness.image))
            let listing = try await harness.raw(.GET, "/v1/vms/")
            #expect(listing.status == 400)
            #expect(listing.body == #"{"code":"invalid_argument","error":"invalid vm reference '': give a name, id or id prefix"}"#)
            for action in ["start", "stop", "kill", "wait", "logs"] {
                let answer = try await harness.raw(action == "logs" ? .GET : .POST, "/v1/vms//\(action)")
                #expect((400..<500).contains(answer.status), "\(action): \(answer.status)")
            }
            let error = await #expect(throws: UniError.self) { try await harness.client.inspect("") }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == "invalid vm reference '': give a name, id or id prefix")
        }
    }

    @Test("closing a console from another thread ends a read blocked on it: next() returns nil")
    func consoleClose() async throws {
        try await APIHarness().run { harness in
            _ = try await harness.client.create(VMConfig(name: "web", image: harness.image))
            let reader = try await Task.detached { try harness.client.logs("web", follow: true) }.value
            #expect(try reader.next() == Array("booted\n".utf8))
            let blocked = Task.detached { () -> Result<[UInt8]?, any Error> in Result { try reader.next() } }
            try await Task.sleep(for: .milliseconds(50))
            reader.close()
            let ended = await blocked.value
            #expect(try ended.get() == nil)
        }
    }

    @Test("attached run streams the whole console and returns the exit code of even the fastest guest")
    func attachedRun() async throws {
        try await APIHarness(script: { _ in .init(consoleOutput: "hi\nbye\n", exitsWith: 5) }).run { harness in
            let output = OutputCollector()
            let code = try await AttachedRun.run(client: harness.client, config: VMConfig(image: harness.image, autoRemove: true)) { output.append($0) }
            #expect(code == 5)
            #expect(output.text == "hi\nbye\n")
            for _ in 0..<200 where try await !harness.client.list(all: true).isEmpty { try await Task.sleep(for: .milliseconds(5)) }
            #expect(try await harness.client.list(all: true).isEmpty)
        }
    }

    @Test("an attached run whose start is refused leaves no record")
    func attachedRunRefused() async throws {
        try await APIHarness(script: { _ in .init(launchError: UniError(.conflict, "host port 8080/tcp is already in use")) }).run { harness in
            let error = await #expect(throws: UniError.self) {
                try await AttachedRun.run(client: harness.client, config: VMConfig(image: harness.image)) { _ in }
            }
            #expect(error?.message == "host port 8080/tcp is already in use")
            let left = try await harness.client.list(all: true)
            #expect(left.isEmpty)
        }
    }

    @Test("a daemon that is not running gets the documented message")
    func daemonNotRunning() async throws {
        let client = UniClient(socketPath: "/tmp/uni-no-such-dir/unid.sock")
        let error = await #expect(throws: UniError.self) { try await client.list() }
        #expect(error?.message == "cannot reach unid at /tmp/uni-no-such-dir/unid.sock: start it with `unid`")
        #expect(error?.code == .unavailable)
    }
}

final class OutputCollector: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    func append(_ chunk: [UInt8]) { bytes.withLock { $0 += chunk } }
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
}

@Suite("CLI helpers")
struct CLIHelperTests {
    @Test("ps table: aligned columns, exit code in the state, uptime")
    func table() throws {
        var vm = VM(id: try VMID("0123456789ab"), name: "web", config: VMConfig(image: "/images/hello.elf", ports: [PortMapping(hostPort: 8080, guestPort: 80)]),
                    imageKind: .kernel, createdAt: Date())
        vm.state = .running
        vm.startedAt = Date(timeIntervalSinceNow: -125)
        var stopped = vm
        vm.health = .healthy
        vm.restartCount = 2
        stopped.name = "old"
        stopped.state = .stopped
        stopped.exitCode = 3
        let text = CLIRendering.table([vm, stopped])
        #expect(text == """
        ID             NAME   IMAGE       STATE         HEALTH    UPTIME   RESTARTS   PORTS
        0123456789ab   web    hello.elf   running       healthy   2m       2          0.0.0.0:8080->80/tcp
        0123456789ab   old    hello.elf   stopped (3)   -         -        0          0.0.0.0:8080->80/tcp

        """)
    }

    @Test("ps table and json: unreadable records follow the VMs as broken rows naming their path")
    func brokenRows() throws {
        let vm = VM(id: try VMID("0123456789ab"), name: "web", config: VMConfig(image: "/images/hello.elf"), imageKind: .kernel, createdAt: Date())
        let file = UnreadableRecord(id: try VMID("0badc0ffee00"), path: "/d/vms/0badc0ffee00/state.json", reason: "not a valid VM record (not valid JSON)")
        let row = UnreadableRecord(id: nil, path: "/d/vms/vms.db", rowID: "x", reason: "holds id 0123456789ab but is stored as x")
        #expect(CLIRendering.table([vm], unreadable: [file, row]) == """
        ID             NAME   IMAGE                            STATE     HEALTH   UPTIME   RESTARTS   PORTS
        0123456789ab   web    hello.elf                        created   -        -        0
        0badc0ffee00   -      /d/vms/0badc0ffee00/state.json   broken    -        -        -
        -              -      /d/vms/vms.db vm x               broken    -        -        -

        """)
        let json = try CLIRendering.json([CLIRendering.ListEntry.unreadable(file), .unreadable(row)])
        let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: String]]
        #expect(decoded == [
            ["state": "broken", "id": "0badc0ffee00", "path": "/d/vms/0badc0ffee00/state.json", "reason": "not a valid VM record (not valid JSON)"],
            ["state": "broken", "path": "/d/vms/vms.db", "row_id": "x", "reason": "holds id 0123456789ab but is stored as x"],
        ])
        let vmJSON = try CLIRendering.json([CLIRendering.ListEntry.vm(vm)])
        #expect(vmJSON == (try CLIRendering.json([vm])))
    }

    @Test("--data-dir before the subcommand moves after it")
    func hoisting() {
        let commands: Set<String> = ["ps", "run"]
        #expect(CommandRunner.hoistingGlobalOptions(["--data-dir", "/tmp/u", "ps", "-a"], subcommands: commands) == ["ps", "--data-dir", "/tmp/u", "-a"])
        #expect(CommandRunner.hoistingGlobalOptions(["--data-dir=/tmp/u", "ps"], subcommands: commands) == ["ps", "--data-dir=/tmp/u"])
        #expect(CommandRunner.hoistingGlobalOptions(["ps", "--data-dir", "/tmp/u"], subcommands: commands) == ["ps", "--data-dir", "/tmp/u"])
        #expect(CommandRunner.hoistingGlobalOptions(["--data-dir", "/tmp/u", "bogus"], subcommands: commands) == ["bogus"])
    }

    @Test("run's environment: files, then flags; -e NAME copies from the shell")
    func environment() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try "A=1\nB=2\n".write(toFile: dir.path + "/app.env", atomically: true, encoding: .utf8)
        let merged = try RunOptions.environment(flags: ["B=3", "HOME"], files: [dir.path + "/app.env"], processEnvironment: ["HOME": "/root"])
        #expect(merged == ["A": "1", "B": "3", "HOME": "/root"])
        let unset = try #require(throws: UniError.self) { try RunOptions.environment(flags: ["NOPE"], files: [], processEnvironment: [:]) }
        #expect(unset.message.contains("'NOPE'"))
        let missing = try #require(throws: UniError.self) { try RunOptions.environment(flags: [], files: ["/nonexistent.env"]) }
        #expect(missing.message == "env file '/nonexistent.env' does not exist or is not readable")
        let image = try #require(throws: UniError.self) { try RunOptions.resolveImage("/nonexistent.elf") }
        #expect(image.message == "image '/nonexistent.elf' does not exist")
    }
}

@Suite("Stats over the API and in the CLI")
struct StatsAPITests {
    @Test("GET /v1/vms/{ref}/stats and /v1/stats: numbers where measured, null where not")
    func stats() async throws {
        try await APIHarness().run { harness in
            let client = harness.client
            _ = try await client.create(VMConfig(name: "web", image: harness.image))
            let history = try await client.stats("web")
            #expect(history.current.memoryRSSBytes == 48 << 20)
            #expect(history.current.networkReceivedBytes == nil)
            #expect(try await client.stats().map(\.name) == ["web"])
            let raw = try await harness.raw(.GET, "/v1/vms/web/stats")
            #expect(raw.status == 200)
            #expect(raw.body.contains("\"network_tx_bytes\":null"))
            let missing = try await harness.raw(.GET, "/v1/vms/nope/stats")
            #expect(missing.status == 404)
            #expect(missing.body.contains("no such vm: nope"))
        }
    }

    @Test("the stats table shows units and '-' for what was not measured")
    func table() throws {
        var stats = VMStats(vmID: try VMID("0123456789ab"), name: "web", sampledAt: Date(), source: .proc)
        stats.cpuPercent = 12.46
        stats.memoryRSSBytes = 50_541_363
        stats.networkReceivedBytes = 1331
        #expect(CLIRendering.statsTable([stats]) == """
        ID             NAME   CPU %   MEM        NET RX    NET TX   DISK READ   DISK WRITE
        0123456789ab   web    12.5%   48.2 MiB   1.3 KiB   -        -           -

        """)
        #expect(CLIRendering.bytes(512) == "512 B")
        #expect(CLIRendering.bytes(3 << 30) == "3.0 GiB")
        #expect(CLIRendering.percent(0) == "0.0%")
    }
}
