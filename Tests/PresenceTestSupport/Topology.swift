import Presence
import PresenceEmbedded

/// Where a test's registry lives: one redis-server, or a Redis Cluster of three primaries. Tests of
/// the presence semantics take it as an argument and run on both.
public enum Topology: String, Sendable, CaseIterable, CustomStringConvertible {
    case standalone
    case cluster

    public var description: String { rawValue }
}

/// Runs `body` with a running client on a fresh Redis of `topology`, started for this call and
/// stopped after it: a redis-server, or three cluster primaries on free loopback ports (their
/// replicas are left out: failover has tests of its own).
public func withRedis<T: Sendable>(_ topology: Topology, _ body: @Sendable (RedisClient) async throws -> T) async throws -> T {
    switch topology {
    case .standalone:
        let server = try await RedisServer.start()
        defer { withExtendedLifetime(server) {} }
        return try await withClient(server, body)
    case .cluster:
        return try await withLocalCluster(replicasPerPrimary: 0) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL), body)
        }
    }
}
