import Presence

/// What `presence serve` was asked to do, once parsed and checked.
struct ServeOptions: Sendable {
    var host = "127.0.0.1"
    var port = 8080
    /// `nil`: start an embedded redis-server.
    var redisURL: String?
    var tokens = AccessTokens()
    var insecureNoAuth = false
    /// Answer queries from a replica found through Sentinel (reports always go to the primary).
    var readFromReplicas = false
    var presence = PresenceConfiguration()

    /// Refuses to expose an unauthenticated API beyond loopback.
    func checkExposure() throws {
        if !tokens.isEnabled && !Self.isLoopback(host) && !insecureNoAuth {
            throw ConfigurationError("no token is configured (PRESENCE_READ_TOKEN / PRESENCE_WRITE_TOKEN or --token-file), so the API binds to loopback only; refusing --host \(host) (add --insecure-no-auth to expose it without authentication)")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
