import Foundation
import Logging
import Testing
import UniHTTP
import UniKit
import UniKitTesting

@Suite("unid's data dir checks")
struct DaemonDataDirectoryTests {
    @Test("a data dir too deep for its sockets is refused before anything is created", arguments: [95, 80])
    func tooDeep(rootLength: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // 95: unid.sock is 105 bytes (the kernel would take it, SwiftNIO not); 80: only the QMP sockets are too long.
        let parent = directory.path + "/a"
        let root = parent + "/" + String(repeating: "d", count: rootLength - parent.utf8.count - 1)
        #expect(root.utf8.count == rootLength)
        let configuration = DaemonConfiguration(dataDirectory: DataDirectory(root: root), accelerator: .tcg, qemuBinary: "/bin/true")
        let error = await #expect(throws: UniError.self) { try await Daemon.make(configuration: configuration, logger: Logger(label: "test")) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasSuffix("more than the 103 a Unix socket path may have: use a shorter --data-dir") == true)
        #expect(error?.message.contains(rootLength == 95 ? "socket path '\(root)/unid.sock' is 105 bytes" : "data dir '\(root)' is too deep") == true)
        #expect(!FileManager.default.fileExists(atPath: parent))
    }
}

@Suite("unid's VM store")
struct DaemonStoreTests {
    func configuration(_ directory: TemporaryDirectory, store: VMStoreKind) -> DaemonConfiguration {
        DaemonConfiguration(dataDirectory: DataDirectory(root: directory.path), accelerator: .tcg, qemuBinary: "/bin/true", vmStore: store)
    }

    @Test("--vm-store sqlite: the manager gets the VMs a file-store data dir held, from vms.db")
    func sqlite() async throws {
        try await TemporaryDirectory.with { directory in
            let dataDirectory = DataDirectory(root: directory.path)
            let vm = VM(id: VMID.random(), name: "web", config: VMConfig(image: "/k"), imageKind: .kernel, createdAt: Date(timeIntervalSince1970: 1_790_000_000))
            try await FileVMStore(dataDirectory: dataDirectory).save(vm)
            let daemon = try await Daemon.make(configuration: configuration(directory, store: .sqlite), logger: Logger(label: "test"))
            #expect(await daemon.manager.list(all: true) == [vm])
            #expect(FileManager.default.fileExists(atPath: dataDirectory.databasePath))
            #expect(try await SQLiteVMStore(path: dataDirectory.databasePath).loadAll().vms == [vm])
        }
    }

    @Test("a corrupt vms.db stops the daemon before it serves, with the hint")
    func corrupt() async throws {
        try await TemporaryDirectory.with { directory in
            let dataDirectory = DataDirectory(root: directory.path)
            try dataDirectory.prepare()
            try Data(repeating: 0xFF, count: 1024).write(to: URL(fileURLWithPath: dataDirectory.databasePath))
            let error = await #expect(throws: UniError.self) {
                try await Daemon.make(configuration: configuration(directory, store: .sqlite), logger: Logger(label: "test"))
            }
            #expect(error?.message.contains("is corrupt (file is not a database); unid does not recreate it") == true)
        }
    }

    @Test("a data dir whose vms is not a folder is an error at start, naming it")
    func unwritable() async throws {
        try await TemporaryDirectory.with { directory in
            let dataDirectory = DataDirectory(root: directory.path)
            try Data().write(to: URL(fileURLWithPath: dataDirectory.vmsDirectory))
            for store in VMStoreKind.allCases {
                let error = await #expect(throws: UniError.self) {
                    try await Daemon.make(configuration: configuration(directory, store: store), logger: Logger(label: "test"))
                }
                #expect(error?.message.hasPrefix("cannot create '\(dataDirectory.vmsDirectory)'") == true, "\(store): \(String(describing: error))")
            }
        }
    }
}
