/// A `host[:port]` as a Host header or an origin carries it, an IPv6 address in brackets
/// (`[::1]:8080`).
struct Authority: Sendable, Equatable, CustomStringConvertible {
    /// Lowercased, without brackets.
    let host: String
    /// `nil` when none was given.
    let port: Int?

    /// Parses `text`; `nil` when it is not a plain `host[:port]` (empty, a bare IPv6 address,
    /// user info, a path, a port that is not 0–65535).
    init?(_ text: some StringProtocol) {
        let text = Substring(text)
        let hostPart: Substring
        let rest: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            guard hostPart.contains(":") else { return nil }
            rest = text[text.index(after: close)...]
        } else if let colon = text.firstIndex(of: ":") {
            hostPart = text[..<colon]
            rest = text[colon...]
        } else {
            hostPart = text
            rest = ""
        }
        guard !hostPart.isEmpty, hostPart.unicodeScalars.allSatisfy(Self.isHostCharacter) else { return nil }
        if rest.isEmpty {
            port = nil
        } else {
            let digits = rest.dropFirst()
            guard rest.first == ":", (1...5).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(digits), value <= 65535 else { return nil }
            port = value
        }
        host = hostPart.lowercased()
    }

    /// Whether the host is a loopback name or address (see ``Loopback/isLoopback(_:)``).
    var isLoopback: Bool { Loopback.isLoopback(host) }

    /// `host[:port]`, brackets around an IPv6 address.
    var description: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port.map { "\(name):\($0)" } ?? name
    }

    /// Letters, digits and the punctuation of DNS names, IPv4 and IPv6 addresses (`-._~:`). Enough
    /// for every host a browser or an HTTP client sends; anything else is refused.
    private static func isHostCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-._~:".unicodeScalars.contains(scalar))
    }
}
