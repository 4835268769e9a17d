/// What `chat-load` was asked to do, once parsed and checked.
struct LoadOptions: Sendable {
    /// Websocket URLs (`ws://host:port/ws`), used round robin.
    var urls: [String] = []
    /// Sockets to keep open.
    var sockets = 300
    /// Sockets closed and reopened per second (each is a disconnect and a connect).
    var churn = 0.0
    /// Churn only during the first this many seconds (`nil`: for the whole run).
    var churnFor: Double?
    /// Stop after this many seconds (`nil`: on SIGINT or SIGTERM only).
    var duration: Double?
    /// Sockets get user ids `user-0` … `user-(users-1)`.
    var users = 100
    /// Most first connects started per second, so that a large run ramps up.
    var rampPerSecond = 500.0

    /// `ws://host:port/path` (or `wss://`) as given; `http://host:port` or a bare `host:port` as
    /// `ws://host:port/ws`. `nil` for anything else.
    static func webSocketURL(_ text: String) -> String? {
        if text.hasPrefix("wss://") { return text.count > 6 ? text : nil }
        var rest = Substring(text)
        for scheme in ["ws://", "http://"] where rest.hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            break
        }
        guard !rest.isEmpty, !rest.contains("://"), !rest.hasPrefix("/") else { return nil }
        guard let slash = rest.firstIndex(of: "/") else { return "ws://\(rest)/ws" }
        return rest[slash...] == "/" ? "ws://\(rest[..<slash])/ws" : "ws://\(rest)"
    }
}
