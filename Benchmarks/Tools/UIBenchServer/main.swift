import Foundation
import Hummingbird
import Logging
import UniHTTP
import UniKit
import UniKitTesting

// The dashboard over a manager with 100 running VMs (scripted hypervisor,
// fixed stats), on 127.0.0.1:PORT until killed: what `scripts/bench-ui.sh`
// points wrk at. With DATA_DIR it also serves unid's API on that data
// dir's socket, so `uni --data-dir DATA_DIR stats` asks the fake VMs
// (`scripts/bench-stats-cli.py --fake-vms`).
// Usage: UIBenchServer PORT [VM_COUNT] [DATA_DIR]
/// Unbuffered: the scripts wait for the "ready" lines through a pipe.
func announce(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
let arguments = CommandLine.arguments
let port = arguments.count > 1 ? Int(arguments[1]) ?? 18_480 : 18_480
let count = arguments.count > 2 ? Int(arguments[2]) ?? 100 : 100
let apiDataDirectory = arguments.count > 3 ? DataDirectory(root: arguments[3]) : nil
let directory = try TemporaryDirectory(prefix: "uni-bench-ui")
let image = directory.path + "/kernel.elf"
_ = FileManager.default.createFile(atPath: image, contents: Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 60)))
let logger: Logger = {
    var logger = Logger(label: "bench-ui")
    logger.logLevel = .warning
    return logger
}()
let source = FixedStatsSource(VMStatsReading(source: .proc, cpuSeconds: 1, memoryRSSBytes: 48 << 20))
let manager = VMManager(configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path)),
                        backends: VMManagerBackends(store: InMemoryVMStore(), hypervisor: ScriptedHypervisor(), statsSource: source),
                        logger: logger)
try await manager.withRunning { manager in
    for index in 0..<count {
        _ = try await manager.run(VMConfig(name: "vm-\(index)", image: image, ports: [PortMapping(hostPort: UInt16(20_000 + index), guestPort: 80)],
                                           environment: ["MODE": "bench", "API_TOKEN": "secret-\(index)"]))
    }
    // Two samples: every VM has a CPU % and memory, as after two polls.
    await manager.sampleStats()
    await manager.sampleStats()
    let app = Application(router: try DashboardRouter.build(manager: manager),
                          configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "bench-ui"),
                          onServerRunning: { _ in announce("ready http://127.0.0.1:\(port) vms=\(count)") },
                          logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.runService() }
        if let apiDataDirectory {
            try apiDataDirectory.prepare()
            let info = DaemonInfo(version: "bench", accelerator: .tcg, dataDirectory: apiDataDirectory.root, pid: getpid())
            let api = try APIServer.makeApplication(router: APIRouter.build(manager: manager, info: info),
                                                    socketPath: apiDataDirectory.socketPath, logger: logger,
                                                    onServerRunning: { announce("ready \(apiDataDirectory.socketPath) vms=\(count)") })
            group.addTask { try await api.runService() }
        }
        try await group.next()
    }
}
directory.remove()
