import Foundation
import Testing
import RegistryTestSupport
import UniKit
import UniKitTesting

/// Push and pull against the real CNCF Distribution registry
/// (`docker-registry`), checked with an independent client (`skopeo`).
/// Serialized: each test starts registry processes.
@Suite("Registry client against docker-registry and skopeo", .serialized, .enabled(if: RegistryTools.available, Comment(rawValue: RegistryTools.missing)))
struct RealRegistryTests {
    /// Small chunks so a 3 MiB layer takes the chunked path.
    static let chunked = RegistryClientConfiguration(monolithicUploadLimit: 1 << 20, chunkSize: 768 << 10)

    @Test("a pushed image reads back in skopeo with the same manifest bytes and config; layers over the limit go in chunks")
    func pushThenSkopeoInspect() async throws {
        try await RegistryProcess.with { registry in
            try await TemporaryDirectory.with(prefix: "uni-push") { folder in
                let store = try ImageStore(root: folder.path + "/images")
                let image = try makeImage(in: store, as: "app:1")
                let manifest = try store.manifest(image.digest)
                let client = RegistryClient(configuration: Self.chunked)
                let log = ProgressLog()
                let destination = try ImageReference.parse("\(registry.registry)/team/app:1")
                let digest = try await client.push(image, from: store, to: destination, insecure: true, progress: log.callback)
                #expect(digest == image.digest)

                let raw = try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(destination)"])
                #expect(raw == (try store.read(image.digest)))
                #expect(ImageStore.digest(of: raw) == image.digest)
                let config = try skopeo(["inspect", "--config", "--raw", "--tls-verify=false", "docker://\(destination)"])
                #expect(config == (try store.read(manifest.config.digest)))
                // Without --raw, Debian's skopeo 1.9.3 decodes the config as a container image's and refuses (docs/images.md).
                let plain = try runTool("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://\(destination)"])
                #expect(plain.status == 1)
                #expect(plain.error.contains(#"unsupported image-specific operation on artifact with type \"application/vnd.uni.image.config.v1+json\""#))

                // Progress: every blob started and finished, the 3 MiB initrd advanced in steps, the manifest last.
                let initrd = try #require(manifest.layer(UniMediaType.initrd))
                for blob in [manifest.config] + manifest.layers {
                    #expect(log.all.contains(.started(digest: blob.digest, mediaType: blob.mediaType, size: blob.size)))
                    #expect(log.all.contains(.finished(digest: blob.digest)))
                }
                #expect(log.advanced(initrd.digest).count >= 3)
                #expect(log.advanced(initrd.digest).last == initrd.size)
                #expect(log.all.last == .manifest(digest: digest))
                // The registry saw chunks: its upload folder is gone and the blob is there, size intact.
                let blobData = registry.storagePath + "/docker/registry/v2/blobs/sha256/\(initrd.digest.dropFirst(7).prefix(2))/\(initrd.digest.dropFirst(7))/data"
                let attributes = try FileManager.default.attributesOfItem(atPath: blobData)
                #expect((attributes[.size] as? NSNumber)?.uint64Value == initrd.size)
            }
        }
    }

    @Test("a second push skips every blob; a push to another repository of the registry mounts them")
    func skipAndMount() async throws {
        try await RegistryProcess.with { registry in
            try await TemporaryDirectory.with(prefix: "uni-push") { folder in
                let store = try ImageStore(root: folder.path + "/images")
                let image = try makeImage(in: store, as: "app:1", initrdBytes: 1 << 20)
                let manifest = try store.manifest(image.digest)
                let blobs = ([manifest.config] + manifest.layers).map(\.digest)
                let client = RegistryClient(configuration: Self.chunked)
                _ = try await client.push(image, from: store, to: try ImageReference.parse("\(registry.registry)/a:1"), insecure: true) { _ in }

                let again = ProgressLog()
                _ = try await client.push(image, from: store, to: try ImageReference.parse("\(registry.registry)/a:2"), insecure: true, progress: again.callback)
                #expect(again.skipped == Dictionary(uniqueKeysWithValues: blobs.map { ($0, RegistryProgress.SkipReason.alreadyPresent) }))

                let other = ProgressLog()
                let b = try ImageReference.parse("\(registry.registry)/b:1")
                let digest = try await client.push(image, from: store, to: b, insecure: true, progress: other.callback)
                #expect(other.skipped == Dictionary(uniqueKeysWithValues: blobs.map { ($0, RegistryProgress.SkipReason.mounted(from: "a")) }))
                #expect(try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(b)"]) == (try store.read(digest)))
            }
        }
    }

    @Test("what skopeo copy puts in the registry, pull stores with the same digests and bytes")
    func skopeoCopyThenPull() async throws {
        try await RegistryProcess.with { registry in
            try await TemporaryDirectory.with(prefix: "uni-pull") { folder in
                let source = try ImageStore(root: folder.path + "/source")
                let image = try makeImage(in: source, as: "app:1")
                let client = RegistryClient(configuration: Self.chunked)
                _ = try await client.push(image, from: source, to: try ImageReference.parse("\(registry.registry)/a:1"), insecure: true) { _ in }
                _ = try skopeo(["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://\(registry.registry)/a:1", "docker://\(registry.registry)/b:1"])

                let store = try ImageStore(root: folder.path + "/fresh")
                let log = ProgressLog()
                let reference = try ImageReference.parse("\(registry.registry)/b:1")
                let pulled = try await client.pull(reference, into: store, insecure: true, progress: log.callback)
                #expect(pulled.digest == image.digest)
                #expect(pulled.reference == reference)
                #expect(try store.resolve(reference).digest == image.digest)
                let manifest = try store.manifest(pulled.digest)
                for blob in [manifest.config] + manifest.layers {
                    #expect(FileManager.default.contentsEqual(atPath: store.blobPath(blob.digest), andPath: source.blobPath(blob.digest)))
                    #expect(log.all.contains(.finished(digest: blob.digest)))
                }
                #expect(log.all.last == .manifest(digest: image.digest))
                #expect(try store.config(of: manifest).kernelCommandLine == "console=ttyS0")

                // Pulled again: every blob is already there.
                let again = ProgressLog()
                _ = try await client.pull(reference, into: store, insecure: true, progress: again.callback)
                #expect(again.skipped.count == 3)
            }
        }
    }

    @Test("a tag the registry does not have: manifest unknown, naming it")
    func manifestUnknown() async throws {
        try await RegistryProcess.with { registry in
            try await TemporaryDirectory.with(prefix: "uni-pull") { folder in
                let store = try ImageStore(root: folder.path + "/images")
                let reference = try ImageReference.parse("\(registry.registry)/nothing:9")
                let error = await #expect(throws: UniError.self) { try await RegistryClient().pull(reference, into: store, insecure: true) { _ in } }
                #expect(error?.code == .notFound)
                #expect(error?.message.hasPrefix("cannot pull \(reference): manifest unknown: registry \(registry.registry) has no nothing:9") == true)
                #expect(try store.images().isEmpty)
            }
        }
    }

    @Test("basic auth: no credentials and wrong ones give the 401 line with `uni login`; right ones push, pull and log in")
    func basicAuth() async throws {
        let right = RegistryCredentials(username: "ci", password: "s3cret pass")
        try await RegistryProcess.with(credentials: right) { registry in
            try await TemporaryDirectory.with(prefix: "uni-auth") { folder in
                let store = try ImageStore(root: folder.path + "/images")
                let image = try makeImage(in: store, as: "app:1", initrdBytes: 64 << 10)
                let destination = try ImageReference.parse("\(registry.registry)/app:1")
                let credentials = RegistryCredentialStore(path: folder.path + "/registry-auth.json")

                let anonymous = await #expect(throws: UniError.self) {
                    try await RegistryClient(credentials: credentials).push(image, from: store, to: destination, insecure: true) { _ in }
                }
                #expect(anonymous?.code == .unauthenticated)
                #expect(anonymous?.message == "cannot push app:1 to \(destination): registry \(registry.registry) requires authentication to push app (401): run `uni login \(registry.registry)`")

                try credentials.save(RegistryCredentials(username: "ci", password: "wrong"), for: registry.registry)
                let wrong = await #expect(throws: UniError.self) {
                    try await RegistryClient(credentials: credentials).pull(destination, into: store, insecure: true) { _ in }
                }
                #expect(wrong?.message == "cannot pull \(destination): registry \(registry.registry) rejected the credentials of 'ci' to pull app (401): check them with `uni login \(registry.registry)`")
                await #expect(throws: UniError.self) {
                    try await RegistryClient().login(registry: registry.registry, credentials: RegistryCredentials(username: "ci", password: "wrong"), insecure: true)
                }

                try await RegistryClient().login(registry: registry.registry, credentials: right, insecure: true)
                try credentials.save(right, for: registry.registry)
                let client = RegistryClient(credentials: credentials)
                let digest = try await client.push(image, from: store, to: destination, insecure: true) { _ in }
                let fresh = try ImageStore(root: folder.path + "/fresh")
                #expect(try await client.pull(destination, into: fresh, insecure: true) { _ in }.digest == digest)
                #expect(try skopeo(["inspect", "--raw", "--tls-verify=false", "--creds", "ci:s3cret pass", "docker://\(destination)"]) == (try store.read(digest)))
            }
        }
    }
}
