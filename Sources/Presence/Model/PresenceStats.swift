/// Registry totals.
public struct PresenceStats: Sendable, Hashable {
    /// Nodes whose heartbeat is younger than their TTL.
    public var aliveNodes: Int
    /// Dead nodes still listed (neither swept nor past their retention).
    public var deadNodes: Int
    /// Sockets held by alive nodes, as they counted at their last heartbeat.
    public var aliveSockets: Int
    /// Users online. Exact (``onlineUsersExact``) with the change stream on: the users-online
    /// counters the writes keep (a user on two nodes counts once; a crashed node's users count
    /// until the watcher announces it down). With it off: the sum of alive nodes' distinct-user
    /// counts as they reported them (a user connected to two nodes counts twice).
    public var onlineUsers: Int
    /// Whether ``onlineUsers`` is the exact count (changes on) or the nodes' sum.
    public var onlineUsersExact: Bool

    /// Creates a value.
    public init(aliveNodes: Int, deadNodes: Int, aliveSockets: Int, onlineUsers: Int, onlineUsersExact: Bool = false) {
        self.aliveNodes = aliveNodes
        self.deadNodes = deadNodes
        self.aliveSockets = aliveSockets
        self.onlineUsers = onlineUsers
        self.onlineUsersExact = onlineUsersExact
    }
}
