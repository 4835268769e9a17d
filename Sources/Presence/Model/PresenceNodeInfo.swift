import Foundation

/// A node as the registry sees it: alive, or dead and not yet forgotten.
public struct PresenceNodeInfo: Sendable, Hashable {
    /// The node's id.
    public var nodeID: String
    /// Its current incarnation (a fresh id per process start).
    public var incarnation: String
    /// Its advertised address (`""` when it gave none).
    public var address: String
    /// Whether its last heartbeat is younger than its TTL.
    public var alive: Bool
    /// When this incarnation started (the node's clock).
    public var startedAt: Date
    /// Its last heartbeat (the Redis server's clock).
    public var lastHeartbeatAt: Date
    /// When it reads as dead unless it heartbeats again (the Redis server's clock).
    public var expiresAt: Date
    /// Sockets it held at its last heartbeat.
    public var socketCount: Int
    /// Distinct users among them at its last heartbeat.
    public var userCount: Int
    /// Small string map it attached.
    public var meta: [String: String]

    /// Creates a value.
    public init(nodeID: String, incarnation: String, address: String, alive: Bool, startedAt: Date, lastHeartbeatAt: Date, expiresAt: Date, socketCount: Int, userCount: Int, meta: [String: String]) {
        self.nodeID = nodeID
        self.incarnation = incarnation
        self.address = address
        self.alive = alive
        self.startedAt = startedAt
        self.lastHeartbeatAt = lastHeartbeatAt
        self.expiresAt = expiresAt
        self.socketCount = socketCount
        self.userCount = userCount
        self.meta = meta
    }
}
