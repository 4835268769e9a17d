import Foundation

/// A change a node reports about one of its sockets.
public enum SocketEvent: Sendable, Hashable {
    /// The node accepted the socket.
    case connect(socketID: String, userID: String?, meta: [String: String], connectedAt: Date)
    /// The socket is gone. `userID`, when the node knows it, saves a round trip.
    case disconnect(socketID: String, userID: String?)

    /// The socket the event is about.
    public var socketID: String {
        switch self {
        case .connect(let id, _, _, _), .disconnect(let id, _): return id
        }
    }

    /// Checks every id and the meta map.
    /// - Throws: ``PresenceError`` naming the bad field.
    public func validate() throws(PresenceError) {
        switch self {
        case .connect(let socketID, let userID, let meta, _):
            try PresenceID.validate(socketID, field: "socketId")
            if let userID { try PresenceID.validate(userID, field: "userId") }
            try PresenceMeta.validate(meta)
        case .disconnect(let socketID, let userID):
            try PresenceID.validate(socketID, field: "socketId")
            if let userID { try PresenceID.validate(userID, field: "userId") }
        }
    }
}

/// What applying one ``SocketEvent`` did.
public enum SocketEventOutcome: Sendable, Hashable {
    /// A connect for a socket this node incarnation did not hold.
    case created
    /// A connect for a socket this node incarnation already held (record replaced).
    case updated
    /// A connect older than the one another node already reported for the socket: ignored. (The
    /// client reconnected elsewhere before this report arrived.)
    case superseded
    /// A disconnect that removed the socket.
    case removed
    /// A disconnect for a socket absent or held by another node: nothing changed.
    case notHeld
}
