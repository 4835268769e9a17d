import Foundation
import Hummingbird
import Presence

/// A socket as the API shows it: the live record, or `{socketId, alive: false}` with, when the
/// registry still knows how its record went, `disconnectedAt` and `reason`.
struct SocketResponse: ResponseEncodable, Sendable {
    let socketID: String
    let socket: PresenceSocket?
    /// Overrides liveness for a socket just written by a node whose heartbeat has expired.
    var alive: Bool { socket != nil && aliveOverride != false }
    var aliveOverride: Bool? = nil
    /// How a socket that is not alive went (shown only then).
    var departure: SocketDeparture?

    init(socketID: String, socket: PresenceSocket?, alive: Bool? = nil, departure: SocketDeparture? = nil) {
        self.socketID = socketID
        self.socket = socket
        self.aliveOverride = alive
        self.departure = departure
    }

    init(socketID: String, state: SocketState) {
        self.init(socketID: socketID, socket: state.socket, departure: state.departure)
    }

    enum CodingKeys: String, CodingKey {
        case socketId, alive, nodeId, nodeAddress, userId, connectedAt, meta, disconnectedAt, reason
    }

    /// The departure to show: only for a socket that is not alive.
    var shownDeparture: SocketDeparture? { alive ? nil : departure }

    /// The same object as ``encode(to:)``, written by hand (the hot read paths).
    func write(to json: inout JSONText) {
        json.raw("{")
        json.key("socketId")
        json.string(socketID)
        json.comma()
        json.key("alive")
        json.bool(alive)
        if let socket {
            json.comma()
            json.key("nodeId")
            json.string(socket.nodeID)
            json.comma()
            json.key("nodeAddress")
            json.string(socket.nodeAddress)
            json.comma()
            json.key("userId")
            if let userID = socket.userID { json.string(userID) } else { json.raw("null") }
            json.comma()
            json.key("connectedAt")
            json.string(Timestamp.string(socket.connectedAt))
            json.comma()
            json.key("meta")
            json.stringMap(socket.meta)
        }
        if let departure = shownDeparture {
            json.comma()
            json.key("disconnectedAt")
            json.string(Timestamp.string(departure.disconnectedAt))
            json.comma()
            json.key("reason")
            json.string(departure.reason.rawValue)
        }
        json.raw("}")
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var json = JSONText()
        write(to: &json)
        return json.response()
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(socketID, forKey: .socketId)
        try container.encode(alive, forKey: .alive)
        if let departure = shownDeparture {
            try container.encode(Timestamp.string(departure.disconnectedAt), forKey: .disconnectedAt)
            try container.encode(departure.reason.rawValue, forKey: .reason)
        }
        guard let socket else { return }
        try container.encode(socket.nodeID, forKey: .nodeId)
        try container.encode(socket.nodeAddress, forKey: .nodeAddress)
        try container.encode(socket.userID, forKey: .userId)
        try container.encode(Timestamp.string(socket.connectedAt), forKey: .connectedAt)
        try container.encode(socket.meta, forKey: .meta)
    }
}
