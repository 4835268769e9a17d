import Presence

/// The timings the tests configure, and the bounds they derive from them.
enum TestTiming {
    /// Heartbeat of every node the tests start (as scripts/demo).
    static let heartbeat: Duration = .seconds(1)
    /// Node TTL of every node the tests start: short, so that a crash reads dead quickly.
    static let nodeTTL: Duration = .seconds(3)
    /// The Redis client defaults chat-node runs with (`RedisConfiguration(url:)`).
    static let redis = try! RedisConfiguration(url: "redis://127.0.0.1:6379")

    /// A report (connect, disconnect) is written at once; a node that cannot write it within its
    /// own TTL reads as dead anyway, so the TTL bounds how long the registry may lag.
    static let reportVisible = nodeTTL
    /// Processes and servers starting on a loaded machine: a cap on waiting, not a claim.
    static let startup: Duration = .seconds(30)
    /// How long one HTTP request may take: a registry read that hits the command timeout, behind a
    /// reconnect that hits the connect timeout, with room for a loaded machine.
    static let request: Duration = redis.connectTimeout + redis.commandTimeout + .seconds(10)

    /// `--heartbeat` and `--node-ttl` as chat-node takes them.
    static var commandLine: [String] {
        ["--heartbeat", String(Double(heartbeat.components.seconds)), "--node-ttl", String(Double(nodeTTL.components.seconds))]
    }
}
