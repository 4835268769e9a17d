import Foundation
@testable import Presence
import PresenceTestSupport
import Testing

@Suite("Registry queries and the sweeper against a real redis-server")
struct RegistryAndSweeperTests {
    @Test("nodes, node sockets by page, user sockets and stats", arguments: Topology.allCases)
    func queries(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let a = try await startNode("q-a", client: client, address: "a:1")
            let b = try await startNode("q-b", client: client, address: "b:1")
            for i in 0..<250 { try a.node.connected(socketID: "qa\(i)", userID: "user\(i % 10)") }
            for i in 0..<20 { try b.node.connected(socketID: "qb\(i)", userID: "user0") }
            try await a.node.flush()
            try await b.node.flush()
            try await a.node.flush()  // a heartbeat may not have run yet: the next one carries the counts

            var seen: Set<String> = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await registry.sockets(onNode: "q-a", cursor: cursor, limit: 50)
                #expect(page.sockets.allSatisfy { $0.nodeID == "q-a" })
                seen.formUnion(page.sockets.map(\.socketID))
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 100
            #expect(seen == Set((0..<250).map { "qa\($0)" }))
            #expect(pages > 1)

            let user0 = try await registry.sockets(ofUser: "user0")
            #expect(user0.count == 25 + 20)
            #expect(Set(user0.map(\.nodeID)) == ["q-a", "q-b"])

            await b.crash()
            let bInfo = try #require(try await registry.node("q-b"))
            try await waitUntilRedisTime(client, passes: Int(bInfo.expiresAt.timeIntervalSince1970 * 1000))
            let nodes = try await registry.nodes()
            #expect(nodes.map(\.nodeID) == ["q-a", "q-b"])
            #expect(nodes.map(\.alive) == [true, false])
            #expect(nodes[0].address == "a:1")
            #expect(try await registry.sockets(ofUser: "user0").count == 25)
            _ = try await eventually("a heartbeat with the final counts") {
                try await registry.node("q-a")?.socketCount == 250
            }
            let stats = try await registry.stats()
            #expect(stats == PresenceStats(aliveNodes: 1, deadNodes: 1, aliveSockets: 250, onlineUsers: 10, onlineUsersExact: true))
            await #expect(throws: PresenceError.self) { try await registry.sockets(onNode: "q-a", cursor: "nope") }
            await #expect(throws: PresenceError.self) { try await registry.sockets(onNode: "q-a", limit: 0) }
            try await a.stop()
        }
    }

    @Test("a socket leaves its node's set only once its record went (one server: in the same call); a refused call leaves both; the set follows a socket's last event", arguments: [Topology.standalone, .cluster])
    func nodeSetFollowsRecords(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let keys = fastConfiguration.keys
            func listed() async throws -> Set<String> {
                Set(try await client.send("SMEMBERS", keys.nodeSockets("A")).array?.compactMap(\.string) ?? [])
            }
            let gone: [SocketEvent] = [.disconnect(socketID: "s1", userID: "u1"), .disconnect(socketID: "s2", userID: nil)]
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s1", "u1"), connectEvent("s2", nil)])
            #expect(try await listed() == ["s1", "s2"])
            // Redis refusing writes (out of memory): the records stay, and so do their entries in the set.
            for primary in try await client.primaryClients() {
                _ = try await primary.send("CONFIG", "SET", "maxmemory-policy", "noeviction")
                _ = try await primary.send("CONFIG", "SET", "maxmemory", "1")
            }
            let refused = await writer.apply(nodeID: "A", incarnation: "a1", events: gone)
            for primary in try await client.primaryClients() { _ = try await primary.send("CONFIG", "SET", "maxmemory", "0") }
            #expect(refused.allSatisfy { if case .failure = $0 { true } else { false } }, "\(refused)")
            #expect(try await hasRecord(client, keys.socket("s1")))
            #expect(try await hasRecord(client, keys.socket("s2")))
            #expect(try await listed() == ["s1", "s2"])
            let done = await writer.apply(nodeID: "A", incarnation: "a1", events: gone)
            #expect(try done.map { try $0.get() } == [.removed, .removed])
            #expect(try await listed().isEmpty)
            // Gone and back in one batch: listed, with its record.
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s3", nil)])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s3", userID: nil), connectEvent("s3", nil)])
            #expect(try await listed() == ["s3"])
            #expect(try await hasRecord(client, keys.socket("s3")))
        }
    }

    @Test("sweep removes only nodes dead longer than the grace, is idempotent, and safe when two run at once", arguments: Topology.allCases)
    func sweep(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let keys = PresenceKeys(prefix: "presence")
            let alive = try await startNode("keep", client: client)
            for i in 0..<100 { try alive.node.connected(socketID: "k\(i)", userID: "shared") }
            try await alive.node.flush()
            var dead: [RunningNode] = []
            for n in 0..<2 {
                let node = try await startNode("dead-\(n)", client: client)
                for i in 0..<1_500 { try node.node.connected(socketID: "d\(n)-\(i)", userID: i < 10 ? "shared" : "u\(i)") }
                try await node.node.flush()
                dead.append(node)
            }
            for node in dead { await node.crash() }
            let expiries = try await registry.nodes().filter { $0.nodeID.hasPrefix("dead") }.map { Int($0.expiresAt.timeIntervalSince1970 * 1000) }
            try await waitUntilRedisTime(client, passes: expiries.max()!)

            let sweeper = Sweeper(client: client, configuration: fastConfiguration)
            #expect(try await sweeper.sweep(grace: .seconds(3600)).nodes.isEmpty)
            let dry = try await sweeper.sweep(dryRun: true)
            #expect(dry.nodes.map(\.nodeID) == ["dead-0", "dead-1"] && dry.sockets == 3_000)
            #expect(try await hasRecord(client, keys.socket("d0-1")))

            async let first = sweeper.sweep()
            async let second = sweeper.sweep()
            let reports = try await [first, second]
            #expect(reports.reduce(0) { $0 + $1.sockets } == 3_000)
            #expect(reports.flatMap(\.nodes).filter(\.forgotten).map(\.nodeID).sorted() == ["dead-0", "dead-1"])

            #expect(try await sweeper.sweep().nodes.isEmpty)
            let left = try await allKeys(client)
            #expect(!left.contains { $0.contains("dead-") || $0.contains("{d0-") || $0.contains("{d1-") || $0.contains("{u1") })
            #expect(try await registry.nodes().map(\.nodeID) == ["keep"])
            #expect(try await registry.sockets(ofUser: "shared").count == 100)
            #expect(try await client.send("HLEN", keys.user("shared")).int == 100)
            try await alive.stop()
        }
    }

    @Test("after a restart under the same id, a sweep leaves the new incarnation's sockets alone and the old ones dead", arguments: Topology.allCases)
    func sweepAfterRestart(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let first = try await startNode("phoenix", client: client)
            for i in 0..<20 { try first.node.connected(socketID: "p\(i)") }
            try await first.node.flush()
            await first.crash()
            let dead = try #require(try await registry.node("phoenix"))
            try await waitUntilRedisTime(client, passes: Int(dead.expiresAt.timeIntervalSince1970 * 1000))
            let second = try await startNode("phoenix", client: client)
            for i in 0..<5 { try second.node.connected(socketID: "p\(i)") }  // the same ids reconnect here
            try await second.node.flush()
            #expect(try await Sweeper(client: client, configuration: fastConfiguration).sweep().nodes.isEmpty)
            #expect(try await registry.sockets((0..<5).map { "p\($0)" }).allSatisfy { $0?.nodeIncarnation == second.node.incarnation })
            #expect(try await registry.sockets((5..<20).map { "p\($0)" }).allSatisfy { $0 == nil })
            try await second.stop()
            await #expect(throws: PresenceError.self) { try await second.node.flush() }
        }
    }

    @Test("sweep --orphans: the socket set of a node the table lost, silent past the node TTL, goes with its records; a live node's stays", arguments: Topology.allCases)
    func sweepOrphans(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let keys = PresenceKeys(prefix: "presence")
            let alive = try await startNode("stays", client: client)
            let lost = try await startNode("lost", client: client)
            for i in 0..<300 { try alive.node.connected(socketID: "st\(i)", userID: "su\(i % 5)") }
            for i in 0..<400 { try lost.node.connected(socketID: "lo\(i)", userID: "lu\(i % 5)") }
            try await alive.node.flush()
            try await lost.node.flush()
            await lost.crash()
            // Its table entry and record are gone (pruned, or lost with a shard); its set's TTL says
            // its last heartbeat was longer ago than the node TTL.
            _ = try await client.send("HDEL", keys.nodeTable, "lost")
            _ = try await client.send("DEL", keys.node("lost"))
            let silent = fastConfiguration.socketKeyTTLMilliseconds - fastConfiguration.nodeTTLMilliseconds - 1_000
            _ = try await client.send("PEXPIRE", keys.nodeSockets("lost"), String(silent))
            let sweeper = Sweeper(client: client, configuration: fastConfiguration)
            #expect(try await sweeper.sweep().nodes.isEmpty)
            #expect(try await sweeper.sweep(grace: .seconds(5), orphans: true).nodes.isEmpty)
            let dry = try await sweeper.sweep(dryRun: true, orphans: true)
            #expect(dry.nodes.map(\.nodeID) == ["lost"] && dry.sockets == 400)
            let report = try await sweeper.sweep(orphans: true)
            #expect(report.nodes.map(\.nodeID) == ["lost"])
            #expect(report.sockets == 400 && report.nodes.allSatisfy(\.forgotten))
            let left = try await allKeys(client)
            #expect(!left.contains { $0.contains("{lo") || $0.contains("{lost}") })
            #expect(try await registry.sockets(ofUser: "lu1").isEmpty)
            #expect(try await registry.sockets((0..<300).map { "st\($0)" }).allSatisfy { $0?.nodeID == "stays" })
            try await alive.stop()
        }
    }

    @Test("a replica is refused by the sweeper with the primary named")
    func sweepRefusesReplica() async throws {
        let primary = try await RedisServer.start()
        let replica = try await RedisServer.start(["--replicaof", "127.0.0.1", String(primary.port)])
        try await withClient(replica) { (client: RedisClient) async throws in
            await #expect {
                try await Sweeper(client: client).sweep()
            } throws: { ($0 as? RedisError)?.code == .replica && ($0 as? RedisError)?.primary == "127.0.0.1:\(primary.port)" }
        }
    }

    @Test("f: the full scenario leaves the same registry on both topologies", arguments: Topology.allCases)
    func fullScenarioReads(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let last = try await fullScenario(client)
            // The reads answer on the cluster too, with what the scenario left: only the restarted
            // full-a alive, holding fa-new of user1 (full-b was swept).
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            try await eventually("a heartbeat with the final counts") {
                let node = try await registry.node("full-a")
                return node?.socketCount == 1 && node?.userCount == 1
            }
            #expect(try await registry.stats() == PresenceStats(aliveNodes: 1, deadNodes: 0, aliveSockets: 1, onlineUsers: 1, onlineUsersExact: true))
            #expect(try await registry.sockets(ofUser: "user1").map(\.socketID) == ["fa-new"])
            #expect(try await registry.nodes().map(\.nodeID) == ["full-a"])
            try await last.stop()
        }
    }
}
