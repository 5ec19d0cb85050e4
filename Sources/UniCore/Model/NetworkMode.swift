/// How a VM's network reaches out (`uni run --network`, the `network` field
/// of a record). Both are QEMU user-mode networking (docs/security.md,
/// "The guest's reach into the host"); published ports (`-p`) reach the
/// guest in both.
public enum NetworkMode: String, Codable, Sendable, CaseIterable {
    /// The guest can open connections wherever the host can, and reaches
    /// the host's loopback services through its gateway `10.0.2.2`.
    case user
    /// QEMU's `restrict=on`: the guest can reach neither the host nor
    /// anything beyond it; it answers on its published ports only.
    case isolated

    /// Parses `user` or `isolated`.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the value and the allowed ones.
    public static func parse(_ text: String) throws -> NetworkMode {
        guard let mode = NetworkMode(rawValue: text) else {
            throw UniError.invalid("invalid network '\(text.escapingControlCharacters)': use user or isolated")
        }
        return mode
    }

    public init(from decoder: any Decoder) throws {
        self = try NetworkMode.parse(try decoder.singleValueContainer().decode(String.self))
    }
}
