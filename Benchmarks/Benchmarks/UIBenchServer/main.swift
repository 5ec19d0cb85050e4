import Foundation
import Hummingbird
import Logging
import UniHTTP
import UniKit
import UniKitTesting

// The dashboard over a manager with 100 running VMs (scripted hypervisor,
// fixed stats), on 127.0.0.1:PORT until killed: what `scripts/bench-ui.sh`
// points wrk at. Usage: UIBenchServer PORT [VM_COUNT]
let arguments = CommandLine.arguments
let port = arguments.count > 1 ? Int(arguments[1]) ?? 18_480 : 18_480
let count = arguments.count > 2 ? Int(arguments[2]) ?? 100 : 100
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
                          onServerRunning: { _ in print("ready http://127.0.0.1:\(port) vms=\(count)") },
                          logger: logger)
    try await app.runService()
}
directory.remove()
