import Presence

/// What most forwarding tests need: a temporary folder, a private redis-server, the test's own
/// registry reader, and chat nodes running in-process against that server.
struct TestCluster: Sendable {
    let directory: TestDirectory
    let redis: TestRedisServer
    let registry: PresenceRegistry
    let nodes: [InProcessNodes.Node]

    /// Starts everything, runs `body`, then stops everything in reverse order (nodes leave the
    /// registry, the reader stops, redis-server is stopped and reaped, the folder removed).
    static func with<T: Sendable>(nodes nodeIDs: [String], _ body: (TestCluster) async throws -> T) async throws -> T {
        TestLogging.bootstrapped
        return try await TestDirectory.with { directory in
            try await TestRedisServer.with(in: directory) { redis in
                try await TestRegistry.with(redisURL: redis.url) { registry in
                    try await InProcessNodes.with(nodeIDs, redisURL: redis.url, registry: registry) { nodes in
                        try await body(TestCluster(directory: directory, redis: redis, registry: registry, nodes: nodes))
                    }
                }
            }
        }
    }

    /// Waits until the registry names `nodeID` as the live owner of `socketID`.
    func waitUntilRegistered(_ socketID: String, on nodeID: String) async throws {
        try await waitUntil("socket \(socketID) alive on \(nodeID) in the registry", within: TestTiming.reportVisible) {
            try await registry.socket(socketID)?.nodeID == nodeID
        }
    }

    /// Waits until the registry no longer reads `socketID` as alive anywhere.
    func waitUntilGone(_ socketID: String) async throws {
        try await waitUntil("socket \(socketID) gone from the registry", within: TestTiming.reportVisible) {
            try await registry.socket(socketID) == nil
        }
    }
}
