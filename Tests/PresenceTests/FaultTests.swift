import Foundation
import Glibc
@testable import Presence
import PresenceTestSupport
import Testing

@Suite("Faults: Sentinel failover, restarts, freezes, partitions")
struct FaultTests {
    @Test("the primary is found through the sentinels; an unknown name and no sentinel are distinct errors")
    func sentinelResolution() async throws {
        let cluster = try await SentinelCluster.start()
        try await withClient(try RedisConfiguration(url: cluster.url)) { (client: RedisClient) async throws in
            _ = try await client.send("SET", "via-sentinel", "1")
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

    @Test("SIGKILL of the primary under Sentinel: failover, the registry is complete again, the old primary is never read")
    func sentinelFailover() async throws {
        let cluster = try await SentinelCluster.start()
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
            print("registry complete \(took) after the sentinels switched (heartbeat 250 ms)")
            // The old primary returns empty on its port. Clients follow the sentinels, never it.
            let returned = try await RedisServer.start(port: oldPort)
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

    @Test("Redis restarted empty: the registry is complete again within two heartbeats")
    func restartedEmpty() async throws {
        let server = try await RedisServer.start()
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
            let restarted = try await RedisServer.start(port: port)
            let took = try await eventually("the registry to be complete") {
                try await registry.sockets(Array(ids[..<1000])).allSatisfy { $0 != nil }
                    ? try await registry.sockets(Array(ids[1000...])).allSatisfy { $0 != nil } : false
            }
            print("complete again \(took) after an empty restart (heartbeat 1 s)")
            #expect(took < .seconds(2) + .milliseconds(600))  // two heartbeats, plus reconnect slack
            try await running.stop()
            restarted.stop()
        }
    }

    @Test("Redis frozen longer than the node TTL, then resumed: every node alive again within a heartbeat")
    func frozenRedis() async throws {
        let server = try await RedisServer.start()
        var redis = server.configuration
        redis.commandTimeout = .milliseconds(300)
        redis.maximumBackoff = .milliseconds(100)
        let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(500), nodeTTL: .seconds(1))
        try await withClient(redis) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: configuration)
            let nodes = try await ["z-a", "z-b", "z-c"].asyncMap { try await startNode($0, client: client, configuration: configuration) }
            for (index, node) in nodes.enumerated() {
                for i in 0..<100 { try node.node.connected(socketID: "z\(index)-\(i)") }
                try await node.node.flush()
            }
            server.signal(SIGSTOP)
            try await Task.sleep(for: .milliseconds(1_500))
            server.signal(SIGCONT)
            // The freeze outlasted the TTL: whatever a node sends next finds itself expired and resyncs.
            let took = try await eventually("every node and socket alive again") {
                let alive = try await registry.nodes().filter(\.alive).count
                let sockets = try await registry.sockets((0..<3).flatMap { n in (0..<100).map { "z\(n)-\($0)" } })
                return alive == 3 && sockets.allSatisfy { $0 != nil }
            }
            print("alive again \(took) after the freeze (heartbeat 500 ms)")
            #expect(took < .milliseconds(500) + .milliseconds(600))  // one heartbeat, plus reconnect slack
            for node in nodes { try await node.stop() }
        }
    }

    @Test("a node cut off from Redis longer than its TTL is declared dead, then alive again with all its sockets")
    func cutOffNode() async throws {
        let server = try await RedisServer.start()
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
                _ = try await admin.send("CLIENT", "KILL", "USER", "island")
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

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async throws -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
