import Foundation
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

extension Integration {
    /// The local image store through the real binaries: import, list, run by
    /// reference, tag, rmi while used.
    @Suite("Images with the real binaries", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct ImageIntegrationTests {
        @Test("uni image import, images, run NAME:TAG (the stored kernel boots with the image's cmdline), tag, rmi refused while used, then removed with its files")
        func importRunRemove() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            func uni(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
                try Host.runProduct("uni", ["--data-dir", dir.path] + arguments)
            }
            let unid = try Host.startDaemon(dataDir: dir.path)
            defer { unid.send(SIGKILL) }
            #expect(await Host.eventually { (try? uni(["ps"]).status) == 0 })

            // --data-dir before a nested subcommand is moved after it.
            let imported = try Host.runProduct("uni", ["--data-dir", dir.path, "image", "import", "test:1", "--kernel", kernel, "--cmdline", "lines=2", "--memory", "48M", "-e", "FROM=image"])
            try #require(imported.status == 0, "\(imported.stderr)")
            let digest = imported.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(ImageReference.isDigest(digest), "\(imported.stdout)")
            let table = try uni(["images"]).stdout
            #expect(table.hasPrefix("REPOSITORY"), "\(table)")
            #expect(table.contains("test ") && table.contains(" 1 ") && table.contains(String(digest.dropFirst(7).prefix(12))), "\(table)")
            let listed = try JSONCoding.makeDecoder().decode([StoredImage].self, from: Data(try uni(["images", "--output", "json"]).stdout.utf8))
            #expect(listed.map(\.digest) == [digest])

            let nowhere = try uni(["push", "test:1"])
            #expect(nowhere.status == 2)
            #expect(nowhere.stderr == "error: cannot push 'test:1': it names no registry: give a destination REGISTRY/REPO:TAG (uni push test:1 localhost:5000/test:1)\n")
            let run = try uni(["run", "--name", "a", "test:1"])
            try #require(run.status == 0, "\(run.stderr)")
            #expect(await Host.eventually { (try? uni(["logs", "a"]).stdout.contains("uni-guest: cmdline=lines=2")) == true })
            let vm = try JSONCoding.makeDecoder().decode([VM].self, from: Data(try uni(["inspect", "a"]).stdout.utf8))[0]
            #expect(vm.config.image == "test:1" && vm.image?.digest == digest)
            #expect(vm.config.memory == .mebibytes(48) && vm.config.environment == ["FROM": "image"])
            let qemuCommand = try String(decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\(try #require(vm.pid))/cmdline")), as: UTF8.self)
            #expect(qemuCommand.contains(dir.path + "/images/blobs/sha256/"), "QEMU boots the stored blob")
            #expect(try uni(["ps"]).stdout.contains("test:1"))

            #expect(try uni(["tag", "test:1", "test:2"]).status == 0)
            #expect(try uni(["rmi", "test:1"]).stdout == "Untagged: test:1\n", "another tag keeps the image")
            let refused = try uni(["rmi", "test:2"])
            #expect(refused.status == 1)
            #expect(refused.stderr == "error: image test:2 is used by vm a (running): remove the vm first, or use rmi -f (its files stay until the vm is removed)\n")
            #expect(try uni(["rm", "-f", "a"]).status == 0)
            #expect(try uni(["rmi", "test:2"]).status == 0)
            #expect(try uni(["images", "-q"]).stdout.isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/images/blobs/sha256").isEmpty)

            let unknown = try uni(["run", "nope:1"])
            #expect(unknown.status == 1 && unknown.stderr == "error: no such image: nope:1\n")
            let bad = try uni(["image", "import", "Bad:1", "--kernel", kernel])
            #expect(bad.status == 2 && bad.stderr.hasPrefix("error: invalid image reference 'Bad:1': the repository 'Bad'"), "\(bad.stderr)")
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
        }
    }
}
