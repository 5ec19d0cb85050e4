import Foundation
import Testing
@testable import UniKit
import UniKitTesting

/// VMs created from stored images (scripted hypervisor): the binding, the
/// image's defaults under the request's, and `rmi` while a VM uses it.
@Suite("VMManager with stored images")
struct VMManagerImageTests {
    typealias Harness = VMManagerTests.Harness

    static func importKernel(_ harness: Harness, as reference: String, config: UniImageConfig = UniImageConfig()) async throws -> StoredImage {
        try await harness.manager.images.importImage(ImageImportRequest(reference: reference, kernel: harness.image, config: config))
    }

    @Test("run NAME:TAG boots the stored kernel; the record keeps the reference and digest; the image's defaults fill what the request left open")
    func runFromImage() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let stored = try await Self.importKernel(harness, as: "app:1",
                                                     config: UniImageConfig(kernelCommandLine: "lines=2", memory: .mebibytes(96), cpus: 2, environment: ["A": "image", "B": "image"]))
            let vm = try await manager.run(VMConfig(name: "a", image: "app:1", cpus: 1, environment: ["B": "request"]))
            #expect(vm.state == .running)
            #expect(vm.config.image == "app:1")
            #expect(vm.image?.digest == stored.digest)
            #expect(vm.image?.kernelPath?.hasPrefix(harness.directory.path + "/images/blobs/sha256/") == true)
            #expect(vm.bootImagePath == vm.image?.kernelPath)
            #expect(vm.imageKind == .kernel)
            #expect(vm.config.memory == .mebibytes(96))
            #expect(vm.config.cpus == 1, "the request wins")
            #expect(vm.config.kernelCommandLine == "lines=2")
            #expect(vm.config.environment == ["A": "image", "B": "request"])
            // A path still runs a file; the record gets the default memory.
            let plain = try await manager.run(VMConfig(name: "p", image: harness.image))
            #expect(plain.image == nil && plain.config.memory == VMConfig.defaultMemory && plain.config.cpus == 1)
            let unknown = await #expect(throws: UniError.self) { try await manager.run(VMConfig(image: "app:2")) }
            #expect(unknown?.code == .notFound && unknown?.message == "no such image: app:2")
            // The image's memory is checked against --memory-max like a flag.
            let tight = await #expect(throws: UniError.self) {
                try await manager.run(VMConfig(image: "app:1", quota: ResourceQuota(memoryMax: .mebibytes(64))))
            }
            #expect(tight?.message == "invalid memory max '64M': it must be at least the VM's memory (96M); QEMU needs some more of its own")
        }
    }

    @Test("rmi of an image a VM uses is refused; -f untags it and its files stay until the VM is removed")
    func removeInUse() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let stored = try await Self.importKernel(harness, as: "app:1")
            _ = try await manager.run(VMConfig(name: "a", image: "app:1"))
            let refused = await #expect(throws: UniError.self) { try await manager.removeImage("app:1") }
            #expect(refused?.code == .conflict)
            #expect(refused?.message == "image app:1 is used by vm a (running): remove the vm first, or use rmi -f (its files stay until the vm is removed)")
            // Another tag of the same image may go.
            _ = try manager.images.tag("app:1", as: "app:other")
            #expect(try await manager.removeImage("app:other").digest == stored.digest)
            _ = try await manager.removeImage("app:1", force: true)
            #expect(try manager.images.list().isEmpty)
            let kernel = try #require(try await manager.inspect("a").image?.kernelPath)
            #expect(FileManager.default.fileExists(atPath: kernel), "a VM still uses it")
            _ = try await manager.stop("a")
            _ = try await manager.start("a")
            try await manager.remove("a", force: true)
            #expect(!FileManager.default.fileExists(atPath: kernel))
        }
    }

    @Test("a VM whose image files are gone fails to start with a message naming the image")
    func missingBlobs() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await Self.importKernel(harness, as: "app:1")
            let vm = try await manager.create(VMConfig(name: "a", image: "app:1"))
            try FileManager.default.removeItem(atPath: try #require(vm.image?.kernelPath))
            let error = await #expect(throws: UniError.self) { try await manager.start("a") }
            #expect(error?.message == "image app:1 (\(vm.image?.digest ?? "")) of vm a is no longer in the image store: import or pull it again, or create the vm anew")
        }
    }

    @Test("rmi while a VM is being created from the image: the VM keeps the files (they were pinned at resolve) and starts")
    func removeDuringCreate() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await Self.importKernel(harness, as: "app:1")
            let held = harness.store.suspendNextSave { $0.state == .created }
            async let created = VMManagerRaceTests.outcome { try await manager.create(VMConfig(name: "a", image: "app:1")) }
            await held.waitUntilReached()
            // Not in the table yet: rmi untags it, and must not take the files.
            _ = try await manager.removeImage("app:1")
            held.release()
            let vm = try await created.get()
            let kernel = try #require(vm.image?.kernelPath)
            #expect(FileManager.default.fileExists(atPath: kernel))
            #expect(try await manager.start("a").state == .running)
            try await manager.remove("a", force: true)
            #expect(!FileManager.default.fileExists(atPath: kernel), "collected once the VM is gone")
        }
    }

    @Test("blobs no tag and no VM needs (a dead daemon's interrupted pull) are collected at load")
    func collectedAtLoad() async throws {
        let harness = try Harness()
        let stray = harness.directory.path + "/images/blobs/sha256/" + String(repeating: "c", count: 64)
        try FileManager.default.createDirectory(atPath: harness.directory.path + "/images/blobs/sha256", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: stray, contents: Data("left by a killed pull".utf8))
        try await harness.run { manager in
            #expect(!FileManager.default.fileExists(atPath: stray))
            _ = manager
        }
    }
}
