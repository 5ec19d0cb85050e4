/// A host port forwarded to a guest port through QEMU's user-mode network.
public struct PortMapping: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The transport protocol of a mapping.
    public enum TransportProtocol: String, Hashable, Sendable, Codable {
        case tcp
        case udp
    }

    /// The host address to bind; `nil` binds every address (QEMU's default).
    public var hostAddress: String?
    /// The port on the host.
    public var hostPort: UInt16
    /// The port inside the guest.
    public var guestPort: UInt16
    /// TCP or UDP.
    public var transportProtocol: TransportProtocol

    /// Creates a mapping.
    public init(hostAddress: String? = nil, hostPort: UInt16, guestPort: UInt16, transportProtocol: TransportProtocol = .tcp) {
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.guestPort = guestPort
        self.transportProtocol = transportProtocol
    }

    /// Parses `HOST:GUEST`, `HOST:GUEST/udp` or `ADDRESS:HOST:GUEST[/tcp|udp]`.
    /// - Throws: ``UniError`` naming the text and the allowed form.
    public init(parsing text: String) throws {
        let form = "expected HOST:GUEST[/tcp|udp] with ports 1-65535, optionally prefixed by an IPv4 address (for example 8080:80 or 127.0.0.1:8080:80/tcp)"
        var spec = Substring(text)
        var proto = TransportProtocol.tcp
        if let slash = spec.lastIndex(of: "/") {
            guard let parsed = TransportProtocol(rawValue: String(spec[spec.index(after: slash)...]).lowercased()) else {
                throw UniError.invalid("invalid port mapping '\(text)': \(form)")
            }
            proto = parsed
            spec = spec[..<slash]
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        func port(_ part: Substring) throws -> UInt16 {
            guard part.allSatisfy(\.isASCII), let value = UInt16(part), value > 0 else {
                throw UniError.invalid("invalid port mapping '\(text)': \(form)")
            }
            return value
        }
        switch parts.count {
        case 2:
            self.init(hostPort: try port(parts[0]), guestPort: try port(parts[1]), transportProtocol: proto)
        case 3:
            guard PortMapping.isIPv4(parts[0]) else {
                throw UniError.invalid("invalid port mapping '\(text)': '\(parts[0])' is not an IPv4 address; \(form)")
            }
            self.init(hostAddress: String(parts[0]), hostPort: try port(parts[1]), guestPort: try port(parts[2]), transportProtocol: proto)
        default:
            throw UniError.invalid("invalid port mapping '\(text)': \(form)")
        }
    }

    /// Whether `text` is a dotted IPv4 address: four numbers 0-255 of ASCII
    /// digits, without signs or leading zeros. Strict because the address
    /// goes verbatim into QEMU's `hostfwd=` option, whose own parser
    /// (`inet_aton`) would read `010` as octal 8.
    public static func isIPv4(_ text: some StringProtocol) -> Bool {
        let octets = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { octet in
            guard (1...3).contains(octet.count), octet.allSatisfy({ (48...57).contains($0) }) else { return false }
            guard octet.count == 1 || octet.first != 48 else { return false }
            return octet.reduce(0) { $0 * 10 + Int($1 - 48) } <= 255
        }
    }

    /// Checks the values that reach QEMU's `hostfwd=` option, for mappings
    /// that were not parsed from text (API bodies, embedders).
    /// - Throws: ``UniError`` naming the bad address or port and what is allowed.
    public func validate() throws {
        if let hostAddress, !PortMapping.isIPv4(hostAddress) {
            throw UniError.invalid("invalid port mapping: host address '\(hostAddress.escapingControlCharacters)' is not an IPv4 address: expected four numbers 0-255 such as 127.0.0.1")
        }
        for (side, port) in [("host", hostPort), ("guest", guestPort)] where port == 0 {
            throw UniError.invalid("invalid port mapping '\(self)': \(side) port 0 is out of range (1-65535)")
        }
    }

    /// `8080:80/tcp` or `127.0.0.1:8080:80/tcp`: the `-p` form.
    public var description: String {
        (hostAddress.map { "\($0):" } ?? "") + "\(hostPort):\(guestPort)/\(transportProtocol.rawValue)"
    }

    /// `127.0.0.1:8080->80/tcp`, or `0.0.0.0:8080->80/tcp` for every
    /// address: docker's PORTS column.
    public var publishedDescription: String {
        "\(hostAddress ?? "0.0.0.0"):\(hostPort)->\(guestPort)/\(transportProtocol.rawValue)"
    }

    enum CodingKeys: String, CodingKey {
        case hostAddress = "host_address"
        case hostPort = "host_port"
        case guestPort = "guest_port"
        case transportProtocol = "protocol"
    }

    /// Decodes a mapping; `protocol` is optional (TCP). Ports that do not
    /// fit 16 bits are named with the allowed range; ``validate()`` checks the rest.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostAddress = try c.decodeIfPresent(String.self, forKey: .hostAddress)
        hostPort = try c.decodeWholeNumber(UInt16.self, forKey: .hostPort, allowed: "1-65535")
        guestPort = try c.decodeWholeNumber(UInt16.self, forKey: .guestPort, allowed: "1-65535")
        let name = try c.decodeIfPresent(String.self, forKey: .transportProtocol)
        guard let proto = TransportProtocol(rawValue: name ?? "tcp") else {
            throw DecodingError.dataCorruptedError(forKey: .transportProtocol, in: c,
                                                   debugDescription: "'\(name?.escapingControlCharacters ?? "")' is not tcp or udp")
        }
        transportProtocol = proto
    }
}
