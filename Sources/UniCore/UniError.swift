/// The one error type of UniKit.
///
/// Every failure a user can meet carries a ``Code`` (which adapters map to
/// CLI exit codes and HTTP statuses in one place) and a one-line message that
/// names the bad value and what is allowed.
public struct UniError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure; new codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidArgument = "invalid_argument"
            case notFound = "not_found"
            case conflict = "conflict"
            case invalidState = "invalid_state"
            case unavailable = "unavailable"
            case hypervisorFailed = "hypervisor_failed"
            case storeFailed = "store_failed"
            case internalError = "internal"
            case payloadTooLarge = "payload_too_large"
            case unauthenticated = "unauthenticated"
            case permissionDenied = "permission_denied"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A value given by the caller is malformed or out of range.
        public static let invalidArgument = Code(.invalidArgument)
        /// No VM (or other object) matches the reference.
        public static let notFound = Code(.notFound)
        /// The request collides with existing state: a duplicate name, a busy port.
        public static let conflict = Code(.conflict)
        /// The operation is not allowed in the VM's current state.
        public static let invalidState = Code(.invalidState)
        /// A required service or resource cannot be reached (daemon, QEMU binary).
        public static let unavailable = Code(.unavailable)
        /// The hypervisor process failed to start or misbehaved.
        public static let hypervisorFailed = Code(.hypervisorFailed)
        /// Reading or writing the VM store failed.
        public static let storeFailed = Code(.storeFailed)
        /// A bug or an unexpected host failure.
        public static let internalError = Code(.internalError)
        /// A request body is larger than the API accepts.
        public static let payloadTooLarge = Code(.payloadTooLarge)

        /// A remote service (a registry) wants credentials, or refused the ones given (HTTP 401).
        public static let unauthenticated = Code(.unauthenticated)
        /// A remote service (a registry) knows who is asking and refuses the operation (HTTP 403).
        public static let permissionDenied = Code(.permissionDenied)

        /// The stable snake_case name used in JSON error bodies.
        public var description: String { value.rawValue }

        /// Parses the snake_case name back, for clients decoding API errors.
        public init?(name: String) {
            guard let value = Value(rawValue: name) else { return nil }
            self.value = value
        }
    }

    /// What went wrong, by kind.
    public var code: Code
    /// One line for a person: names the bad value and what is allowed.
    public var message: String
    /// The lower-level error this one reports (a system call's, a
    /// decoder's), kept for logs and debugging; the message already says
    /// what a person needs. Not part of equality.
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Creates an error that reports `cause`, the error underneath.
    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)?) {
        self.init(code, message)
        self.cause = cause
    }

    public var description: String { message }

    /// Two errors are equal when they say the same: the same code and message.
    public static func == (lhs: UniError, rhs: UniError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }
}

extension UniError {
    /// An `invalidArgument` error with `message`.
    public static func invalid(_ message: String) -> UniError { UniError(.invalidArgument, message) }
}
