#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The body of `GET /v1/info`.
public struct DaemonInfo: Codable, Sendable, Hashable {
    /// The daemon's version.
    public var version: String
    /// The accelerator new VMs run with.
    public var accelerator: Accelerator
    /// The daemon's data dir.
    public var dataDirectory: String
    /// The daemon's process id.
    public var pid: Int32
    /// How the host enforces resource quotas (`v2`, `v1`, `none`); `nil` from an older daemon.
    public var cgroupMode: CgroupMechanism?
    /// The cgroup root the daemon uses (`unid --cgroup-root`).
    public var cgroupRoot: String?
    /// Why quotas are not enforced, when the mode is `none`.
    public var cgroupReason: String?

    /// Creates an info body.
    public init(version: String, accelerator: Accelerator, dataDirectory: String, pid: Int32,
                cgroupMode: CgroupMechanism? = nil, cgroupRoot: String? = nil, cgroupReason: String? = nil) {
        self.version = version
        self.accelerator = accelerator
        self.dataDirectory = dataDirectory
        self.pid = pid
        self.cgroupMode = cgroupMode
        self.cgroupRoot = cgroupRoot
        self.cgroupReason = cgroupReason
    }

    enum CodingKeys: String, CodingKey {
        case version, accelerator, dataDirectory = "data_dir", pid
        case cgroupMode = "cgroup_mode", cgroupRoot = "cgroup_root", cgroupReason = "cgroup_reason"
    }
}

/// The body of every API error response: `{"error": "...", "code": "..."}`.
public struct APIErrorBody: Codable, Sendable, Hashable {
    /// One line for a person.
    public var error: String
    /// The ``UniError/Code-swift.struct`` name.
    public var code: String

    /// Creates an error body.
    public init(error: String, code: String) {
        self.error = error
        self.code = code
    }
}
