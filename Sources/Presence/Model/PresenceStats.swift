/// Registry totals.
public struct PresenceStats: Sendable, Hashable {
    /// Nodes whose heartbeat is younger than their TTL.
    public var aliveNodes: Int
    /// Dead nodes still listed (neither swept nor past their retention).
    public var deadNodes: Int
    /// Sockets held by alive nodes, as they counted at their last heartbeat.
    public var aliveSockets: Int
    /// Users online: the sum of alive nodes' distinct-user counts (a user connected to two nodes
    /// counts twice).
    public var onlineUsers: Int

    /// Creates a value.
    public init(aliveNodes: Int, deadNodes: Int, aliveSockets: Int, onlineUsers: Int) {
        self.aliveNodes = aliveNodes
        self.deadNodes = deadNodes
        self.aliveSockets = aliveSockets
        self.onlineUsers = onlineUsers
    }
}
