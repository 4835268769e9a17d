import Presence

/// What `presence serve` was asked to do, once parsed and checked.
struct ServeOptions: Sendable {
    var host = "127.0.0.1"
    var port = 8080
    /// `nil`: start an embedded redis-server.
    var redisURL: String?
    var tokens = AccessTokens()
    var insecureNoAuth = false
    /// Origins allowed to call the API from a browser (CORS); none by default.
    var corsOrigins: Set<Origin> = []
    /// Answer queries from a replica found through Sentinel (reports always go to the primary).
    var readFromReplicas = false
    var presence = PresenceConfiguration()
    /// `GET /v1/changes` (server-sent events): poll and keep-alive intervals, subscriber buffers.
    var changeFeed = ChangeFeedConfiguration()

    /// Refuses to expose an unauthenticated API beyond loopback.
    func checkExposure() throws {
        if !tokens.isEnabled && !Loopback.isLoopback(host) && !insecureNoAuth {
            throw ConfigurationError("no token is configured (PRESENCE_READ_TOKEN / PRESENCE_WRITE_TOKEN or --token-file), so the API binds to loopback only; refusing --host \(host) (add --insecure-no-auth to expose it without authentication)")
        }
    }

    /// Parses `--cors-origin` values.
    /// - Throws: ``ConfigurationError`` for anything but `scheme://host[:port]` (http or https).
    static func corsOrigins(_ values: [String]) throws -> Set<Origin> {
        Set(try values.map { text in
            guard let origin = Origin(text) else {
                throw ConfigurationError("--cors-origin \(text): expected an origin such as https://dashboard.example.com (http or https, a host, an optional port, no path)")
            }
            return origin
        })
    }

    /// Whether requests must be addressed to a loopback name: without tokens, unless
    /// `--insecure-no-auth` exposes the API on another address.
    var requiresLoopbackHost: Bool { !tokens.isEnabled && Loopback.isLoopback(host) }
}
