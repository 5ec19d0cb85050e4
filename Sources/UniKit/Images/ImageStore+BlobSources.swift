import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where blobs came from or went to (`images/blob-sources.json`): for each
/// digest, the registry repositories (`registry/repository`) that are
/// known to hold it, newest first, at most ``ImageStore/maximumSourcesPerBlob``.
///
/// The registry client writes it after every successful pull and push and
/// reads it to choose a cross-repository mount: pushing to
/// `registry/b` a blob that `registry/a` is known to hold asks the
/// registry to mount it from `a` instead of uploading it. It is a hint: a
/// stale entry costs one refused mount (the registry then answers with an
/// upload session, and the blob is uploaded).
extension ImageStore {
    /// How many repositories are remembered per blob.
    static let maximumSourcesPerBlob = 8

    var blobSourcesPath: String { root + "/blob-sources.json" }

    private static let sourcesLock = Mutex(())

    /// The repositories (`registry/repository`) known to hold `digest`, newest first.
    public func knownSources(of digest: String) -> [String] {
        readSources()[digest] ?? []
    }

    /// Remembers that `repository` (`registry/repository`) holds `digests`.
    /// Entries of blobs no longer in the store are dropped on the way.
    /// Failures are ignored: the record is a hint.
    func recordSources(_ digests: [String], repository: String) {
        Self.sourcesLock.withLock { _ in
            let lockFile = open(root + "/blob-sources.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard lockFile >= 0 else { return }
            defer { close(lockFile) }
            while flock(lockFile, LOCK_EX) != 0, errno == EINTR {}
            var sources = readSources()
            for digest in digests {
                var list = sources[digest] ?? []
                list.removeAll { $0 == repository }
                list.insert(repository, at: 0)
                sources[digest] = Array(list.prefix(Self.maximumSourcesPerBlob))
            }
            sources = sources.filter { digest, _ in access(blobPath(digest), F_OK) == 0 || digests.contains(digest) }
            guard let data = try? JSONEncoder().encode(sources) else { return }
            try? FileVMStore.writeAtomically(data, to: blobSourcesPath, sync: false)
        }
    }

    private func readSources() -> [String: [String]] {
        guard let data = FileManager.default.contents(atPath: blobSourcesPath) else { return [:] }
        return (try? JSONDecoder().decode([String: [String]].self, from: data)) ?? [:]
    }
}
