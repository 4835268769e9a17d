import Presence

/// What `chat-node` was asked to do, once parsed and checked.
struct ChatNodeOptions: Sendable {
    /// Always loopback in this example: `/deliver` has no authentication.
    var host = "127.0.0.1"
    var port = 8081
    var nodeID = "chat-8081"
    /// `redis://…`, `unix://…` or `redis-sentinel://…`, as `presence serve --redis`.
    var redisURL = "redis://127.0.0.1:6379"
    /// What the registry stores for this node: where other nodes forward messages.
    var address = "http://127.0.0.1:8081"
    /// Heartbeat interval, node TTL and key prefix.
    var presence = PresenceConfiguration()
}
