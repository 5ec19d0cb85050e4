import Foundation
import Testing
@testable import UniKit
import UniKitTesting

@Suite("Image references")
struct ImageReferenceTests {
    @Test("names, registries, tags and digests are read as docker reads them", arguments: [
        ("app", nil, "app", "latest"),
        ("app:1", nil, "app", "1"),
        ("team/app:v1.2-rc_3", nil, "team/app", "v1.2-rc_3"),
        ("localhost/app", "localhost", "app", "latest"),
        ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000", "team/app", "1"),
        ("registry.example/a/b/c:x", "registry.example", "a/b/c", "x"),
        ("my-registry:8080/app", "my-registry:8080", "app", "latest"),
        ("a__b/c.d/e-f--g:t", nil, "a__b/c.d/e-f--g", "t"),
    ] as [(String, String?, String, String)])
    func valid(text: String, registry: String?, repository: String, tag: String) throws {
        let reference = try ImageReference.parse(text)
        #expect(reference.registry == registry)
        #expect(reference.repository == repository)
        #expect(reference.tag == tag)
        #expect(try ImageReference.parse(reference.description) == reference)
    }

    @Test("a digest pins the manifest; without a tag there is none")
    func digest() throws {
        let hex = String(repeating: "a", count: 64)
        let pinned = try ImageReference.parse("app@sha256:\(hex)")
        #expect(pinned.tag == nil && pinned.digest == "sha256:\(hex)")
        #expect(pinned.description == "app@sha256:\(hex)")
    }

    @Test("malformed references name the text and the part that is wrong", arguments: [
        ("", "invalid image reference '': it is empty"),
        ("App:1", "invalid image reference 'App:1': the repository 'App' must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"),
        ("app:", "invalid image reference 'app:': the tag '' must be 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'"),
        ("app:-x", "invalid image reference 'app:-x': the tag '-x' must be 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'"),
        ("app@sha256:abc", "invalid image reference 'app@sha256:abc': the digest 'sha256:abc' is not sha256: and 64 lowercase hex digits"),
        ("reg.example:99999/app", "invalid image reference 'reg.example:99999/app': the registry 'reg.example:99999' is not HOST or HOST:PORT"),
        ("a//b", "invalid image reference 'a//b': the repository 'a//b' must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"),
        ("a b", "invalid image reference 'a b': it must not contain spaces or control characters"),
        ("-a", "invalid image reference '-a': the repository '-a' must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"),
        ("a..b", "invalid image reference 'a..b': the repository 'a..b' must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"),
        ("a___b", "invalid image reference 'a___b': the repository 'a___b' must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"),
    ])
    func invalid(text: String, message: String) {
        let error = #expect(throws: UniError.self) { try ImageReference.parse(text) }
        #expect(error?.message == message)
    }

    @Test("paths are never references; a VM config takes either")
    func paths() throws {
        for path in ["/k.elf", "./k.elf", "../k", ".", ".."] { #expect(ImageReference.looksLikePath(path)) }
        #expect(!ImageReference.looksLikePath("k.elf"))
        #expect(try VMConfig.validate(image: "app") == "app:latest")
        // docs/vm-record.md: a bare file name is a reference of the local store, never a file of unid's folder.
        #expect(try VMConfig.validate(image: "kernel.elf") == "kernel.elf:latest")
        #expect((#expect(throws: UniError.self) { try VMConfig.validate(image: "../k.elf") })?.message == "invalid image '../k.elf': give an absolute path")
        #expect(try VMConfig.validate(image: "/a/../k.elf") == "/k.elf")
        let error = #expect(throws: UniError.self) { try VMConfig.validate(image: "Kernel.ELF") }
        #expect(error?.message.hasPrefix("invalid image 'Kernel.ELF': not an absolute path, nor an image reference (the repository 'Kernel.ELF' must be lowercase") == true)
        #expect((#expect(throws: UniError.self) { try VMConfig.validate(image: "./k") })?.message == "invalid image './k': give an absolute path")
    }
}

@Suite("The local image store")
struct ImageStoreTests {
    static func file(_ directory: TemporaryDirectory, _ name: String, _ bytes: [UInt8]) -> String {
        let path = directory.path + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    static let kernelBytes: [UInt8] = [0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 7, count: 5000)

    @Test("an imported kernel is stored by digest, tagged, resolved and listed; its manifest is a Uni image")
    func importAndResolve() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let service = ImageService(directory: directory.path + "/images")
        let kernel = Self.file(directory, "k.elf", Self.kernelBytes)
        let initrd = Self.file(directory, "initrd", [1, 2, 3])
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let stored = try await service.importImage(ImageImportRequest(reference: "app:1", kernel: kernel, initrd: initrd,
                                                                      config: UniImageConfig(kernelCommandLine: "lines=2", memory: .mebibytes(64), environment: ["A": "1"])), now: now)
        #expect(stored.reference.description == "app:1")
        #expect(stored.created == now)
        let store = try service.store()
        let manifest = try store.manifest(stored.digest)
        try manifest.validateAsUniImage()
        #expect(manifest.layers.map(\.mediaType) == [UniMediaType.kernel, UniMediaType.initrd])
        #expect(manifest.layers[0].digest == ImageStore.digest(of: Self.kernelBytes))
        #expect(try Data(contentsOf: URL(fileURLWithPath: store.blobPath(manifest.layers[0].digest))) == Data(Self.kernelBytes))
        #expect(stored.size == UInt64(try store.read(stored.digest).count) + manifest.config.size + UInt64(Self.kernelBytes.count) + 3)
        let resolution = try service.resolve(try ImageReference.parse("app:1"))
        #expect(resolution.kind == .kernel)
        #expect(resolution.binding.kernelPath == store.blobPath(manifest.layers[0].digest))
        #expect(resolution.binding.initrdPath == store.blobPath(manifest.layers[1].digest))
        #expect(resolution.config.memory == .mebibytes(64) && resolution.config.environment == ["A": "1"])
        #expect(try service.list().map(\.reference.description) == ["app:1"])
        let missing = #expect(throws: UniError.self) { try service.resolve(try ImageReference.parse("app:2")) }
        #expect(missing?.code == .notFound && missing?.message == "no such image: app:2")
    }

    @Test("a file given as the wrong kind, a missing file and bad defaults are refused before anything is stored")
    func importErrors() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let service = ImageService(directory: directory.path + "/images")
        let kernel = Self.file(directory, "k.elf", Self.kernelBytes)
        var sector = [UInt8](repeating: 0, count: 512)
        sector[510] = 0x55
        sector[511] = 0xAA
        let disk = Self.file(directory, "d.img", sector)
        func message(_ request: ImageImportRequest) async -> String? {
            do { _ = try await service.importImage(request); return nil } catch { return (error as? UniError)?.message ?? "\(error)" }
        }
        #expect(await message(ImageImportRequest(reference: "a:1", kernel: disk)) == "--kernel '\(disk)' is a disk image: give it with --disk")
        #expect(await message(ImageImportRequest(reference: "a:1", disk: kernel)) == "--disk '\(kernel)' is a kernel image: give it with --kernel")
        #expect(await message(ImageImportRequest(reference: "a:1")) == "give one of --kernel or --disk (neither given)")
        #expect(await message(ImageImportRequest(reference: "a:1", kernel: kernel, disk: disk)) == "give one of --kernel or --disk (both given)")
        #expect(await message(ImageImportRequest(reference: "a:1", initrd: kernel, disk: disk)) == "--initrd applies to a kernel, not to --disk")
        #expect(await message(ImageImportRequest(reference: "a:1", kernel: directory.path + "/nope")) == "image '\(directory.path)/nope' does not exist")
        // The kernel is stored before the initrd fails: it must not stay behind.
        #expect(await message(ImageImportRequest(reference: "a:1", kernel: kernel, initrd: directory.path)) == "invalid --initrd: '\(directory.path)' is not a regular file")
        #expect(await message(ImageImportRequest(reference: "A:1", kernel: kernel))?.hasPrefix("invalid image reference 'A:1'") == true)
        #expect(await message(ImageImportRequest(reference: "a:1", kernel: kernel, config: UniImageConfig(cpus: 0))) == "invalid cpus '0': must be a whole number from 1 to 64")
        #expect(await message(ImageImportRequest(reference: "a:1", kernel: kernel, config: UniImageConfig(exposedPorts: ["http"]))) == "invalid exposed port 'http': expected PORT[/tcp|udp], PORT 1-65535")
        #expect(try service.list().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/images/blobs/sha256").isEmpty)
    }

    @Test("a blob whose bytes do not match its descriptor, or fall short, is never stored; a partial write vanishes at the next open")
    func verifiedWrites() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try ImageStore(root: directory.path)
        let bytes = Data("hello".utf8)
        let descriptor = OCIDescriptor(mediaType: UniMediaType.kernel, digest: ImageStore.digest(of: bytes), size: 5)
        let tampered = try store.writer(expecting: descriptor)
        try tampered.write(Data("hellO".utf8))
        #expect((#expect(throws: UniError.self) { try tampered.commit() })?.message == "blob digest mismatch: expected \(descriptor.digest), got \(ImageStore.digest(of: Data("hellO".utf8))); nothing was stored")
        let short = try store.writer(expecting: descriptor)
        try short.write(Data("hel".utf8))
        #expect((#expect(throws: UniError.self) { try short.commit() })?.message == "blob \(descriptor.digest) is truncated: 3 of 5 bytes")
        let long = try store.writer(expecting: descriptor)
        #expect(throws: UniError.self) { try long.write(Data("hello!".utf8)) }
        long.cancel()
        #expect(!store.hasBlob(descriptor))
        // A crash mid-write leaves a file in tmp/ named for its dead
        // process: the next open removes it, and leaves a live writer's.
        let crashed = directory.path + "/tmp/2147483646-0C1D"
        FileManager.default.createFile(atPath: crashed, contents: Data(repeating: 1, count: 100))
        let live = try store.writer(mediaType: UniMediaType.disk)
        try live.write(Data(repeating: 2, count: 100))
        _ = try ImageStore(root: directory.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").count == 1)
        #expect(!FileManager.default.fileExists(atPath: crashed))
        live.cancel()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/blobs/sha256").isEmpty)
        let good = try store.writer(expecting: descriptor)
        try good.write(bytes)
        #expect(try good.commit() == descriptor)
        #expect(store.hasBlob(descriptor))
    }

    @Test("concurrent tags and imports of one store lose nothing and corrupt nothing")
    func concurrentWriters() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let kernel = Self.file(directory, "k.elf", Self.kernelBytes)
        // Two services on one folder: like two processes, only the flock orders them.
        let first = ImageService(directory: directory.path + "/images")
        let second = ImageService(directory: directory.path + "/images")
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<16 {
                let service = index % 2 == 0 ? first : second
                group.addTask { _ = try await service.importImage(ImageImportRequest(reference: "app:\(index)", kernel: kernel), now: now) }
            }
            try await group.waitForAll()
        }
        #expect(Set(try first.list().map(\.reference.description)) == Set((0..<16).map { "app:\($0)" }))
        #expect(Set(try first.list().map(\.digest)).count == 1, "one content and time, one manifest")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/images/blobs/sha256").count == 3)
    }

    @Test("removing a tag deletes blobs only no other tag or VM needs")
    func removalAndGarbage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let service = ImageService(directory: directory.path + "/images")
        let kernel = Self.file(directory, "k.elf", Self.kernelBytes)
        let stored = try await service.importImage(ImageImportRequest(reference: "app:1", kernel: kernel))
        _ = try service.tag("app:1", as: "app:2")
        let blobs = { try FileManager.default.contentsOfDirectory(atPath: directory.path + "/images/blobs/sha256").count }
        let count = try blobs()
        #expect(count == 3, "manifest, config, kernel")
        _ = try service.remove(try ImageReference.parse("app:1"), keepingManifests: [])
        #expect(try blobs() == count, "app:2 still needs them")
        _ = try service.remove(try ImageReference.parse("app:2"), keepingManifests: [stored.digest])
        #expect(try blobs() == count, "a VM still uses them")
        service.collectGarbage(keepingManifests: [])
        #expect(try blobs() == 0)
        #expect((#expect(throws: UniError.self) { try service.remove(try ImageReference.parse("app:2"), keepingManifests: []) })?.code == .notFound)
    }
}

@Suite("The image store on a full disk")
struct ImageStoreFullDiskTests {
    /// A 1 MiB tmpfs, when this process may mount one (root); `nil` otherwise.
    static func smallFilesystem() -> TemporaryDirectory? {
        guard let directory = try? TemporaryDirectory(prefix: "uni-full") else { return nil }
        guard mount("tmpfs", directory.path, "tmpfs", 0, "size=1m") == 0 else {
            directory.remove()
            return nil
        }
        return directory
    }

    @Test("an import that fills the disk fails naming the store and the cause, and leaves no blob, no tag and no partial file",
          .enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func fullDisk() async throws {
        let source = try TemporaryDirectory()
        defer { source.remove() }
        let kernel = source.path + "/big.elf"
        FileManager.default.createFile(atPath: kernel, contents: Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 9, count: 3 << 20)))
        let disk = try #require(Self.smallFilesystem(), "tmpfs could not be mounted")
        defer {
            umount(disk.path)
            disk.remove()
        }
        let service = ImageService(directory: disk.path + "/images")
        let error = await #expect(throws: UniError.self) { try await service.importImage(ImageImportRequest(reference: "big:1", kernel: kernel)) }
        #expect(error?.code == .storeFailed)
        #expect(error?.message == "cannot write to the image store '\(disk.path)/images': No space left on device", "\(String(describing: error))")
        #expect(try service.list().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path + "/images/blobs/sha256").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path + "/images/tmp").isEmpty)
    }
}
