/// A node's advertised address as stored in the registry, parsed for an HTTP request:
/// `http://host:port`, `host:port` or `[::1]:port` (no TLS in this example).
struct NodeAddress: Sendable, Hashable, CustomStringConvertible {
    var host: String
    var port: Int

    /// Parses an address; `nil` when it is not `[http://]host[:port][/]` (the port defaults to 80).
    init?(_ text: String) {
        var rest = Substring(text)
        if rest.hasPrefix("http://") { rest = rest.dropFirst("http://".count) } else if rest.contains("://") { return nil }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else { return nil }
            rest = rest[..<slash]
        }
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            host = String(rest)
        }
        guard !host.isEmpty, !host.contains(":") || text.contains("[") else { return nil }
        port = 80
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else { return nil }
            port = parsed
        }
    }

    /// `host:port`, with brackets around an IPv6 host: the `Host` header.
    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
