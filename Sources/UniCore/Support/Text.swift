// Small text helpers for code that builds on FoundationEssentials, which
// leaves out the NSString-derived string API (`trimmingCharacters`, ...).

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    package func trimmingSpaces() -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(self[first...last])
    }

    /// The last path component: `/a/b/kernel.elf` -> `kernel.elf`.
    package var lastPathComponent: String {
        let trimmed = self.last == "/" ? String(dropLast()) : String(self)
        return trimmed.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? trimmed
    }

    /// Everything before the last path component: `/a/b/uni` -> `/a/b`.
    package var deletingLastPathComponent: String {
        guard let slash = lastIndex(of: "/") else { return "" }
        return slash == startIndex ? "/" : String(self[..<slash])
    }
}

extension StringProtocol {
    /// The text with control characters written as Swift escapes (`\n`,
    /// `\u{0}`), so that an error message quoting a caller's value stays on
    /// one line whatever the value holds.
    package var escapingControlCharacters: String {
        var result = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Whether the text holds a control character (below U+0020, or DEL).
    package var containsControlCharacter: Bool {
        unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}
