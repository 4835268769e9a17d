import Foundation
@testable import Presence
import PresenceTestSupport
import Testing

/// Costs that must not grow with the number of registered nodes: a heartbeat and a lookup.
@Suite("Costs independent of the node count, against a real redis-server")
struct NodeCountCostTests {
    /// Registers `count` nodes `prefix-0…` (alive) through the heartbeat script, pipelined.
    func register(_ writer: PresenceWriter, prefix: String, count: Int) async throws {
        for chunk in Array(0..<count).chunked(500) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in chunk {
                    group.addTask {
                        _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "\(prefix)-\(i)", incarnation: "inc", startedAt: Date(), socketCount: 0, userCount: 0))
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("a heartbeat executes the same commands with 10 and with 2,000 registered nodes")
    func heartbeatFlat() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let probe = NodeHeartbeat(nodeID: "probe", incarnation: "p", startedAt: Date(), socketCount: 0, userCount: 0)
            func executed() async throws -> Int {
                _ = try await writer.heartbeat(probe)
                let before = try await totalCalls(client)
                _ = try await writer.heartbeat(probe)
                return try await totalCalls(client) - before - 1  // minus the INFO that measured
            }
            try await register(writer, prefix: "few", count: 9)
            let few = try await executed()
            try await register(writer, prefix: "many", count: 1_990)
            #expect(try await client.send("HLEN", fastConfiguration.keys.nodeTable).int ?? 0 >= 2_000)
            let many = try await executed()
            #expect(few == many, "commands per heartbeat: \(few) with 10 nodes, \(many) with 2,000")
            #expect(try await commandCalls(client, "hgetall") == 0, "no heartbeat reads the whole table")
        }
    }

    @Test("entries of nodes dead beyond the retention are pruned a bounded few per heartbeat, live ones never")
    func amortizedTablePruning() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let table = fastConfiguration.keys.nodeTable
            try await register(writer, prefix: "live", count: 50)
            // 1,000 entries that expired at the epoch: long past any retention.
            var stale = RedisCommand("HSET", table)
            for i in 0..<1_000 { stale.append(contentsOf: ["gone-\(i)", "1\u{1F}old\u{1F}"]) }
            _ = try await client.send(stale)
            let probe = NodeHeartbeat(nodeID: "probe", incarnation: "p", startedAt: Date(), socketCount: 0, userCount: 0)
            var heartbeats = 0
            var largestSlice = 0
            func staleLeft() async throws -> Bool {
                try await client.send("HKEYS", table).array?.contains { $0.string?.hasPrefix("gone-") == true } ?? false
            }
            while try await staleLeft(), heartbeats < 5_000 {
                let before = try await commandCalls(client, "hdel")
                _ = try await writer.heartbeat(probe)
                largestSlice = max(largestSlice, try await commandCalls(client, "hdel") - before)
                heartbeats += 1
            }
            let left = try await client.send("HKEYS", table).array?.compactMap(\.string) ?? []
            #expect(left.filter { $0.hasPrefix("gone-") }.isEmpty, "after \(heartbeats) heartbeats")
            #expect(left.filter { $0.hasPrefix("live-") }.count == 50)
            #expect(largestSlice <= 64, "one heartbeat deleted \(largestSlice) entries")
            #expect(heartbeats > 1, "pruning is spread over heartbeats")
        }
    }

    @Test("a lookup reads the table entries of the nodes its sockets name, never the whole table")
    func lookupReadsNamedEntries() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            try await register(writer, prefix: "idle", count: 2_000)
            let holder = NodeHeartbeat(nodeID: "holder", incarnation: "h", startedAt: Date(), socketCount: 2, userCount: 1)
            _ = try await writer.heartbeat(holder)
            _ = await writer.apply(nodeID: "holder", incarnation: "h", events: [
                .connect(socketID: "s1", userID: "u", meta: [:], connectedAt: Date()),
                .connect(socketID: "s2", userID: nil, meta: [:], connectedAt: Date()),
            ])
            // A record naming a node that is not registered reads dead.
            _ = try await client.send("SET", fastConfiguration.keys.socket("orphan"), "nowhere\u{1F}x\u{1F}1\u{1F}\u{1F}")
            let fullReads = try await commandCalls(client, "hgetall")
            let found = try await registry.sockets(["s1", "s2", "orphan", "unknown"])
            #expect(found.map { $0?.nodeID } == ["holder", "holder", nil, nil])
            #expect(try await registry.sockets(ofUser: "u").map(\.socketID) == ["s1"])
            #expect(try await registry.node("holder")?.alive == true)
            // Only the user hash was read whole (by sockets(ofUser:)), never the table.
            #expect(try await commandCalls(client, "hgetall") - fullReads == 2, "the user hash and the node record, nothing else")
        }
    }

    @Test("a reporter's heartbeat is one round trip: it keeps the registered incarnation and start time, or makes them")
    func reporterHeartbeat() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            try await register(writer, prefix: "other", count: 500)
            var trips = client.metrics.roundTripCount
            let (first, node) = try await writer.report(nodeID: "http-node", incarnation: nil, address: "10.0.0.9:80", meta: ["k": "v"], userCount: 3)
            #expect(client.metrics.roundTripCount - trips == 1)
            #expect(first.status == .new)
            let made = try #require(first.incarnation)
            #expect(node.incarnation == made && node.alive && node.address == "10.0.0.9:80" && node.meta == ["k": "v"] && node.userCount == 3)
            _ = await writer.apply(nodeID: "http-node", incarnation: made, events: [.connect(socketID: "hs", userID: nil, meta: [:], connectedAt: Date())])
            trips = client.metrics.roundTripCount
            let (again, same) = try await writer.report(nodeID: "http-node", incarnation: nil, address: nil, meta: nil, userCount: nil)
            #expect(client.metrics.roundTripCount - trips == 1)
            #expect(again.status == .ok && again.incarnation == made)
            #expect(same.startedAt == node.startedAt && same.address == "10.0.0.9:80" && same.socketCount == 1)
            let (replaced, renamed) = try await writer.report(nodeID: "http-node", incarnation: "chosen", address: nil, meta: nil, userCount: nil)
            #expect(replaced.status == .replaced && renamed.incarnation == "chosen")
            #expect(try await PresenceRegistry(client: client, configuration: fastConfiguration).node("http-node")?.socketCount == 1,
                    "a reporter's socket count is its set's size")
        }
    }
}
