import Foundation
import Presence

/// The text of `text/event-stream` frames (WHATWG HTML, "Server-sent events").
enum ServerSentEvent {
    /// `id:` the position after `change`, `event:` its kind, `data:` its fields as one line of JSON
    /// (`socketId`, `nodeId`, `userId`, `incarnation`, `connectedAt`, `reason` when present, and `at`).
    static func change(_ change: PresenceChange, position: ChangePosition) -> String {
        "id: \(position)\nevent: \(change.kind.rawValue)\ndata: \(json(change))\n\n"
    }

    /// The final event of a stream ended by the server: `event: stream-error`, `data: {"code","message"}`,
    /// with the position reached so far so that a client's reconnect resumes from it.
    static func error(code: String, message: String, position: ChangePosition) -> String {
        var json = JSONText(capacity: 128)
        json.raw("{")
        json.key("code")
        json.string(code)
        json.comma()
        json.key("message")
        json.string(message)
        json.raw("}")
        let id = position.last.isEmpty ? "" : "id: \(position)\n"
        return "\(id)event: stream-error\ndata: \(String(decoding: json.bytes, as: UTF8.self))\n\n"
    }

    /// A comment line, which clients ignore: it keeps idle connections open through proxies.
    static func comment(_ text: String) -> String { ": \(text)\n\n" }

    /// The keep-alive comment, with `id:` the subscriber's position: an event without data sets
    /// EventSource's last event id and dispatches nothing, so an idle (filtered) subscriber's
    /// reconnect resumes from where the feed got to.
    static func keepAlive(position: ChangePosition) -> String {
        position.last.isEmpty ? comment("keep-alive") : ": keep-alive\nid: \(position)\n\n"
    }

    /// The change's fields as one line of JSON (ids are strings: escaped, never a raw newline).
    static func json(_ change: PresenceChange) -> String {
        var json = JSONText(capacity: 192)
        json.raw("{")
        fields(change, into: &json)
        json.raw("}")
        return String(decoding: json.bytes, as: UTF8.self)
    }

    /// The change's fields as members of a JSON object, without its braces (for objects that add
    /// members of their own, such as a webhook's change).
    static func fields(_ change: PresenceChange, into json: inout JSONText) {
        if let socketID = change.socketID { json.key("socketId"); json.string(socketID); json.comma() }
        if let nodeID = change.nodeID { json.key("nodeId"); json.string(nodeID); json.comma() }
        if let userID = change.userID { json.key("userId"); json.string(userID); json.comma() }
        if let incarnation = change.incarnation { json.key("incarnation"); json.string(incarnation); json.comma() }
        if let connectedAt = change.connectedAt { json.key("connectedAt"); json.string(Timestamp.string(connectedAt)); json.comma() }
        if let reason = change.reason { json.key("reason"); json.string(reason.rawValue); json.comma() }
        json.key("at")
        json.string(Timestamp.string(change.at))
    }
}
