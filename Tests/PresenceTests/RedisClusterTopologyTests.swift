@testable import Presence
import Testing

/// `CLUSTER SHARDS` parsing, from replies shaped as a live Redis 7.0 cluster sends them.
@Suite("Redis Cluster topology: CLUSTER SHARDS parsing")
struct RedisClusterTopologyTests {
    typealias Reply = ClusterShardsReply
    typealias Endpoint = RedisConfiguration.Endpoint

    @Test("the reply captured from a live three-primary cluster: every slot to its primary, in the server's order")
    func captured() throws {
        let topology = try RedisClusterTopology.parse(shards: Reply.captured, seedHost: "seed.invalid")
        let p7101 = Endpoint.tcp(host: "127.0.0.1", port: 7101)
        let p7102 = Endpoint.tcp(host: "127.0.0.1", port: 7102)
        let p7103 = Endpoint.tcp(host: "127.0.0.1", port: 7103)
        #expect(topology.shards == [
            .init(primary: p7103, replicas: []), .init(primary: p7102, replicas: []), .init(primary: p7101, replicas: []),
        ])
        #expect(topology.primaries == [p7103, p7102, p7101])
        #expect(topology.uncoveredSlots == 0)
        #expect(topology.shard(ofSlot: 0)?.primary == p7101)
        #expect(topology.shard(ofSlot: 5460)?.primary == p7101)
        #expect(topology.shard(ofSlot: 5461)?.primary == p7102)
        #expect(topology.shard(ofSlot: 10922)?.primary == p7102)
        #expect(topology.shard(ofSlot: 10923)?.primary == p7103)
        #expect(topology.shard(ofSlot: 16383)?.primary == p7103)
    }

    @Test("replicas are listed in the server's order; several slot ranges per shard")
    func replicasAndRanges() throws {
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 99), (200, 299)], nodes: [
                Reply.node(id: "r1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7001, role: "replica"),
                Reply.node(id: "p", ip: "10.0.0.1", endpoint: "10.0.0.1", port: 7000, role: "master"),
                Reply.node(id: "r2", ip: "10.0.0.12", endpoint: "10.0.0.12", port: 7002, role: "slave"),
            ]),
        ])
        let topology = try RedisClusterTopology.parse(shards: reply, seedHost: "seed.invalid")
        #expect(topology.shards == [.init(
            primary: .tcp(host: "10.0.0.1", port: 7000),
            replicas: [.tcp(host: "10.0.0.11", port: 7001), .tcp(host: "10.0.0.12", port: 7002)])])
        #expect(topology.shard(ofSlot: 99)?.primary == .tcp(host: "10.0.0.1", port: 7000))
        #expect(topology.shard(ofSlot: 100) == nil)
        #expect(topology.shard(ofSlot: 199) == nil)
        #expect(topology.shard(ofSlot: 200)?.primary == .tcp(host: "10.0.0.1", port: 7000))
        #expect(topology.shard(ofSlot: 299)?.primary == .tcp(host: "10.0.0.1", port: 7000))
        #expect(topology.uncoveredSlots == 16384 - 200)
    }

    @Test("a failed primary: its shard serves nothing (its replicas wait for a promotion), the others still do")
    func failedPrimary() throws {
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 8191)], nodes: [
                Reply.node(id: "a", ip: "10.0.0.1", endpoint: "10.0.0.1", port: 7000, role: "master", health: "failed"),
                Reply.node(id: "a1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7000, role: "replica"),
            ]),
            Reply.shard(slots: [(8192, 16383)], nodes: [
                Reply.node(id: "b", ip: "10.0.0.2", endpoint: "10.0.0.2", port: 7000, role: "master"),
            ]),
        ])
        let topology = try RedisClusterTopology.parse(shards: reply, seedHost: "seed.invalid")
        #expect(topology.shards == [.init(primary: .tcp(host: "10.0.0.2", port: 7000), replicas: [])])
        #expect(topology.primaries == [.tcp(host: "10.0.0.2", port: 7000)])
        #expect(topology.shard(ofSlot: 0) == nil)
        #expect(topology.shard(ofSlot: 8191) == nil)
        #expect(topology.shard(ofSlot: 8192)?.primary == .tcp(host: "10.0.0.2", port: 7000))
        #expect(topology.uncoveredSlots == 8192)
    }

    @Test("a replica still loading is used for reads only when none is online; a failed one never")
    func loadingReplica() throws {
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 16383)], nodes: [
                Reply.node(id: "a", ip: "10.0.0.1", endpoint: "10.0.0.1", port: 7000, role: "master"),
                Reply.node(id: "a1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7000, role: "replica", health: "loading"),
                Reply.node(id: "a2", ip: "10.0.0.12", endpoint: "10.0.0.12", port: 7000, role: "replica"),
                Reply.node(id: "a3", ip: "10.0.0.13", endpoint: "10.0.0.13", port: 7000, role: "replica", health: "failed"),
            ]),
        ])
        let topology = try RedisClusterTopology.parse(shards: reply, seedHost: "seed.invalid")
        #expect(topology.shards == [.init(primary: .tcp(host: "10.0.0.1", port: 7000), replicas: [.tcp(host: "10.0.0.12", port: 7000)])])
        // With no replica online, a loading one (Redis 7.0: offset 0, as a synced empty one) serves.
        let onlyLoading = RedisValue.array([
            Reply.shard(slots: [(0, 16383)], nodes: [
                Reply.node(id: "a", ip: "10.0.0.1", endpoint: "10.0.0.1", port: 7000, role: "master"),
                Reply.node(id: "a1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7000, role: "replica", health: "loading"),
                Reply.node(id: "a3", ip: "10.0.0.13", endpoint: "10.0.0.13", port: 7000, role: "replica", health: "failed"),
            ]),
        ])
        #expect(try RedisClusterTopology.parse(shards: onlyLoading, seedHost: "x").shards[0].replicas == [.tcp(host: "10.0.0.11", port: 7000)])
    }

    @Test("an endpoint of '?' or empty falls back to the ip, then to the seed's host")
    func unknownEndpoint() throws {
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 16383)], nodes: [
                Reply.node(id: "a", ip: "10.0.0.1", endpoint: "?", port: 7000, role: "master"),
                Reply.node(id: "a1", ip: "", endpoint: "?", port: 7001, role: "replica"),
                Reply.node(id: "a2", ip: "10.0.0.12", endpoint: "", port: 7002, role: "replica"),
                Reply.node(id: "a3", ip: "?", endpoint: nil, port: 7003, role: "replica"),
                Reply.node(id: "a4", ip: "10.0.0.14", endpoint: nil, port: 7004, role: "replica"),
            ]),
        ])
        let topology = try RedisClusterTopology.parse(shards: reply, seedHost: "seed.example")
        #expect(topology.shards == [.init(primary: .tcp(host: "10.0.0.1", port: 7000), replicas: [
            .tcp(host: "seed.example", port: 7001), .tcp(host: "10.0.0.12", port: 7002),
            .tcp(host: "seed.example", port: 7003), .tcp(host: "10.0.0.14", port: 7004),
        ])])
    }

    @Test("nodes without a port, shards without an online primary, and out-of-range slots are skipped")
    func skipped() throws {
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 99)], nodes: [
                Reply.node(id: "tls-only", ip: "10.0.0.9", endpoint: "10.0.0.9", port: 0, role: "master"),
            ]),
            Reply.shard(slots: [(100, 199), (16000, 16384), (300, 250)], nodes: [
                Reply.node(id: "b", ip: "10.0.0.2", endpoint: "10.0.0.2", port: 7000, role: "master"),
            ]),
            Reply.shard(slots: [], nodes: []),
        ])
        let topology = try RedisClusterTopology.parse(shards: reply, seedHost: "seed.invalid")
        #expect(topology.shards == [.init(primary: .tcp(host: "10.0.0.2", port: 7000), replicas: [])])
        #expect(topology.uncoveredSlots == 16384 - 100)
        #expect(topology.shard(ofSlot: 99) == nil)
        #expect(topology.shard(ofSlot: 100)?.primary == .tcp(host: "10.0.0.2", port: 7000))
        #expect(topology.shard(ofSlot: 16000) == nil)
        #expect(topology.shard(ofSlot: 275) == nil)
    }

    @Test("a reply that is not an array is a protocol error")
    func malformed() {
        let error = #expect(throws: RedisError.self) {
            try RedisClusterTopology.parse(shards: .simpleString("OK"), seedHost: "h")
        }
        #expect(error?.code == .protocolError)
        #expect((try? RedisClusterTopology.parse(shards: .array([]), seedHost: "h"))?.shards == [])
    }

    @Test("MOVED to a known primary moves that one slot; to an unknown node or an invalid slot, nothing")
    func moved() throws {
        var topology = try RedisClusterTopology.parse(shards: Reply.captured, seedHost: "h")
        let p7101 = Endpoint.tcp(host: "127.0.0.1", port: 7101)
        let p7103 = Endpoint.tcp(host: "127.0.0.1", port: 7103)
        let known = topology.moved(slot: 100, to: p7103)
        #expect(known)
        #expect(topology.shard(ofSlot: 100)?.primary == p7103)
        #expect(topology.shard(ofSlot: 99)?.primary == p7101)
        #expect(topology.shard(ofSlot: 101)?.primary == p7101)
        let before = topology
        let unknown = topology.moved(slot: 101, to: .tcp(host: "127.0.0.1", port: 7999))
        #expect(!unknown)
        let beyond = topology.moved(slot: 16384, to: p7103)
        #expect(!beyond)
        let negative = topology.moved(slot: -1, to: p7103)
        #expect(!negative)
        #expect(topology == before)
    }
}
