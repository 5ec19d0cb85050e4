import Foundation
import UniKit

// The Uni side of scripts/bench-registry.py: makes an image of a given size
// (and an OCI layout of the same blobs for skopeo), pushes and pulls it with
// RegistryClient, and prints one JSON line per timed operation.
// Usage:
//   RegistryBench make STORE LAYOUT NAME:TAG MIB
//   RegistryBench push STORE NAME:TAG REGISTRY/REPO:TAG
//   RegistryBench pull STORE REGISTRY/REPO:TAG
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("RegistryBench: " + message + "\n").utf8))
    exit(2)
}

func emit(_ fields: [String: Any]) {
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail("usage: RegistryBench make|push|pull ...") }
do {
    switch command {
    case "make":
        guard arguments.count == 5, let mebibytes = Int(arguments[4]) else { fail("usage: RegistryBench make STORE LAYOUT NAME:TAG MIB") }
        let store = try ImageStore(root: arguments[1])
        let disk = arguments[1] + "/../disk.raw"
        // Random bytes: nothing compresses, as for a real disk image's data.
        FileManager.default.createFile(atPath: disk, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: disk))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<mebibytes {
            var chunk = Data(count: 1 << 20)
            chunk.withUnsafeMutableBytes { buffer in
                for index in buffer.bindMemory(to: UInt64.self).indices { buffer.bindMemory(to: UInt64.self)[index] = generator.next() }
            }
            handle.write(chunk)
        }
        try handle.close()
        let layer = try store.importFile(disk, mediaType: UniMediaType.disk)
        try FileManager.default.removeItem(atPath: disk)
        let config = try store.put(try JSONEncoder().encode(UniImageConfig(memory: ByteSize(bytes: 128 << 20))), mediaType: UniMediaType.config)
        let image = try store.tag(ImageManifest(config: config, layers: [layer]), as: try ImageReference.parse(arguments[3]))
        // The same blobs as an OCI image layout, for `skopeo copy oci:LAYOUT:TAG`.
        let layout = arguments[2]
        try FileManager.default.createDirectory(atPath: layout + "/blobs/sha256", withIntermediateDirectories: true)
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: layout + "/oci-layout"))
        for digest in [image.digest, config.digest, layer.digest] {
            try FileManager.default.linkItem(atPath: store.blobPath(digest), toPath: layout + "/blobs/sha256/" + digest.dropFirst(7))
        }
        let manifestSize = try store.read(image.digest).count
        let tag = image.reference.tag ?? "latest"
        let index = #"{"schemaVersion":2,"manifests":[{"mediaType":"\#(UniMediaType.manifest)","digest":"\#(image.digest)","size":\#(manifestSize),"annotations":{"org.opencontainers.image.ref.name":"\#(tag)"}}]}"#
        try Data(index.utf8).write(to: URL(fileURLWithPath: layout + "/index.json"))
        emit(["op": "make", "digest": image.digest, "bytes": image.size])
    case "push":
        guard arguments.count == 4 else { fail("usage: RegistryBench push STORE NAME:TAG REGISTRY/REPO:TAG") }
        let store = try ImageStore(root: arguments[1])
        let image = try store.resolve(try ImageReference.parse(arguments[2]))
        let started = ContinuousClock.now
        let digest = try await RegistryClient().push(image, from: store, to: try ImageReference.parse(arguments[3]), insecure: true) { _ in }
        let elapsed = ContinuousClock.now - started
        emit(["op": "push", "digest": digest, "bytes": image.size, "seconds": Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18])
    case "pull":
        guard arguments.count == 3 else { fail("usage: RegistryBench pull STORE REGISTRY/REPO:TAG") }
        let store = try ImageStore(root: arguments[1])
        let started = ContinuousClock.now
        let image = try await RegistryClient().pull(try ImageReference.parse(arguments[2]), into: store, insecure: true) { _ in }
        let elapsed = ContinuousClock.now - started
        emit(["op": "pull", "digest": image.digest, "bytes": image.size, "seconds": Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18])
    default:
        fail("unknown command '\(command)': expected make, push or pull")
    }
} catch {
    fail("\(error)")
}
