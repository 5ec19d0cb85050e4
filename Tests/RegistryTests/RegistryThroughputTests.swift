import Foundation
import Testing
import RegistryTestSupport
import UniKit
import UniKitTesting

/// Push and pull of a 100 MiB image against `skopeo copy` of the same
/// artifact, in the same run: opt-in (`UNI_BENCH_REGISTRY=1`), since it
/// measures; it asserts nothing about time. This runs the debug build,
/// a pessimistic figure for Uni; `scripts/bench-registry.py` runs the
/// release build (Benchmarks/Tools/RegistryBench).
@Suite("Registry throughput against skopeo", .serialized,
       .enabled(if: RegistryTools.available && ProcessInfo.processInfo.environment["UNI_BENCH_REGISTRY"] == "1", "set UNI_BENCH_REGISTRY=1 to measure"))
struct RegistryThroughputTests {
    @Test("100 MiB: push and pull throughput, Uni against skopeo copy")
    func throughput() async throws {
        let mebibytes = Int(ProcessInfo.processInfo.environment["UNI_BENCH_MIB"] ?? "100") ?? 100
        try await RegistryProcess.with { registry in
            try await TemporaryDirectory.with(prefix: "uni-bench") { folder in
                let store = try ImageStore(root: folder.path + "/store")
                let image = try makeImage(in: store, as: "bench:1", initrdBytes: mebibytes << 20)
                let manifest = try store.manifest(image.digest)
                // The same blobs as an OCI layout for skopeo.
                let layout = folder.path + "/layout"
                try FileManager.default.createDirectory(atPath: layout + "/blobs/sha256", withIntermediateDirectories: true)
                try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: layout + "/oci-layout"))
                for digest in [image.digest, manifest.config.digest] + manifest.layers.map(\.digest) {
                    try FileManager.default.linkItem(atPath: store.blobPath(digest), toPath: layout + "/blobs/sha256/" + digest.dropFirst(7))
                }
                let index = #"{"schemaVersion":2,"manifests":[{"mediaType":"\#(UniMediaType.manifest)","digest":"\#(image.digest)","size":\#(try store.read(image.digest).count),"annotations":{"org.opencontainers.image.ref.name":"1"}}]}"#
                try Data(index.utf8).write(to: URL(fileURLWithPath: layout + "/index.json"))
                let client = RegistryClient()
                func seconds(_ body: () async throws -> Void) async rethrows -> Double {
                    let start = ContinuousClock.now
                    try await body()
                    let elapsed = ContinuousClock.now - start
                    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                }
                var results: [String: [Double]] = [:]
                for round in 0..<3 {
                    results["uni push", default: []].append(try await seconds {
                        _ = try await client.push(image, from: store, to: try .parse("\(registry.registry)/uni-\(round):1"), insecure: true) { _ in }
                    })
                    results["skopeo push", default: []].append(try await seconds {
                        _ = try skopeo(["copy", "-q", "--dest-tls-verify=false", "oci:\(layout):1", "docker://\(registry.registry)/skopeo-\(round):1"])
                    })
                    let fresh = try ImageStore(root: folder.path + "/pulled-\(round)")
                    results["uni pull", default: []].append(try await seconds {
                        _ = try await client.pull(try .parse("\(registry.registry)/uni-\(round):1"), into: fresh, insecure: true) { _ in }
                    })
                    results["skopeo pull", default: []].append(try await seconds {
                        _ = try skopeo(["copy", "-q", "--src-tls-verify=false", "docker://\(registry.registry)/skopeo-\(round):1", "oci:\(folder.path)/skopeo-pulled-\(round):1"])
                    })
                    try? FileManager.default.removeItem(atPath: folder.path + "/pulled-\(round)")
                    try? FileManager.default.removeItem(atPath: folder.path + "/skopeo-pulled-\(round)")
                }
                var line = "registry throughput (\(mebibytes) MiB, debug build, medians of 3):"
                var median: [String: Double] = [:]
                for (name, times) in results.sorted(by: { $0.key < $1.key }) {
                    median[name] = times.sorted()[1]
                    line += String(format: " %@ %.3f s (%.0f MiB/s) [%@];", name, median[name]!, Double(mebibytes) / median[name]!, times.map { String(format: "%.3f", $0) }.joined(separator: " "))
                }
                line += String(format: " push ratio %.2fx, pull ratio %.2fx", median["skopeo push"]! / median["uni push"]!, median["skopeo pull"]! / median["uni pull"]!)
                print(line)
            }
        }
    }
}
