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
