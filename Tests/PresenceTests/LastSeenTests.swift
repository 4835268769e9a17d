import Foundation
import Logging
@testable import Presence
import PresenceTestSupport
import Testing

/// Last seen, socket tombstones and the exact users-online count (`docs/data-model.md`, "Last
/// seen"), written by the script calls that record the change stream, on every topology.
@Suite("Last seen, socket history and users online")
struct LastSeenTests {
    let keys = PresenceKeys(prefix: "presence")

    /// The tombstone of a socket as stored (written over its record), whatever the socket's state.
    func tombstone(_ client: RedisClient, _ socketID: String) async throws -> SocketDeparture? {
        try await client.send("GET", keys.socket(socketID)).string.flatMap(SocketDeparture.init(decoding:))
    }

    /// Runs `body` on a fresh Redis of `topology` with `nodes` registered (incarnation: the id in lower case, then 1).
    func withNodes(
        _ topology: Topology, _ nodes: [String], _ body: @Sendable @escaping (RedisClient, PresenceWriter, PresenceRegistry) async throws -> Void
    ) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            try await beat(writer, nodes)
            try await body(client, writer, PresenceRegistry(client: client, configuration: fastConfiguration))
        }
    }

    /// Heartbeats `nodes` (as ``withNodes(_:_:_:)`` registered them): alive for a node TTL from
    /// now, however long the test took so far on a loaded machine.
    func beat(_ writer: PresenceWriter, _ nodes: [String]) async throws {
        for node in nodes { _ = try await writer.heartbeat(NodeHeartbeat(nodeID: node, incarnation: node.lowercased() + "1", startedAt: Date())) }
    }

    @Test("lastSeenAt appears when the user's last socket goes, not before; unchanged while online; updated by the next offline", arguments: Topology.allCases)
    func lastSeen(_ topology: Topology) async throws {
        try await withNodes(topology, ["A"]) { client, writer, registry in
            #expect(try await registry.user("u") == PresenceUser(userID: "u", sockets: [], lastSeenAt: nil), "never seen")
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s1", "u"), connectEvent("s2", "u")])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s1", userID: "u")])
            try await beat(writer, ["A"])
            #expect(try await registry.user("u").online)
            #expect(try await client.send("EXISTS", keys.lastSeen("u")).int == 0, "not the user's last socket")

            let before = try await redisNow(client)
            // The user unknown to the caller: removed in the writer's second step, which records it.
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s2", userID: nil)])
            let after = try await redisNow(client)
            let first = try #require(try await registry.user("u").lastSeenAt)
            let firstMs = Int((first.timeIntervalSince1970 * 1000).rounded())
            #expect((before...after).contains(firstMs))
            #expect(try await registry.user("u").online == false)

            // Online again: no lastSeenAt while online, and the stored time is left as it was.
            try await waitUntilRedisTime(client, passes: firstMs)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s3", "u")])
            try await beat(writer, ["A"])
            let online = try await registry.user("u")
            #expect(online.online && online.lastSeenAt == nil)
            #expect(try await client.send("GET", keys.lastSeen("u")).string == String(firstMs))
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s3", userID: "u")])
            let second = try #require(try await registry.user("u").lastSeenAt)
            #expect(second > first)
            // Kept for the retention (30 days by default).
            let ttl = try await client.send("PTTL", keys.lastSeen("u")).int ?? 0
            #expect(ttl > 29 * 86_400_000 && ttl <= 30 * 86_400_000)
        }
    }

    @Test("a user whose node crashed shows no lastSeenAt (not an earlier one) until the crash is announced", arguments: [Topology.standalone, .cluster])
    func crashedNotAnnounced(_ topology: Topology) async throws {
        try await withNodes(topology, ["A"]) { client, writer, registry in
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s1", "u")])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s1", userID: "u")])
            #expect(try await registry.user("u").lastSeenAt != nil)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s2", "u")])
            // A stops heartbeating; no watcher runs.
            let beat = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a1", startedAt: Date()))
            try await waitUntilRedisTime(client, passes: Int(beat.expiresAt.timeIntervalSince1970 * 1000))
            let user = try await registry.user("u")
            #expect(!user.online && user.lastSeenAt == nil)
            #expect(try await client.send("EXISTS", keys.lastSeen("u")).int == 1, "the earlier one is still stored")
        }
    }

    @Test("a gone socket's disconnectedAt and reason: disconnected, node_left; none for a displaced record (written over by the new one; the user stays online, no last seen)", arguments: Topology.allCases)
    func socketHistory(_ topology: Topology) async throws {
        try await withNodes(topology, ["A", "B"]) { client, writer, registry in
            let early = Date()
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("gone", "u"), connectEvent("bare", nil), connectEvent("m", "mu", at: early)])
            let before = try await redisNow(client)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [
                .disconnect(socketID: "gone", userID: "u"), .disconnect(socketID: "bare", userID: nil),
            ])
            try await beat(writer, ["A"])
            let states = try await registry.lookup(["gone", "bare", "m", "never"])
            #expect(states.map(\.departure?.reason) == [.disconnected, .disconnected, nil, nil])
            #expect(states.map { $0.socket?.nodeID } == [nil, nil, "A", nil])
            let at = try #require(states[0].departure?.disconnectedAt)
            #expect(Int((at.timeIntervalSince1970 * 1000).rounded()) >= before)
            // sockets(_:) answers as before.
            #expect(try await registry.sockets(["gone", "m"]).map { $0?.nodeID } == [nil, "A"])
            // A disconnect reported again finds the tombstone, not a record of its own: the
            // tombstone stays the first one (when, why, its TTL), and a socket never seen gets none.
            let first = try await client.send("GET", keys.socket("gone")).string
            let outcomes = await writer.apply(nodeID: "A", incarnation: "a1", events: [
                .disconnect(socketID: "gone", userID: "u"), .disconnect(socketID: "never", userID: nil),
            ])
            #expect(try outcomes.map { try $0.get() } == [.notHeld, .notHeld])
            #expect(try await client.send("GET", keys.socket("gone")).string == first)
            #expect(try await client.send("PTTL", keys.socket("gone")).int ?? 0 > 86_400_000 - 60_000)
            #expect(try await client.send("EXISTS", keys.socket("never")).int == 0)

            // Moved: the record on A is displaced by B's connect; the user stays online.
            _ = await writer.apply(nodeID: "B", incarnation: "b1", events: [connectEvent("m", "mu", at: early.addingTimeInterval(1))])
            #expect(try await tombstone(client, "m") == nil)
            #expect(try await hasRecord(client, keys.socket("m")))
            try await beat(writer, ["B"])
            let moved = try await registry.lookup(["m"])[0]
            #expect(moved.socket?.nodeID == "B" && moved.departure == nil, "alive: no departure shown")
            #expect(try await client.send("EXISTS", keys.lastSeen("mu")).int == 0, "moved: the user never went offline")

            // Graceful leave of B: node_left, and the user's last seen.
            _ = try await writer.removeNode(nodeID: "B")
            let left = try await registry.lookup(["m"])[0]
            #expect(left.socket == nil && left.departure?.reason == .nodeLeft)
            #expect(try await registry.user("mu").lastSeenAt != nil)
            let ttl = try await client.send("PTTL", keys.socket("m")).int ?? 0
            #expect(ttl > 86_400_000 - 60_000 && ttl <= 86_400_000, "a day by default")
        }
    }

    @Test("both retentions expire their keys; zero keeps none", arguments: [Topology.standalone, .cluster])
    func retention(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            var short = fastConfiguration
            short.lastSeenRetention = .seconds(2)
            short.socketHistoryRetention = .seconds(2)
            let writer = PresenceWriter(client: client, configuration: short)
            let registry = PresenceRegistry(client: client, configuration: short)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s", "u")])
            let before = try await redisNow(client)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s", userID: "u")])
            let went = try await redisNow(client)
            let seen = try await registry.user("u").lastSeenAt
            let departure = try await registry.lookup(["s"])[0].departure
            var ttls: [Int] = []
            for key in [keys.lastSeen("u"), keys.socket("s")] { ttls.append(try await client.send("PTTL", key).int ?? 0) }
            #expect(ttls.allSatisfy { $0 == -2 || (0 < $0 && $0 <= 2000) }, "\(ttls): a TTL of the retention, or expired")
            // Written at `before` or later with a TTL of 2 s: there at least until before + 2 s
            // (a machine too loaded to read them by then can only check that they expire).
            if try await redisNow(client) < before + 2000 {
                #expect(seen != nil && departure != nil)
                #expect(ttls.allSatisfy { $0 > 0 })
            }
            try await waitUntilRedisTime(client, passes: went + 2000)
            // Redis expires a key once its TTL passed, on access at the latest.
            #expect(try await registry.user("u").lastSeenAt == nil)
            #expect(try await registry.lookup(["s"])[0].departure == nil)

            var none = fastConfiguration
            none.lastSeenRetention = .zero
            none.socketHistoryRetention = .zero
            let quiet = PresenceWriter(client: client, configuration: none)
            _ = await quiet.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("t", "v")])
            _ = await quiet.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "t", userID: "v")])
            #expect(try await client.send("EXISTS", keys.lastSeen("v")).int == 0)
            #expect(try await client.send("EXISTS", keys.socket("t")).int == 0, "the record deleted, no tombstone over it")
        }
    }

    @Test("users online is exact: a user on two nodes counts once; the count drops when the watcher announces a crashed node", arguments: [Topology.standalone, .cluster])
    func usersOnline(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let configuration = PresenceConfiguration(
                heartbeatInterval: .milliseconds(500), nodeTTL: .seconds(2), socketTTL: .seconds(60), nodeRetention: .seconds(60))
            let writer = PresenceWriter(client: client, configuration: configuration)
            let registry = PresenceRegistry(client: client, configuration: configuration)
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "A-1", startedAt: Date()))
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "B", incarnation: "B-1", startedAt: Date()))
            // Many users, so that on a cluster they spread over several counters.
            let users = (0..<40).map { "user-\($0)" }
            _ = await writer.apply(nodeID: "A", incarnation: "A-1", events: users.map { connectEvent("a-\($0)", $0) })
            _ = await writer.apply(nodeID: "B", incarnation: "B-1", events: users.prefix(10).map { connectEvent("b-\($0)", $0) } + [connectEvent("b-only", "solo")])
            var stats = try await registry.stats()
            #expect(stats.onlineUsers == 41 && stats.onlineUsersExact)
            if client.isCluster {
                let counters = try await Array(1..<ChangeStreams.clusterCount).asyncMap { try await client.send("GET", keys.onlineUsers($0)).string }
                #expect(counters.compactMap { $0 }.count >= 2, "counted per primary")
            }

            // A crashes (stops heartbeating): its users without a socket on B go offline when
            // the watcher announces it, with their last seen; the sockets' tombstones say node_down.
            let watcher = ChangeWatcher(client: client, configuration: configuration, id: "w", logger: quietLogger("watcher"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        _ = try? await writer.heartbeat(NodeHeartbeat(nodeID: "B", incarnation: "B-1", startedAt: Date()))
                        try await Task.sleep(for: configuration.heartbeatInterval)
                    }
                }
                defer { group.cancelAll() }
                let beat = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "A-1", startedAt: Date()))
                try await waitUntilRedisTime(client, passes: Int(beat.expiresAt.timeIntervalSince1970 * 1000))
                #expect(try await registry.stats().onlineUsers == 41, "A expired, no watcher yet: counted until announced")
                group.addTask { try await watcher.run() }
                try await eventually("the watcher to disconnect A's sockets") { try await registry.stats().onlineUsers == 11 }
            }
            stats = try await registry.stats()
            #expect(stats.onlineUsers == 11)
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "B", incarnation: "B-1", startedAt: Date()))
            #expect(try await tombstone(client, "a-user-20")?.reason == .nodeDown)
            #expect(try await registry.user("user-20").lastSeenAt != nil)
            #expect(try await registry.user("user-5").lastSeenAt == nil, "still online on B")
            #expect(try await registry.user("user-5").online)

            // With changes off the count is the nodes' reported sum, and says so.
            var off = configuration
            off.changes = false
            let fallback = try await PresenceRegistry(client: client, configuration: off).stats()
            #expect(!fallback.onlineUsersExact)
        }
    }

    @Test("bytes kept per user last seen and per socket tombstone")
    func bytes() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let ids = (0..<200).map { _ in ("socket-\(UUID().uuidString.prefix(13))", "user-\(UUID().uuidString.prefix(15))") }
            _ = await writer.apply(nodeID: "node-0123456789abcdef", incarnation: "inc-0123456789abcdef", events: ids.map { connectEvent($0.0, $0.1) })
            _ = await writer.apply(nodeID: "node-0123456789abcdef", incarnation: "inc-0123456789abcdef", events: ids.map {
                .disconnect(socketID: $0.0, userID: $0.1)
            })
            var seen = 0
            var gone = 0
            for (socket, user) in ids {
                seen += try await client.send("MEMORY", "USAGE", keys.lastSeen(user), "SAMPLES", "0").int ?? 0
                gone += try await client.send("MEMORY", "USAGE", keys.socket(socket), "SAMPLES", "0").int ?? 0
            }
            print("last seen: \(seen / ids.count) bytes per user; socket tombstone: \(gone / ids.count) bytes per socket (20-byte ids)")
            #expect(seen / ids.count > 0 && seen / ids.count < 110)
            #expect(gone / ids.count > 0 && gone / ids.count < 110)
        }
    }
}

