#if canImport(Glibc)
import Glibc
#endif

/// Where environment variables are read: the process's own, one `getenv`
/// at a time (copying the whole environment into a dictionary costs the
/// CLI's start-up ~0.2 ms), or fixed values in tests:
/// `environment: ["UNI_HOME": "/tmp/u"]`.
public struct EnvironmentLookup: Sendable, ExpressibleByDictionaryLiteral {
    private let read: @Sendable (String) -> String?

    /// Reads through `read`.
    public init(_ read: @escaping @Sendable (String) -> String?) {
        self.read = read
    }

    /// Fixed values.
    public init(dictionaryLiteral elements: (String, String)...) {
        let values = Dictionary(elements, uniquingKeysWith: { $1 })
        read = { values[$0] }
    }

    /// This process's environment.
    public static let process = EnvironmentLookup { name in getenv(name).map { String(cString: $0) } }

    /// The value of `name`, or `nil` when it is not set.
    public subscript(name: String) -> String? { read(name) }
}
