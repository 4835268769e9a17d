import Foundation

/// A web origin, `scheme://host[:port]`, as an `Origin` header carries it and `--cors-origin`
/// names it.
struct Origin: Sendable, Hashable, CustomStringConvertible {
    /// `http` or `https`.
    let scheme: String
    let authority: Authority

    /// Parses `text`; `nil` for `null`, another scheme, a path (even `/`) or a malformed authority.
    init?(_ text: some StringProtocol) {
        let text = String(text)
        guard let separator = text.range(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https", let authority = Authority(text[separator.upperBound...]) else { return nil }
        self.scheme = scheme
        self.authority = authority
    }

    /// The port, or the scheme's default.
    var port: Int { authority.port ?? (scheme == "https" ? 443 : 80) }

    /// The origin as a browser serializes it: lowercase, the default port left out.
    var description: String {
        let host = authority.host.contains(":") ? "[\(authority.host)]" : authority.host
        return port == (scheme == "https" ? 443 : 80) ? "\(scheme)://\(host)" : "\(scheme)://\(host):\(port)"
    }

    static func == (a: Origin, b: Origin) -> Bool { a.description == b.description }
    func hash(into hasher: inout Hasher) { hasher.combine(description) }
}
