/// Parses the line counts people type for `logs --tail`.
public enum LineCountParser {
    /// Parses `text`: a whole number, 0 or more.
    /// - Parameter flag: the option's name, for the error message (`--tail`, `tail`).
    /// - Throws: ``UniError`` naming the text and the allowed form.
    public static func parse(_ text: String, flag: String) throws -> Int {
        guard text.utf8.allSatisfy({ (48...57).contains($0) }), let value = Int(text) else {
            throw UniError.invalid("invalid \(flag) '\(text)': expected a whole number of lines, 0 or more")
        }
        return value
    }
}
