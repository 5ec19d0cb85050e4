import Foundation
import Logging
import Testing
import UniKit
import UniKitTesting

/// The code of the DocC article "Embedding UniKit": the test below is the
/// article's test with the fakes, and the article's other code is
/// `Examples/embed` (built and run by `EmbedExampleTests`), so every line
/// of it compiles; the second test checks the article still shows them.
@Suite("Embedding UniKit (the DocC article's code)")
struct EmbeddingArticleTests {
    @Test("a guest that ignores the powerdown is killed after the stop timeout")
    func stopTimeout() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let kernel = directory.path + "/kernel.elf"  // the scripted hypervisor only needs an ELF header
        FileManager.default.createFile(atPath: kernel, contents: Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 60)))
        let clock = ManualClock()
        let hypervisor = ScriptedHypervisor { _ in .init(consoleOutput: "hello\n", honorsPowerdown: false) }
        let manager = VMManager(
            configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path), stopTimeout: .seconds(10), clock: clock),
            backends: VMManagerBackends(store: InMemoryVMStore(), hypervisor: hypervisor),
            logger: Logger(label: "test")
        )
        try await manager.load()
        try await manager.withRunning { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: kernel))
            var console = [UInt8]()
            for await chunk in try await manager.logs("web") { console += chunk }
            #expect(String(decoding: console, as: UTF8.self) == "hello\n")

            async let stopping = manager.stop("web")
            await clock.waitForSleep(ofLength: .seconds(10))  // the stop waits for the guest...
            clock.advance(by: .seconds(10))                      // ...until its timeout
            let stopped = try await stopping
            #expect(stopped.exitCode == 137 && stopped.stopReason == .stopTimeout)
            #expect(hypervisor.instance(for: vm.id)?.hasExited == true)
        }
    }

    @Test("the article shows the code of this test and of Examples/embed, line for line")
    func articleMatchesCode() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let article = try String(contentsOfFile: root + "/Sources/UniKit/UniKit.docc/EmbeddingUniKit.md", encoding: .utf8)
        let sources = try [root + "/Examples/embed/Sources/embed/Embed.swift", #filePath].map { try String(contentsOfFile: $0, encoding: .utf8) }
        let normalized = sources.map { $0.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "\n") }
        let blocks = article.components(separatedBy: "```swift\n").dropFirst().map { $0.components(separatedBy: "\n```")[0] }
        #expect(blocks.count >= 3)
        for block in blocks {
            let lines = block.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
            #expect(normalized.contains { $0.contains(lines) }, "this code block of EmbeddingUniKit.md is in neither Examples/embed nor EmbeddingArticleTests.swift:\n\(block)")
        }
    }
}
