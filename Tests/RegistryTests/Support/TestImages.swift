import Foundation
import Synchronization
import RegistryTestSupport
import UniKit

/// Bytes that do not compress or repeat: each call differs.
func randomBytes(_ count: Int) -> Data {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: count)
    data.withUnsafeMutableBytes { buffer in
        let words = buffer.bindMemory(to: UInt64.self)
        for index in words.indices { words[index] = generator.next() }
        for index in (words.count * 8)..<count { buffer[index] = UInt8.random(in: 0...255) }
    }
    return data
}

/// A Uni kernel image in `store`: a config, a 4 KiB kernel and an initrd
/// of `initrdBytes` (big enough for the chunked upload path).
func makeImage(in store: ImageStore, as name: String, initrdBytes: Int = 3 << 20) throws -> StoredImage {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let config = try store.put(try encoder.encode(UniImageConfig(kernelCommandLine: "console=ttyS0", memory: ByteSize(bytes: 64 << 20), cpus: 1, exposedPorts: ["80/tcp"])),
                               mediaType: UniMediaType.config)
    let kernel = try store.put(randomBytes(4096), mediaType: UniMediaType.kernel)
    let initrd = try store.put(randomBytes(initrdBytes), mediaType: UniMediaType.initrd)
    let manifest = ImageManifest(config: config, layers: [kernel, initrd], annotations: ["org.opencontainers.image.title": name])
    return try store.tag(manifest, as: try ImageReference.parse(name))
}

/// Collects progress events.
final class ProgressLog: Sendable {
    private let events = Mutex<[RegistryProgress]>([])
    var all: [RegistryProgress] { events.withLock { $0 } }
    var callback: @Sendable (RegistryProgress) -> Void { { event in self.events.withLock { $0.append(event) } } }

    /// The `skipped` reasons, by digest.
    var skipped: [String: RegistryProgress.SkipReason] {
        var result: [String: RegistryProgress.SkipReason] = [:]
        for case .skipped(let digest, let reason) in all { result[digest] = reason }
        return result
    }

    /// The `advanced` byte counts of `digest`.
    func advanced(_ digest: String) -> [UInt64] {
        all.compactMap { if case .advanced(digest, let bytes, _) = $0 { return bytes } else { return nil } }
    }
}

/// Every blob file of `store` (digests).
func storedBlobs(_ store: ImageStore) -> Set<String> {
    Set(((try? FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256")) ?? []).map { "sha256:" + $0 })
}
