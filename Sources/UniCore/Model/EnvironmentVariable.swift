#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Parsing of the `KEY=VALUE` environment given to a guest.
///
/// Names follow POSIX shell rules (`[A-Za-z_][A-Za-z0-9_]*`); values are any
/// text without a line break or NUL, since the guest reads one variable per line.
public enum EnvironmentVariables {
    /// Parses one `KEY=VALUE`.
    /// - Throws: ``UniError`` naming the text and the allowed form.
    public static func parse(_ text: String) throws -> (name: String, value: String) {
        guard let equals = text.firstIndex(of: "=") else {
            throw UniError.invalid("invalid environment variable '\(text)': expected KEY=VALUE")
        }
        let name = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        try validate(name: name, value: value, original: text)
        return (name, value)
    }

    /// Parses an env file: one `KEY=VALUE` per line; blank lines and lines
    /// starting with `#` are skipped.
    /// - Throws: ``UniError`` naming the file, the line number and the text.
    public static func parseFile(contents: String, path: String) throws -> [String: String] {
        var result: [String: String] = [:]
        // Character-wise split: "\r\n" is one newline Character in Swift.
        for (index, rawLine) in contents.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = String(rawLine)
            let trimmed = line.trimmingSpaces()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                let (name, value) = try parse(line)
                result[name] = value
            } catch let error as UniError {
                throw UniError.invalid("\(path):\(index + 1): \(error.message)")
            }
        }
        return result
    }

    /// Checks a name and value pair.
    /// - Throws: ``UniError`` when the name is not a shell identifier or the value has a line break or NUL.
    public static func validate(name: String, value: String, original: String? = nil) throws {
        let shown = original ?? "\(name)=\(value)"
        let isIdentifier = name.utf8.first.map { $0 == 95 || isLetter($0) } == true
            && name.utf8.allSatisfy { $0 == 95 || isLetter($0) || (48...57).contains($0) }
        guard isIdentifier else {
            throw UniError.invalid("invalid environment variable '\(shown)': the name must match [A-Za-z_][A-Za-z0-9_]*")
        }
        // A bare "\r" too: a guest reading lines may break there, and read
        // the rest of the value as another variable.
        guard !value.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) else {
            throw UniError.invalid("invalid environment variable '\(name)': the value must not contain a line break (\\n, \\r) or NUL")
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (65...90).contains(byte) || (97...122).contains(byte) }
}
