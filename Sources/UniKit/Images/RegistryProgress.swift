/// What a push or a pull is doing, blob by blob, for progress bars.
///
/// Every blob (config and layers) gets ``started(digest:mediaType:size:)``
/// first, then either ``skipped(digest:reason:)``, or zero or more
/// ``advanced(digest:bytes:total:)`` and ``finished(digest:)``. The
/// manifest comes last: ``manifest(digest:)`` once it is stored (pull) or
/// accepted by the registry (push). Events of one operation are delivered
/// in order, on the operation's task; the callback must not block.
public enum RegistryProgress: Sendable, Hashable {
    /// Why a blob was not transferred.
    public enum SkipReason: Sendable, Hashable, CustomStringConvertible {
        /// The destination (registry or local store) already has it.
        case alreadyPresent
        /// The registry mounted it from another repository (`from`) of its own.
        case mounted(from: String)

        /// `already present` or `mounted from REPO`.
        public var description: String {
            switch self {
            case .alreadyPresent: return "already present"
            case .mounted(let repository): return "mounted from \(repository)"
            }
        }
    }

    /// A blob is next: its digest, media type and size.
    case started(digest: String, mediaType: String, size: UInt64)
    /// `bytes` of the blob's `total` have moved (reported about every MiB and at the end).
    case advanced(digest: String, bytes: UInt64, total: UInt64)
    /// The blob did not need to move.
    case skipped(digest: String, reason: SkipReason)
    /// The blob is uploaded (push) or verified and stored (pull).
    case finished(digest: String)
    /// The manifest is pushed or stored: the operation is done.
    case manifest(digest: String)
}

extension ImageTransferEvent {
    /// The wire form of a progress step (`POST /v1/images/pull|push`).
    public init(progress: RegistryProgress) {
        switch progress {
        case .started(let digest, let mediaType, let size):
            self.init(type: "started", digest: digest, mediaType: mediaType, total: size)
        case .advanced(let digest, let bytes, let total):
            self.init(type: "advanced", digest: digest, bytes: bytes, total: total)
        case .skipped(let digest, let reason):
            self.init(type: "skipped", digest: digest, reason: reason.description)
        case .finished(let digest):
            self.init(type: "finished", digest: digest)
        case .manifest(let digest):
            self.init(type: "manifest", digest: digest)
        }
    }
}
