import Foundation
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
    /// Webhooks the change stream is delivered to (`--webhook`), each by one instance at a time.
    var webhooks: [WebhookConfiguration] = []

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

    /// Parses the webhook options: `urls` (`--webhook`), the kinds they get, the signing secret
    /// (required: every batch is signed) and the POST timeout in seconds.
    /// - Throws: ``ConfigurationError`` for a bad URL or kind, a URL given twice, no secret, a
    ///   timeout that is not positive, or webhooks with the change stream off.
    static func webhooks(urls: [String], types: [String], secret: String?, timeout: Double?, changes: Bool) throws -> [WebhookConfiguration] {
        guard !urls.isEmpty else {
            if !types.isEmpty { throw ConfigurationError("--webhook-types needs --webhook") }
            return []
        }
        guard changes else { throw ConfigurationError("--webhook delivers the change stream: it cannot be used with --changes off") }
        guard let secret, !secret.isEmpty else {
            throw ConfigurationError("--webhook needs a signing secret: set PRESENCE_WEBHOOK_SECRET (or --webhook-secret); receivers check the Presence-Signature header with it")
        }
        var timeoutDuration = Duration.seconds(10)
        if let timeout {
            guard timeout > 0, timeout <= 3600 else { throw ConfigurationError("--webhook-timeout must be a positive number of seconds, at most 3600") }
            timeoutDuration = .milliseconds(Int(timeout * 1000))
        }
        let kinds = try WebhookConfiguration.kinds(types)
        var seen: Set<String> = []
        return try urls.map { text in
            let url = try WebhookConfiguration.url(text)
            guard seen.insert(url.absoluteString).inserted else { throw ConfigurationError("--webhook \(text) is given twice") }
            return WebhookConfiguration(url: url, kinds: kinds, secret: secret, timeout: timeoutDuration)
        }
    }

    /// Whether requests must be addressed to a loopback name: without tokens, unless
    /// `--insecure-no-auth` exposes the API on another address.
    var requiresLoopbackHost: Bool { !tokens.isEnabled && Loopback.isLoopback(host) }
}
