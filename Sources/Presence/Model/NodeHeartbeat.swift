import Foundation

/// What a node says about itself when it registers or heartbeats.
public struct NodeHeartbeat: Sendable, Hashable {
    /// The node's id.
    public var nodeID: String
    /// The current process's incarnation.
    public var incarnation: String
    /// Advertised address; `nil` keeps the stored one.
    public var address: String?
    /// When this incarnation started.
    public var startedAt: Date
    /// Sockets held now; `nil` keeps the stored count.
    public var socketCount: Int?
    /// Distinct users among them; `nil` keeps the stored count.
    public var userCount: Int?
    /// Meta map; `nil` keeps the stored one.
    public var meta: [String: String]?

    /// Creates a heartbeat.
    public init(nodeID: String, incarnation: String, address: String? = nil, startedAt: Date, socketCount: Int? = nil, userCount: Int? = nil, meta: [String: String]? = nil) {
        self.nodeID = nodeID
        self.incarnation = incarnation
        self.address = address
        self.startedAt = startedAt
        self.socketCount = socketCount
        self.userCount = userCount
        self.meta = meta
    }

    /// Checks ids, address and meta.
    /// - Throws: ``PresenceError`` naming the bad field.
    public func validate() throws(PresenceError) {
        try PresenceID.validate(nodeID, field: "nodeId")
        try PresenceID.validate(incarnation, field: "incarnation")
        if let address { try PresenceID.validate(address, field: "address") }
        if let meta { try PresenceMeta.validate(meta) }
    }
}

/// The answer to a heartbeat.
public struct HeartbeatResult: Sendable, Hashable {
    /// How the registry saw the node before this heartbeat.
    public enum Status: String, Sendable, Hashable {
        /// Alive with the same incarnation: nothing to do.
        case ok
        /// No record: first start, or Redis lost its state. Write every socket again.
        case new
        /// Same incarnation but it had expired (read as dead). Write every socket again.
        case revived
        /// Another incarnation was registered: the old one's sockets are now dead. Write every socket.
        case replaced
        /// This incarnation had expired and was announced down (changes on), and a watcher is still
        /// disconnecting its sockets: it stays dead until that is done (nothing was written). Keep
        /// heartbeating: the first heartbeat after answers ``revived``.
        case down
    }

    /// How the registry saw the node.
    public var status: Status
    /// When the node now reads as dead unless it heartbeats again (Redis clock).
    public var expiresAt: Date
    /// Members of the node's socket set after the heartbeat.
    public var indexedSockets: Int
    /// The incarnation registered now (the one kept or created when the heartbeat named none).
    public var incarnation: String?

    /// Whether the node must write all its sockets again (not yet while ``Status-swift.enum/down``).
    public var needsResync: Bool { status != .ok && status != .down }
}
