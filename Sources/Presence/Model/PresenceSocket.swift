import Foundation

/// A live socket as the registry sees it.
public struct PresenceSocket: Sendable, Hashable {
    /// The socket's id.
    public var socketID: String
    /// The node holding it.
    public var nodeID: String
    /// The node incarnation that reported it.
    public var nodeIncarnation: String
    /// The node's advertised address (`""` when it gave none).
    public var nodeAddress: String
    /// The user it belongs to, if the node said.
    public var userID: String?
    /// When the node accepted it (the node's clock, millisecond precision).
    public var connectedAt: Date
    /// Small string map the node attached.
    public var meta: [String: String]

    /// Creates a value.
    public init(socketID: String, nodeID: String, nodeIncarnation: String, nodeAddress: String, userID: String?, connectedAt: Date, meta: [String: String]) {
        self.socketID = socketID
        self.nodeID = nodeID
        self.nodeIncarnation = nodeIncarnation
        self.nodeAddress = nodeAddress
        self.userID = userID
        self.connectedAt = connectedAt
        self.meta = meta
    }
}
