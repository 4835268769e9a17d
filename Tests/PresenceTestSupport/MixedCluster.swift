import Presence

/// Runs `body` with a running client on a Redis Cluster of one primary per entry of `servers` (a
/// server binary; `nil` for redis-server) and no replicas, stopped after: a cluster caught
/// mid-upgrade, its nodes on different products or releases (Valkey 9 nodes join a Redis 7.0
/// cluster). Built by hand with `CLUSTER ADDSLOTSRANGE` and `CLUSTER MEET`, since
/// `LocalRedisCluster` runs redis-server only; the slots are split evenly in the given order.
public func withMixedCluster<T: Sendable>(servers: [String?], _ body: @Sendable (RedisClient) async throws -> T) async throws -> T {
    try await ClusterSlots.shared.withSlot {
        var started: [RedisServer] = []
        for server in servers { started.append(try await RedisServer.start(["--cluster-enabled", "yes"], server: server)) }
        let nodes = started
        defer { for node in nodes { node.stop() } }
        for (index, node) in nodes.enumerated() {
            try await withClient(node.configuration, scripts: []) { (admin: RedisClient) async throws in
                let first = index * 16384 / nodes.count, last = (index + 1) * 16384 / nodes.count - 1
                _ = try await admin.send("CLUSTER", "ADDSLOTSRANGE", String(first), String(last))
                if index == 0 {
                    for other in nodes.dropFirst() { _ = try await admin.send("CLUSTER", "MEET", "127.0.0.1", String(other.port)) }
                }
            }
        }
        for node in nodes {
            _ = try await withClient(node.configuration, scripts: []) { (admin: RedisClient) async throws in
                try await eventually("node \(node.port) to see the cluster whole") {
                    let info = (try await admin.send("CLUSTER", "INFO").string ?? "").split(whereSeparator: \.isNewline)
                    return info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:\(nodes.count)")
                }
            }
        }
        let seeds = nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
        return try await withClient(try RedisConfiguration(url: "redis-cluster://\(seeds)"), body)
    }
}
