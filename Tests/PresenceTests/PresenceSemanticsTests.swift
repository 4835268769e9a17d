import Foundation
import Glibc
@testable import Presence
import PresenceTestSupport
import Testing

@Suite("Presence semantics against a real redis-server")
struct PresenceSemanticsTests {
    @Test("a: connected and not disconnected, by the current incarnation of a node with a fresh heartbeat", arguments: Topology.allCases)
    func aliveWhileConnected(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("node-a", client: client, address: "10.0.0.1:3000")
            try running.node.connected(socketID: "s1", userID: "u1", meta: ["room": "lobby"])
            try await running.node.flush()
            let socket = try #require(try await registry.socket("s1"))
            #expect(socket.nodeID == "node-a")
            #expect(socket.nodeIncarnation == running.node.incarnation)
            #expect(socket.nodeAddress == "10.0.0.1:3000")
            #expect(socket.userID == "u1")
            #expect(socket.meta == ["room": "lobby"])
            #expect(abs(socket.connectedAt.timeIntervalSinceNow) < 60)
            #expect(try await registry.socket("never-seen") == nil)
            try running.node.disconnected(socketID: "s1")
            try await running.node.flush()
            #expect(try await registry.socket("s1") == nil)
            #expect(!(try await hasRecord(client, PresenceKeys(prefix: "presence").socket("s1"))))
            try await running.stop()
        }
    }

    @Test("a: a crashed node's sockets, however many, read dead once its TTL passes, with no sweeper", arguments: Topology.allCases)
    func crashReadsDead(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("crashy", client: client)
            let ids = (0..<5_000).map { "crash-\($0)" }
            for id in ids { try running.node.connected(socketID: id, userID: "u\(Int(id.dropFirst(6))! % 50)") }
            try await running.node.flush()
            for chunk in ids.chunked(1000) { #expect(try await registry.sockets(Array(chunk)).allSatisfy { $0 != nil }) }
            await running.crash()
            let info = try #require(try await registry.node("crashy"))
            try await waitUntilRedisTime(client, passes: Int(info.expiresAt.timeIntervalSince1970 * 1000))
            for chunk in ids.chunked(1000) { #expect(try await registry.sockets(Array(chunk)).allSatisfy { $0 == nil }) }
            #expect(try await registry.node("crashy")?.alive == false)
            #expect(try await registry.sockets(ofUser: "u1").isEmpty)
            // No sweeper ran: the records are still there, only read as dead.
            #expect(try await client.send("SCARD", PresenceKeys(prefix: "presence").nodeSockets("crashy")).int == 5_000)
        }
    }

    @Test("b: a node restarting under the same id never revives its previous incarnation's sockets", arguments: Topology.allCases)
    func restartDoesNotRevive(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let first = try await startNode("pod-1", client: client)
            try first.node.connected(socketID: "old-1", userID: "u")
            try first.node.connected(socketID: "old-2")
            try await first.node.flush()
            await first.crash()
            // Restarted at once, well within the old incarnation's TTL.
            let second = try await startNode("pod-1", client: client)
            #expect(second.node.incarnation != first.node.incarnation)
            #expect(try await registry.sockets(["old-1", "old-2"]) == [nil, nil])
            #expect(try await registry.sockets(ofUser: "u").isEmpty)
            try second.node.connected(socketID: "new-1", userID: "u")
            try await second.node.flush()
            #expect(try await registry.socket("new-1")?.nodeIncarnation == second.node.incarnation)
            #expect(try await registry.sockets(ofUser: "u").map(\.socketID) == ["new-1"])
            // The new incarnation removed what the old one left in its set.
            let keys = PresenceKeys(prefix: "presence")
            #expect(try await client.send("SMEMBERS", keys.nodeSockets("pod-1")).array?.compactMap(\.string) == ["new-1"])
            #expect(!(try await hasRecord(client, keys.socket("old-1"))))
            try await second.stop()
        }
    }

    @Test("c: a late disconnect from node A never removes the socket now held by node B", arguments: Topology.allCases)
    func disconnectRace(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let a = try await startNode("A", client: client)
            let b = try await startNode("B", client: client)
            try a.node.connected(socketID: "S", userID: "u")
            try await a.node.flush()
            // The client reconnects to B with the same id before A notices the old connection died.
            try b.node.connected(socketID: "S", userID: "u")
            try await b.node.flush()
            // A's TTL refresh still covers S until A hears of the disconnect: it must not take S back.
            _ = try await a.node.writer.refresh(nodeID: "A", incarnation: a.node.incarnation, sockets: [("S", "u")])
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["B"])
            #expect(try a.node.disconnected(socketID: "S"))
            try await a.node.flush()
            #expect(try await registry.socket("S")?.nodeID == "B")
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["B"])
            // Through the writer too: the outcome says the socket was not A's.
            let outcome = await a.node.writer.apply(nodeID: "A", incarnation: a.node.incarnation, events: [.disconnect(socketID: "S", userID: nil)])
            #expect(try outcome[0].get() == .notHeld)
            #expect(try await registry.socket("S")?.nodeID == "B")
            #expect(try await client.send("PTTL", PresenceKeys(prefix: "presence").socket("S")).int ?? -2 > 0, "B's record keeps a TTL")
            // A connect report from A that is older than B's (delayed in flight) never displaces B.
            let stale = await a.node.writer.apply(nodeID: "A", incarnation: a.node.incarnation, events: [
                .connect(socketID: "S", userID: "u", meta: [:], connectedAt: Date(timeIntervalSinceNow: -60)),
            ])
            #expect(try stale[0].get() == .superseded)
            #expect(try await registry.socket("S")?.nodeID == "B")
            #expect(try await client.send("PTTL", PresenceKeys(prefix: "presence").socket("S")).int ?? -2 > 0, "B's record keeps a TTL")
            // …nor takes B's user entry, so A's coming disconnect cannot drop S from the user.
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["B"])
            let late = await a.node.writer.apply(nodeID: "A", incarnation: a.node.incarnation, events: [.disconnect(socketID: "S", userID: "u")])
            #expect(try late[0].get() == .notHeld)
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["B"])
            try await a.stop()
            try await b.stop()
        }
    }

    @Test("d: a heartbeat costs the same few commands with 0 and 10,000 sockets", arguments: Topology.allCases)
    func heartbeatCost(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            func commandsPerHeartbeat(node: String, sockets: Int) async throws -> Int {
                let events = (0..<sockets).map { SocketEvent.connect(socketID: "\(node)-\($0)", userID: nil, meta: [:], connectedAt: Date()) }
                let heartbeat = NodeHeartbeat(nodeID: node, incarnation: "i", startedAt: Date(), socketCount: sockets, userCount: 0)
                _ = try await writer.heartbeat(heartbeat)
                for chunk in events.chunked(1000) { _ = await writer.apply(nodeID: node, incarnation: "i", events: Array(chunk)) }
                let before = try await totalCalls(client)
                _ = try await writer.heartbeat(heartbeat)
                return try await totalCalls(client) - before - (try await primaryCount(client))  // minus the INFOs that measured
            }
            let empty = try await commandsPerHeartbeat(node: "empty", sockets: 0)
            let large = try await commandsPerHeartbeat(node: "large", sockets: 10_000)
            #expect(empty == large)
            #expect(large <= 14)  // 3 commands sent; the rest run inside the script
        }
    }

    @Test("d: the amortized TTL refresh touches each socket about once per socket TTL", arguments: Topology.allCases)
    func amortizedRefresh(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            // 2,000 sockets, refresh period 4 s, heartbeat 200 ms: 100 sockets per heartbeat.
            let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(3), socketTTL: .seconds(4))
            let running = try await startNode("refresher", client: client, configuration: configuration)
            for i in 0..<2_000 { try running.node.connected(socketID: "r\(i)") }
            try await running.node.flush()
            let clock = ContinuousClock()
            let start = clock.now
            let before = try await commandCalls(client, "pexpire")
            try await Task.sleep(for: .seconds(2))
            let refreshed = try await commandCalls(client, "pexpire") - before
            let elapsed = clock.now - start
            let heartbeats = Int((elapsed / .milliseconds(200)).rounded(.up)) + 1
            // Each heartbeat refreshes its node set (1) and a slice of ceil(2000 × 0.2 / 4) = 100 sockets.
            #expect(refreshed <= heartbeats * 101)
            #expect(refreshed >= 101)
            let ttl = try await client.send("PTTL", PresenceKeys(prefix: "presence").socket("r0")).int ?? 0
            #expect(ttl > 0 && ttl <= 10_000)
            try await running.stop()
        }
    }

    @Test("e: with no sweeper, everything a dead node left expires within its documented bound", arguments: Topology.allCases)
    func everythingExpires(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let configuration = PresenceConfiguration(
                heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(1), socketTTL: .seconds(1), nodeRetention: .zero, changesRetention: .seconds(1))
            let running = try await startNode("mortal", client: client, configuration: configuration)
            for i in 0..<300 { try running.node.connected(socketID: "m\(i)", userID: "u\(i % 7)", meta: ["i": "\(i)"]) }
            try await running.node.flush()
            await running.crash()
            // Bound: max(2.5 × socketTTL, nodeTTL + retention) after the last write.
            var longest = 0
            let keys = try await allKeys(client, changes: true)
            for key in keys {
                let ttl = try await client.send("PTTL", key).int ?? -1
                #expect(ttl != -1, "\(key) has no TTL")  // -2: it expired between SCAN and PTTL
                longest = max(longest, ttl)
            }
            #expect(!keys.isEmpty)
            #expect(longest <= 2_500)
            try await waitUntilRedisTime(client, passes: try await redisNow(client) + longest)
            // Every key's TTL has passed. DBSIZE would still count keys the expiry cycle has not
            // collected yet; an access expires a key on the spot, so ask for each one.
            for key in keys {
                #expect(try await client.send("EXISTS", key).int == 0, "\(key) outlived its TTL")
            }
            #expect(try await allKeys(client, changes: true).isEmpty)
        }
    }

    @Test("e: no key without a TTL after a full scenario", arguments: Topology.allCases)
    func everyKeyHasTTL(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            // The last node crashes too, leaving its keys to their TTLs.
            try await fullScenario(client).crash()
            let keys = try await allKeys(client, changes: true)
            #expect(!keys.isEmpty)
            for key in keys {
                let ttl = try await client.send("PTTL", key).int ?? -1
                #expect(ttl > 0, "\(key) has no TTL")
            }
        }
    }

    @Test("resync: after FLUSHALL the node registers again within a heartbeat (plus measured slack) and restores every socket")
    func resyncAfterFlush() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("survivor", client: client)
            let ids = (0..<3_000).map { "f\($0)" }
            for id in ids { try running.node.connected(socketID: id, userID: "u\(id.count)") }
            try await running.node.flush()
            // Timers are probed from before the FLUSHALL: a stall right after it delays the node's
            // next heartbeat as much as one later on.
            let ((flushedAt, registered, restored), slack) = try await measuringSchedulingSlack {
                // When the FLUSHALL ran, by the Redis clock: TIME right after it, in the same transaction.
                let flush = await client.transaction([RedisCommand("FLUSHALL"), RedisCommand("TIME")])
                let flushedAt = redisDate(try flush[1].get())
                #expect(try await registry.socket("f1") == nil)
                let registered = try await firstHeartbeat(of: ["survivor"], redis: server.configuration, configuration: fastConfiguration)
                let restored = try await eventually("all sockets restored") {
                    for chunk in ids.chunked(1000) where try await registry.sockets(Array(chunk)).contains(where: { $0 == nil }) {
                        return false
                    }
                    return true
                }
                return (flushedAt, registered, restored)
            }
            let back = Duration.seconds(registered.at.timeIntervalSince(flushedAt))
            print("registered again \(back) after FLUSHALL, all 3,000 sockets restored \(restored) later (heartbeat 200 ms, timers late by up to \(slack), round trip up to \(registered.roundTrip))")
            // The next heartbeat tick finds the node gone and registers it again before rewriting its
            // sockets; the tick and the writer it wakes may each be late by the measured slack, and
            // the heartbeat then takes one trip to Redis.
            #expect(back <= fastConfiguration.heartbeatInterval + slack * 2 + registered.roundTrip)
            #expect(try await registry.sockets(ofUser: "u2").count == 10)
            try await running.stop()
        }
    }

    @Test("Redis away: the node keeps its sockets, buffers nothing, and resyncs when Redis is back")
    func redisAway() async throws {
        let server = try await RedisServer.start()
        let port = server.port
        var configuration = server.configuration
        configuration.maximumBackoff = .milliseconds(100)
        try await withClient(configuration) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("steady", client: client)
            try running.node.connected(socketID: "before")
            try await running.node.flush()
            server.stop()
            try running.node.connected(socketID: "during")
            #expect(try running.node.disconnected(socketID: "before"))
            await #expect(throws: (any Error).self) { try await running.node.flush() }
            #expect(running.node.socketCount == 1)
            let restarted = try await RedisServer.start(port: port)
            _ = try await eventually("the node to resync") {
                try await registry.socket("during") != nil
            }
            #expect(try await registry.socket("before") == nil)
            try await running.stop()
            restarted.stop()
        }
    }

    @Test("bad ids are rejected before Redis is touched", arguments: Topology.allCases)
    func badIDs(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            // A heartbeat far away, so that nothing but this test's calls can reach Redis meanwhile.
            let quiet = PresenceConfiguration(heartbeatInterval: .seconds(50), nodeTTL: .seconds(60))
            let running = try await startNode("strict", client: client, configuration: quiet)
            let keysBefore = Set(try await allKeys(client))
            let calls = try await totalCalls(client)
            for bad in ["", String(repeating: "x", count: 257), "a\u{0}b", "new\nline", "\u{202E}"] {
                #expect(throws: PresenceError.self) { try running.node.connected(socketID: bad) }
                #expect(throws: PresenceError.self) { try running.node.connected(socketID: "ok", userID: bad) }
                #expect(throws: PresenceError.self) { try running.node.disconnected(socketID: bad) }
                await #expect(throws: PresenceError.self) { try await registry.socket(bad) }
                await #expect(throws: PresenceError.self) { try await registry.node(bad) }
                await #expect(throws: PresenceError.self) { try await registry.sockets(ofUser: bad) }
            }
            #expect(throws: PresenceError.self) { try running.node.connected(socketID: "ok", meta: ["k": String(repeating: "v", count: 2000)]) }
            await #expect(throws: PresenceError.self) { try await registry.sockets((0..<1001).map { "s\($0)" }) }
            #expect(throws: PresenceError.self) { try PresenceNode(nodeID: "bad\u{0}", client: client) }
            try await running.node.flush()
            #expect(running.node.socketCount == 0)
            // Nothing ran in between but the INFOs that took the first count (one per primary).
            #expect(try await totalCalls(client) - calls == (try await primaryCount(client)))
            #expect(Set(try await allKeys(client)) == keysBefore)
            try await running.stop()
        }
    }

    @Test("graceful shutdown leaves the registry: sockets dead at once, keys removed", arguments: Topology.allCases)
    func gracefulLeave(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("leaver", client: client)
            for i in 0..<50 { try running.node.connected(socketID: "l\(i)", userID: "lu") }
            try await running.node.flush()
            try await running.stop()
            #expect(try await registry.socket("l1") == nil)
            #expect(try await registry.node("leaver") == nil)
            #expect(try await allKeys(client).isEmpty)
        }
    }

    @Test("graceful shutdown right after a Redis outage still leaves: the leave outlasts the client's reconnect backoff")
    func leaveAfterOutage() async throws {
        let server = try await RedisServer.start()
        var configuration = server.configuration
        configuration.commandTimeout = .milliseconds(200)
        configuration.connectTimeout = .milliseconds(200)
        configuration.minimumBackoff = .milliseconds(800)
        configuration.maximumBackoff = .seconds(1)
        try await withClient(server) { (admin: RedisClient) async throws in
            let registry = PresenceRegistry(client: admin, configuration: fastConfiguration)
            try await withClient(configuration) { (client: RedisClient) async throws in
                let running = try await startNode("outage-leaver", client: client)
                for i in 0..<20 { try running.node.connected(socketID: "o\(i)") }
                try await running.node.flush()
                #expect(try await registry.node("outage-leaver")?.alive == true)

                // Frozen Redis: a write times out, then a reconnect's setup times out, and the client
                // backs off (800 ms) before it tries again.
                let errors = client.metrics.errorCount
                server.signal(SIGSTOP)
                try running.node.connected(socketID: "during-outage")
                await #expect(throws: RedisError.self) { try await running.node.flush() }
                _ = try await eventually("a failed reconnect, then the backoff") { client.metrics.errorCount >= errors + 2 }
                server.signal(SIGCONT)

                // Shut down inside the backoff window: the first leave attempt fails fast.
                try await running.stop()
                #expect(try await registry.node("outage-leaver") == nil)
                #expect(try await registry.socket("o1") == nil)
                #expect(try await allKeys(admin).isEmpty)
            }
        }
    }
}

/// Nodes connecting, disconnecting, racing, crashing and restarting; a sweep. Returns the one node
/// left running (`full-a`, restarted, holding `fa-new` of `user1`): the caller crashes or stops it.
func fullScenario(_ client: RedisClient) async throws -> RunningNode {
    let a = try await startNode("full-a", client: client)
    let b = try await startNode("full-b", client: client)
    for i in 0..<200 { try a.node.connected(socketID: "fa\(i)", userID: "user\(i % 13)", meta: ["i": "\(i)"]) }
    for i in 0..<200 { try b.node.connected(socketID: "fb\(i)", userID: i.isMultiple(of: 2) ? "user\(i % 5)" : nil) }
    try await a.node.flush()
    try await b.node.flush()
    for i in 0..<50 { try b.node.connected(socketID: "fa\(i)", userID: "user\(i % 13)") }  // reconnect races
    for i in 0..<100 { try a.node.disconnected(socketID: "fa\(i)") }
    for i in 150..<200 { try b.node.disconnected(socketID: "fb\(i)") }
    try await a.node.flush()
    try await b.node.flush()
    await a.crash()
    let a2 = try await startNode("full-a", client: client)
    try a2.node.connected(socketID: "fa-new", userID: "user1")
    try await a2.node.flush()
    await b.crash()
    let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
    let info = try #require(try await registry.node("full-b"))
    try await waitUntilRedisTime(client, passes: Int(info.expiresAt.timeIntervalSince1970 * 1000))
    let swept = try await Sweeper(client: client, configuration: fastConfiguration).sweep()
    #expect(swept.nodes.map(\.nodeID) == ["full-b"])
    return a2
}

/// Commands executed so far on every primary (INFO commandstats, each INFO itself included: one
/// per primary, see `primaryCount`).
func totalCalls(_ client: RedisClient) async throws -> Int {
    var total = 0
    for primary in try await client.primaryClients() {
        let info = try await primary.send("INFO", "commandstats").string ?? ""
        total += info.split(separator: "\r\n").reduce(0) { sum, line in
            guard let range = line.range(of: "calls=") else { return sum }
            return sum + (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
        }
    }
    return total
}

/// How many primaries serve the registry (1 on a standalone server).
func primaryCount(_ client: RedisClient) async throws -> Int { try await client.primaryClients().count }

/// Calls of one command on every primary (INFO commandstats), inside scripts included.
func commandCalls(_ client: RedisClient, _ command: String) async throws -> Int {
    var total = 0
    for primary in try await client.primaryClients() {
        let info = try await primary.send("INFO", "commandstats").string ?? ""
        guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_\(command):") }),
              let range = line.range(of: "calls=") else { continue }
        total += Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }
    return total
}
