import Foundation
import Glibc
@testable import Presence
import PresenceTestSupport
import Testing

@Suite("Faults: Sentinel failover, restarts, freezes, partitions")
struct FaultTests {
    @Test("the primary is found through the sentinels; an unknown name and no sentinel are distinct errors", arguments: RedisServer.Kind.allCases)
    func sentinelResolution(_ kind: RedisServer.Kind) async throws {
        let cluster = try await SentinelCluster.start(kind)
        try await withClient(try RedisConfiguration(url: cluster.url)) { (client: RedisClient) async throws in
            _ = try await client.send("SET", "via-sentinel", "1")
            // The server it describes is the one the sentinels named: the primary.
            #expect(try await client.serverInfo().product.rawValue == kind.rawValue)
        }
        try await withClient(cluster.primary) { (client: RedisClient) async throws in
            #expect(try await client.send("GET", "via-sentinel").string == "1")
        }
        let unknown = "redis-sentinel://127.0.0.1:\(cluster.sentinelPorts[1])/no-such-master"
        try await withClient(try RedisConfiguration(url: unknown)) { (client: RedisClient) async throws in
            await #expect { try await client.send("PING") } throws: { ($0 as? RedisError)?.code == .unknownMaster }
        }
        let nowhere = "redis-sentinel://127.0.0.1:\(try RedisServer.freePort()),127.0.0.1:\(try RedisServer.freePort())/\(SentinelCluster.masterName)"
        try await withClient(try RedisConfiguration(url: nowhere)) { (client: RedisClient) async throws in
            await #expect { try await client.send("PING") } throws: { ($0 as? RedisError)?.code == .noSentinel }
        }
    }

    @Test("SIGKILL of the primary under Sentinel: failover, the registry is complete again, the old primary is never read", arguments: RedisServer.Kind.allCases)
    func sentinelFailover(_ kind: RedisServer.Kind) async throws {
        let cluster = try await SentinelCluster.start(kind)
        let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(250), nodeTTL: .seconds(3))
        var redis = try RedisConfiguration(url: cluster.url)
        redis.commandTimeout = .milliseconds(500)
        redis.maximumBackoff = .milliseconds(200)
        try await withClient(redis) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: configuration)
            let nodes = try await ["f-a", "f-b"].asyncMap { try await startNode($0, client: client, configuration: configuration) }
            let ids = (0..<600).map { "fs\($0)" }
            for (index, id) in ids.enumerated() { try nodes[index % 2].node.connected(socketID: id, userID: "u\(index % 30)") }
            for node in nodes { try await node.node.flush() }
            #expect(try await registry.sockets(ids).allSatisfy { $0 != nil })

            let oldPort = cluster.primary.port
            cluster.primary.signal(SIGKILL)
            try await eventually(timeout: .seconds(60), "the sentinels to promote the replica") {
                try await cluster.currentPrimaryPort() == cluster.replica.port
            }
            let took = try await eventually(timeout: .seconds(30), "the registry to be complete on the new primary") {
                try await registry.sockets(ids).allSatisfy { $0 != nil }
            }
            print("\(kind): registry complete \(took) after the sentinels switched (heartbeat 250 ms)")
            // The old primary returns empty on its port. Clients follow the sentinels, never it.
            let returned = try await RedisServer.start(kind, port: oldPort)
            for _ in 0..<10 {
                #expect(try await registry.sockets(ids).allSatisfy { $0 != nil })
                try await Task.sleep(for: .milliseconds(100))
            }
            var inspector = returned.configuration
            inspector.clientName = "inspector"
            try await withClient(inspector) { (direct: RedisClient) async throws in
                let list = try await direct.send("CLIENT", "LIST").string ?? ""
                #expect(!list.contains("name=presence "), "\(list)")
            }
            for node in nodes { try await node.stop() }
        }
    }

    @Test("Redis restarted empty: the node registers again within two heartbeats (plus measured slack), then the registry is complete", arguments: RedisServer.Kind.allCases)
    func restartedEmpty(_ kind: RedisServer.Kind) async throws {
        let server = try await RedisServer.start(kind)
        let port = server.port
        var redis = server.configuration
        redis.maximumBackoff = .milliseconds(100)
        let configuration = PresenceConfiguration(heartbeatInterval: .seconds(1), nodeTTL: .seconds(3))
        try await withClient(redis) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: configuration)
            let running = try await startNode("r-node", client: client, configuration: configuration)
            let ids = (0..<2_000).map { "rs\($0)" }
            for id in ids { try running.node.connected(socketID: id) }
            try await running.node.flush()
            server.stop()
            let restarted = try await RedisServer.start(kind, port: port)
            let restartedAt = Date()
            let ((registered, complete), slack) = try await measuringSchedulingSlack {
                let registered = try await firstHeartbeat(of: ["r-node"], redis: restarted.configuration, configuration: configuration)
                let complete = try await eventually("the registry to be complete") {
                    try await registry.sockets(Array(ids[..<1000])).allSatisfy { $0 != nil }
                        ? try await registry.sockets(Array(ids[1000...])).allSatisfy { $0 != nil } : false
                }
                return (registered, complete)
            }
            let back = Duration.seconds(registered.at.timeIntervalSince(restartedAt))
            print("\(kind): registered again \(back) after an empty restart, complete \(complete) later (heartbeat 1 s, timers late by up to \(slack), round trip up to \(registered.roundTrip))")
            // The first tick after the restart may fail (its heartbeat finds the connection Redis
            // closed when it stopped); the next one registers and resyncs. Each of the two ticks may
            // wake late, and so may the writer the second one wakes, by the slack measured meanwhile;
            // its heartbeat then takes one trip to Redis.
            #expect(back <= (configuration.heartbeatInterval + slack) * 2 + slack + registered.roundTrip)
            try await running.stop()
            restarted.stop()
        }
    }

    @Test("Redis frozen longer than the node TTL, then resumed: every node alive again within one heartbeat, the backoff and measured slack", arguments: RedisServer.Kind.allCases)
    func frozenRedis(_ kind: RedisServer.Kind) async throws {
        let server = try await RedisServer.start(kind)
        var redis = server.configuration
        redis.commandTimeout = .milliseconds(300)
        redis.maximumBackoff = .milliseconds(100)
        let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(500), nodeTTL: .seconds(1))
        try await withClient(redis) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: configuration)
            let names = ["z-a", "z-b", "z-c"]
            let nodes = try await names.asyncMap { try await startNode($0, client: client, configuration: configuration) }
            for (index, node) in nodes.enumerated() {
                for i in 0..<100 { try node.node.connected(socketID: "z\(index)-\(i)") }
                try await node.node.flush()
            }
            server.signal(SIGSTOP)
            // The freeze is the event under test: it lasts the TTL and one heartbeat more.
            try await Task.sleep(for: configuration.nodeTTL + configuration.heartbeatInterval)
            server.signal(SIGCONT)
            let resumedAt = Date()
            // The freeze outlasted the TTL: whatever a node sends next finds itself expired and resyncs.
            let (alive, slack) = try await measuringSchedulingSlack {
                try await firstHeartbeat(of: names, redis: server.configuration, configuration: configuration)
            }
            try await eventually("every socket alive again") {
                try await registry.sockets((0..<3).flatMap { n in (0..<100).map { "z\(n)-\($0)" } }).allSatisfy { $0 != nil }
            }
            let back = Duration.seconds(alive.at.timeIntervalSince(resumedAt))
            print("\(kind): every node alive again \(back) after the freeze (heartbeat 500 ms, timers late by up to \(slack), round trip up to \(alive.roundTrip))")
            // A node's next tick after the resume heartbeats; if it falls within the client's backoff
            // after a failed reconnect it fails fast, and the tick after it succeeds. The tick and the
            // writer it wakes may each be late by the measured slack; the heartbeat then takes one
            // trip to Redis.
            #expect(back <= configuration.heartbeatInterval + redis.maximumBackoff + slack * 2 + alive.roundTrip)
            for node in nodes { try await node.stop() }
        }
    }

    @Test("a node cut off from Redis longer than its TTL is declared dead, then alive again with all its sockets", arguments: RedisServer.Kind.allCases)
    func cutOffNode(_ kind: RedisServer.Kind) async throws {
        let server = try await RedisServer.start(kind)
        let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(1))
        try await withClient(server) { (admin: RedisClient) async throws in
            _ = try await admin.send("ACL", "SETUSER", "island", "on", ">pw", "~*", "+@all")
            var nodeRedis = try RedisConfiguration(url: "redis://island:pw@127.0.0.1:\(server.port)")
            nodeRedis.maximumBackoff = .milliseconds(100)
            try await withClient(nodeRedis) { (client: RedisClient) async throws in
                let registry = PresenceRegistry(client: admin, configuration: configuration)
                let running = try await startNode("island", client: client, configuration: configuration)
                for i in 0..<300 { try running.node.connected(socketID: "i\(i)", userID: "iu\(i % 3)") }
                try await running.node.flush()
                // Cut it off: its user is disabled and its connection killed.
                _ = try await admin.send("ACL", "SETUSER", "island", "off")
                #expect(try await admin.send("CLIENT", "KILL", "USER", "island").int ?? 0 >= 1)
                let info = try #require(try await registry.node("island"))
                try await waitUntilRedisTime(admin, passes: Int(info.expiresAt.timeIntervalSince1970 * 1000))
                #expect(try await registry.node("island")?.alive == false)
                #expect(try await registry.sockets((0..<300).map { "i\($0)" }).allSatisfy { $0 == nil })
                try running.node.connected(socketID: "i-while-away")
                _ = try await admin.send("ACL", "SETUSER", "island", "on")
                try await eventually("the node and all its sockets to be back") {
                    try await registry.sockets((0..<300).map { "i\($0)" } + ["i-while-away"]).allSatisfy { $0 != nil }
                }
                #expect(try await registry.sockets(ofUser: "iu1").count == 100)
                try await running.stop()
            }
        }
    }
}

/// When each of `nodes` was first seen alive, by the Redis clock: the time of the heartbeat that
/// made it alive. An observer of its own polls every 5 ms on a connection nobody else uses (the
/// nodes' own client may be busy resyncing), so the record is read before a later heartbeat
/// rewrites it; if one did, that could only lengthen what is measured.
/// - Returns: the latest of those times, and the longest PING round trip the observer measured
///   meanwhile: what a heartbeat's trip to Redis can take on this machine as loaded now.
func firstHeartbeat(of nodes: [String], redis: RedisConfiguration, configuration: PresenceConfiguration) async throws -> (at: Date, roundTrip: Duration) {
    try await withClient(redis) { (observer: RedisClient) async throws in
        let registry = PresenceRegistry(client: observer, configuration: configuration)
        _ = try await observer.send("PING")  // connects: not a round trip to measure
        let clock = ContinuousClock()
        var roundTrip = Duration.zero
        var seen: [String: Date] = [:]
        try await eventually("\(nodes.joined(separator: ", ")) to be alive", every: .milliseconds(5)) {
            let start = clock.now
            _ = try await observer.send("PING")
            roundTrip = max(roundTrip, clock.now - start)
            for node in try await registry.nodes() where node.alive && nodes.contains(node.nodeID) && seen[node.nodeID] == nil {
                seen[node.nodeID] = node.lastHeartbeatAt
            }
            return seen.count == nodes.count
        }
        return (seen.values.max()!, roundTrip)
    }
}

/// Redis's clock as a date, from a `TIME` reply.
func redisDate(_ time: RedisValue) -> Date {
    let parts = time.array ?? []
    return Date(timeIntervalSince1970: Double(parts[0].int!) + Double(parts[1].int!) / 1_000_000)
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async throws -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
