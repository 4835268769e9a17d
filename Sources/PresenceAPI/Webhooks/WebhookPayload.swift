import Crypto
import Foundation
import Presence

/// What a webhook POST carries: the JSON body and its `Presence-Signature`.
enum WebhookPayload {
    /// The signature header's name.
    static let signatureHeader = "Presence-Signature"

    /// `{"position":"<after the batch>","changes":[{"id":"<stream>=<entry id>","type":"<kind>",…}]}`:
    /// each change's members are those of its `GET /v1/changes` event data (`socketId`, `nodeId`,
    /// `userId`, `incarnation`, `connectedAt`, `reason` when they apply, and `at`), after its `id`
    /// (unique and stable, for receivers to drop a batch delivered twice) and `type`. `position`
    /// is where the cursor moves once the batch is acknowledged (a `since=` for `GET /v1/changes`).
    static func body(_ changes: [PresenceChange], position: ChangePosition) -> [UInt8] {
        var json = JSONText(capacity: 64 + 240 * changes.count)
        json.raw("{")
        json.key("position")
        json.string(position.description)
        json.comma()
        json.key("changes")
        json.raw("[")
        for (index, change) in changes.enumerated() {
            if index > 0 { json.comma() }
            json.raw("{")
            json.key("id")
            json.string(change.id.description)
            json.comma()
            json.key("type")
            json.string(change.kind.rawValue)
            json.comma()
            ServerSentEvent.fields(change, into: &json)
            json.raw("}")
        }
        json.raw("]}")
        return json.bytes
    }

    /// `t=<timestamp>,v1=<lowercase hex HMAC-SHA256 keyed by secret of "<timestamp>.<body>">`: the
    /// scheme of Stripe's webhooks. A receiver recomputes it over the raw body, compares in
    /// constant time, and refuses a timestamp too far from its clock (replays).
    static func signature(secret: String, timestamp: Int, body: [UInt8]) -> String {
        var authenticator = HMAC<SHA256>(key: SymmetricKey(data: Data(secret.utf8)))
        authenticator.update(data: Data("\(timestamp).".utf8))
        authenticator.update(data: body)
        let digest = authenticator.finalize()
        return "t=\(timestamp),v1=\(digest.map { String(format: "%02x", $0) }.joined())"
    }
}
