#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A named image: `app:1`, `team/app`, `registry.example:5000/team/app:1`,
/// `app@sha256:<64 hex>`.
///
/// The grammar is the OCI distribution one (docker's `reference` package):
/// the first component names a registry when it has a `.` or a `:`, or is
/// `localhost`; without one the name is local to the data dir's image store
/// (there is no default registry: `uni pull` wants one spelled out). A tag
/// defaults to `latest`. Text that starts with `/` or `.` is a file path,
/// never a reference (``looksLikePath(_:)``).
public struct ImageReference: Hashable, Sendable, CustomStringConvertible, Codable {
    /// `host[:port]` of the registry; `nil` for a local name.
    public var registry: String?
    /// The repository path: lowercase components separated by `/`.
    public var repository: String
    /// The tag; `nil` only when a digest is given without one.
    public var tag: String?
    /// `sha256:<hex>` when the reference pins a manifest.
    public var digest: String?

    /// The tag when none is given.
    public static let defaultTag = "latest"

    /// A reference from its parts, unchecked; ``parse(_:)`` checks text.
    public init(registry: String? = nil, repository: String, tag: String? = ImageReference.defaultTag, digest: String? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Whether `text` names a file rather than an image: it starts with
    /// `/`, `./` or `../` (or is `.`/`..`).
    public static func looksLikePath(_ text: String) -> Bool {
        text.hasPrefix("/") || text.hasPrefix("./") || text.hasPrefix("../") || text == "." || text == ".."
    }

    /// `registry/repository` or `repository`: the REPOSITORY column.
    public var name: String { registry.map { "\($0)/\(repository)" } ?? repository }

    /// `name:tag`, `name@digest` or `name:tag@digest`.
    public var description: String {
        var text = name
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest }
        return text
    }

    /// The same repository with `tag` and no digest.
    public func withTag(_ tag: String) -> ImageReference {
        ImageReference(registry: registry, repository: repository, tag: tag, digest: nil)
    }

    /// Parses `text`.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the text and the part that is wrong.
    public static func parse(_ text: String) throws -> ImageReference {
        func fail(_ why: String) -> UniError {
            UniError.invalid("invalid image reference '\(text.escapingControlCharacters)': \(why)")
        }
        guard !text.isEmpty else { throw fail("it is empty") }
        guard !text.containsControlCharacter, !text.contains(" ") else { throw fail("it must not contain spaces or control characters") }
        var rest = Substring(text)
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let value = String(rest[rest.index(after: at)...])
            guard isDigest(value) else { throw fail("the digest '\(value)' is not sha256: and 64 lowercase hex digits") }
            digest = value
            rest = rest[..<at]
        }
        var tag: String?
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let value = String(rest[rest.index(after: colon)...])
            guard isTag(value) else { throw fail("the tag '\(value)' must be 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'") }
            tag = value
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry: String?
        if components.count > 1, let first = components.first, first.contains(".") || first.contains(":") || first == "localhost" {
            guard isRegistry(first) else { throw fail("the registry '\(first)' is not HOST or HOST:PORT") }
            registry = first
            components.removeFirst()
        }
        guard !components.isEmpty, components.allSatisfy(isPathComponent) else {
            throw fail("the repository '\(components.joined(separator: "/"))' must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'")
        }
        let repository = components.joined(separator: "/")
        guard (registry.map { $0.count + 1 } ?? 0) + repository.count <= 255 else { throw fail("the name is longer than 255 characters") }
        return ImageReference(registry: registry, repository: repository, tag: tag ?? (digest == nil ? defaultTag : nil), digest: digest)
    }

    /// Parses a reference to pull: it must name a registry.
    /// - Throws: ``UniError`` (`invalidArgument`) for a malformed reference or one without a registry.
    public static func parsePullable(_ text: String) throws -> ImageReference {
        let reference = try parse(text)
        _ = try reference.pullRegistry()
        return reference
    }

    /// The registry to pull `self` from.
    /// - Throws: ``UniError`` (`invalidArgument`) when it names none.
    public func pullRegistry() throws -> String {
        guard let registry else {
            throw UniError.invalid("cannot pull '\(self)': it names no registry (give REGISTRY/REPO:TAG, e.g. localhost:5000/\(self))")
        }
        return registry
    }

    /// Checks `self` as where the stored image `source` is pushed: a registry, a tag, no digest.
    /// - Throws: ``UniError`` (`invalidArgument`) saying what to give instead.
    public func checkPushDestination(source: String) throws {
        guard registry != nil else {
            throw UniError.invalid("cannot push '\(self)': it names no registry: give a destination REGISTRY/REPO:TAG (uni push \(source) localhost:5000/\(repository):\(tag ?? ImageReference.defaultTag))")
        }
        guard digest == nil else { throw UniError.invalid("cannot push to '\(self)': a destination names a tag, not a digest") }
    }

    /// `sha256:` and 64 lowercase hex digits.
    public static func isDigest(_ text: String) -> Bool {
        guard text.hasPrefix("sha256:") else { return false }
        let hex = text.utf8.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func isTag(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...128).contains(bytes.count), bytes[0] != UInt8(ascii: "."), bytes[0] != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
    static func isPathComponent(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, isLowerAlphanumeric(first), isLowerAlphanumeric(last) else { return false }
        var index = 0
        while index < bytes.count {
            if isLowerAlphanumeric(bytes[index]) { index += 1; continue }
            // A separator: '.', '_', '__' or a run of '-', between alphanumerics.
            var end = index
            if bytes[index] == UInt8(ascii: "-") {
                while end < bytes.count, bytes[end] == UInt8(ascii: "-") { end += 1 }
            } else if bytes[index] == UInt8(ascii: "_") {
                end += 1
                if end < bytes.count, bytes[end] == UInt8(ascii: "_") { end += 1 }
            } else if bytes[index] == UInt8(ascii: ".") {
                end += 1
            } else {
                return false
            }
            guard end < bytes.count, isLowerAlphanumeric(bytes[end]) else { return false }
            index = end
        }
        return true
    }

    /// `host[:port]`: DNS labels of letters, digits and '-', or a dotted IPv4 address; a port 1-65535.
    package static func isRegistry(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        if parts.count == 2 {
            guard let port = Int(parts[1]), (1...65535).contains(port), parts[1].allSatisfy(\.isASCII) else { return false }
        }
        let labels = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        return !labels.isEmpty && labels.allSatisfy { label in
            let bytes = Array(label.utf8)
            guard let first = bytes.first, let last = bytes.last, isAlphanumeric(first), isAlphanumeric(last), bytes.count <= 63 else { return false }
            return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (97...122).contains(byte) }
    private static func isAlphanumeric(_ byte: UInt8) -> Bool { isLowerAlphanumeric(byte) || (65...90).contains(byte) }

    public init(from decoder: any Decoder) throws {
        self = try ImageReference.parse(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
