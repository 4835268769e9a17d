import Crypto
import Foundation
import Presence

/// One webhook of `presence serve --webhook URL`: where batches of changes go, which kinds, how
/// they are signed, and the delivery's timings (`docs/changes.md`, "Webhooks").
struct WebhookConfiguration: Sendable {
    /// The receiver: an http or https URL.
    var url: URL
    /// Only these kinds are sent (`--webhook-types`); `nil` sends every kind. Changes left out
    /// still move the webhook's cursor.
    var kinds: Set<PresenceChange.Kind>?
    /// The HMAC-SHA256 key of the `Presence-Signature` header (`--webhook-secret`); never logged.
    var secret: String
    /// How long one POST may take (connect, send, answer) before it counts as failed.
    var timeout: Duration
    /// Changes per POST at most.
    var batchSize: Int
    /// How long the delivery waits before reading again when it has caught up.
    var pollInterval: Duration
    /// The first retry's delay after a failed POST; each further failure doubles it, up to
    /// ``maximumBackoff``; every delay is drawn at random from its upper half (jitter).
    var initialBackoff: Duration
    /// The longest delay between two attempts.
    var maximumBackoff: Duration

    /// Creates a configuration; the defaults suit production.
    init(
        url: URL, kinds: Set<PresenceChange.Kind>? = nil, secret: String, timeout: Duration = .seconds(10), batchSize: Int = 100,
        pollInterval: Duration = .milliseconds(200), initialBackoff: Duration = .seconds(1), maximumBackoff: Duration = .seconds(60)
    ) {
        self.url = url
        self.kinds = kinds
        self.secret = secret
        self.timeout = timeout
        self.batchSize = max(batchSize, 1)
        self.pollInterval = pollInterval
        self.initialBackoff = initialBackoff
        self.maximumBackoff = max(maximumBackoff, initialBackoff)
    }

    /// The webhook's id in Redis keys, `/metrics` and logs: the first 16 hex digits of the SHA-256
    /// of its URL (which may hold credentials, so is never written out whole).
    var id: String {
        SHA256.hash(data: Data(url.absoluteString.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// The URL without its user information, query or fragment, for logs.
    var redactedURL: String {
        var components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        components?.user = nil
        components?.password = nil
        components?.query = nil
        components?.fragment = nil
        return components?.string ?? "?"
    }

    /// The delay before attempt `failures + 1` after `failures` failed ones in a row (≥ 1):
    /// `initialBackoff · 2^(failures − 1)` capped at ``maximumBackoff``, then a random point of its
    /// upper half, so that instances retrying together spread out.
    func backoff(afterFailures failures: Int) -> Duration {
        let initial = Double(initialBackoff.components.seconds) + Double(initialBackoff.components.attoseconds) / 1e18
        let maximum = Double(maximumBackoff.components.seconds) + Double(maximumBackoff.components.attoseconds) / 1e18
        let capped = min(maximum, initial * pow(2, Double(min(max(failures, 1) - 1, 30))))
        return .milliseconds(Int(capped * Double.random(in: 0.5...1.0) * 1000))
    }

    /// Parses one `--webhook` URL.
    /// - Throws: ``ConfigurationError`` unless it is an absolute http or https URL with a host.
    static func url(_ text: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else {
            throw ConfigurationError("--webhook \(text): expected an http or https URL such as https://example.com/presence-hook")
        }
        return url
    }

    /// Parses `--webhook-types a,b` (kind names as in `GET /v1/changes?types=`).
    /// - Throws: ``ConfigurationError`` for an unknown kind or an empty list.
    static func kinds(_ values: [String]) throws -> Set<PresenceChange.Kind>? {
        let names = values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if names.isEmpty {
            if values.isEmpty { return nil }
            throw ConfigurationError("--webhook-types: no kind given")
        }
        return Set(try names.map { name in
            guard let kind = PresenceChange.Kind(rawValue: name) else {
                throw ConfigurationError("--webhook-types: unknown kind \(name) (known: \(PresenceChange.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return kind
        })
    }
}
