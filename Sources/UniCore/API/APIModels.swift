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

    /// Creates an info body.
    public init(version: String, accelerator: Accelerator, dataDirectory: String, pid: Int32) {
        self.version = version
        self.accelerator = accelerator
        self.dataDirectory = dataDirectory
        self.pid = pid
    }

    enum CodingKeys: String, CodingKey {
        case version, accelerator, dataDirectory = "data_dir", pid
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
