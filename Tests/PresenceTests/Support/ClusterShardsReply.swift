@testable import Presence

/// `CLUSTER SHARDS` replies built by hand, shaped as Redis 7.0 sends them over RESP2: each shard a
/// flat array of field/value pairs (`slots`, `nodes`), slots and ports as integers, everything else
/// as bulk strings (see the capture in `shards(…)`'s doc comment).
enum ClusterShardsReply {
    /// One node of a shard, as a flat field/value array.
    static func node(
        id: String, ip: String, endpoint: String?, port: Int, role: String, health: String = "online", offset: Int = 0
    ) -> RedisValue {
        var fields: [RedisValue] = [bulk("id"), bulk(id), bulk("port"), .integer(port), bulk("ip"), bulk(ip)]
        if let endpoint { fields += [bulk("endpoint"), bulk(endpoint)] }
        fields += [
            bulk("role"), bulk(role), bulk("replication-offset"), .integer(offset), bulk("health"), bulk(health),
        ]
        return .array(fields)
    }

    /// One shard: its slot ranges as (start, end) pairs, then its nodes.
    static func shard(slots: [(Int, Int)], nodes: [RedisValue]) -> RedisValue {
        .array([
            bulk("slots"), .array(slots.flatMap { [RedisValue.integer($0.0), .integer($0.1)] }),
            bulk("nodes"), .array(nodes),
        ])
    }

    /// The reply of a live Redis 7.0.15 cluster of three primaries on 127.0.0.1:7101-7103 (no
    /// replicas), field for field as `redis-cli -p 7101 CLUSTER SHARDS` printed it.
    static let captured: RedisValue = .array([
        shard(slots: [(10923, 16383)], nodes: [
            node(id: "56d7775137fe0c58706814e93add5b7d2e587b04", ip: "127.0.0.1", endpoint: "127.0.0.1", port: 7103, role: "master"),
        ]),
        shard(slots: [(5461, 10922)], nodes: [
            node(id: "f30b16f51717d46689f23ec8d29f5f757bc86a35", ip: "127.0.0.1", endpoint: "127.0.0.1", port: 7102, role: "master"),
        ]),
        shard(slots: [(0, 5460)], nodes: [
            node(id: "cc01889a2e06ff211c1934b9d012e40b46071eb5", ip: "127.0.0.1", endpoint: "127.0.0.1", port: 7101, role: "master"),
        ]),
    ])

    static func bulk(_ text: String) -> RedisValue { .bulkString(Array(text.utf8)) }
}
