/// Parses the durations people type: `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
public enum DurationParser {
    /// Parses `text`.
    /// - Parameter flag: the option's name, for the error message.
    /// - Throws: ``UniError`` naming the text and the allowed form.
    public static func parse(_ text: String, flag: String) throws -> Duration {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(text)
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * scale <= 86_400 else {
            throw UniError.invalid("invalid \(flag) '\(text)': expected a duration such as 10s, 500ms or 2m (at most 24h)")
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }
}
