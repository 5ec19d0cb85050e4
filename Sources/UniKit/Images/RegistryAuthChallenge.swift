/// One challenge of a `WWW-Authenticate` header (RFC 7235):
/// `Bearer realm="https://auth.example/token",service="registry",scope="repository:app:pull"`.
struct RegistryAuthChallenge: Sendable, Hashable {
    /// `basic` or `bearer` (lowercased).
    var scheme: String
    /// The auth-params, keys lowercased, values unquoted.
    var parameters: [String: String]

    /// Every challenge in `header`; a header may carry several, and a
    /// quoted value may hold commas (`scope="repository:a:pull,push"`).
    static func parse(_ header: String) -> [RegistryAuthChallenge] {
        var challenges: [RegistryAuthChallenge] = []
        let characters = Array(header)
        var index = 0
        func skipSpaces() { while index < characters.count, characters[index] == " " || characters[index] == "\t" { index += 1 } }
        func token() -> String {
            let start = index
            while index < characters.count, !" \t,=\"".contains(characters[index]) { index += 1 }
            return String(characters[start..<index])
        }
        while index < characters.count {
            skipSpaces()
            while index < characters.count, characters[index] == "," { index += 1; skipSpaces() }
            let scheme = token()
            guard !scheme.isEmpty else { index += 1; continue }
            var challenge = RegistryAuthChallenge(scheme: scheme.lowercased(), parameters: [:])
            // auth-params: key=value pairs until a token that is not followed by '=' (the next scheme).
            while index < characters.count {
                skipSpaces()
                while index < characters.count, characters[index] == "," { index += 1; skipSpaces() }
                let mark = index
                let key = token()
                skipSpaces()
                guard !key.isEmpty, index < characters.count, characters[index] == "=" else {
                    index = mark
                    break
                }
                index += 1
                skipSpaces()
                var value = ""
                if index < characters.count, characters[index] == "\"" {
                    index += 1
                    while index < characters.count, characters[index] != "\"" {
                        if characters[index] == "\\", index + 1 < characters.count { index += 1 }
                        value.append(characters[index])
                        index += 1
                    }
                    index += 1
                } else {
                    value = token()
                }
                challenge.parameters[key.lowercased()] = value
            }
            challenges.append(challenge)
        }
        return challenges
    }
}
