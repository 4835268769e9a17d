import Foundation
import Logging
@testable import Presence
import PresenceTestSupport
import Testing

/// The watcher (`docs/changes.md`): dead nodes announced within one heartbeat of their expiry,
/// once, by whichever instance holds the lease.
@Suite("Change stream: the watcher")
struct ChangeWatcherTests {
    /// Heartbeat 500 ms, node TTL 2 s: the defaults' ratio (2 s, 6 s), and an interval long
    /// enough beside the walk's few round trips on a loaded test machine.
    let configuration = PresenceConfiguration(
        heartbeatInterval: .milliseconds(500), nodeTTL: .seconds(2), socketTTL: .seconds(60), nodeRetention: .seconds(60))

    func connect(_ socketID: String, _ userID: String?) -> SocketEvent {
        .connect(socketID: socketID, userID: userID, meta: [:], connectedAt: Date())
    }

    /// Runs `body` with watchers running as services (cancelled after it).
    func withWatchers<T: Sendable>(
        _ client: RedisClient, ids: [String], _ body: @Sendable ([ChangeWatcher]) async throws -> T
    ) async throws -> T {
        let watchers = ids.map { ChangeWatcher(client: client, configuration: configuration, id: $0, logger: testLogger("watcher.\($0)")) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for watcher in watchers { group.addTask { try await watcher.run() } }
            defer { group.cancelAll() }
            return try await body(watchers)
        }
    }

    /// Runs `body` with a client of a fresh `topology`, a writer, a registry and a watcher (not running).
    func withParts(
        _ topology: Topology, _ body: @Sendable (RedisClient, PresenceWriter, PresenceRegistry, ChangeWatcher) async throws -> Void
    ) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            try await body(
                client, PresenceWriter(client: client, configuration: configuration), PresenceRegistry(client: client, configuration: configuration),
                ChangeWatcher(client: client, configuration: configuration, id: "w1", logger: testLogger("watcher")))
        }
    }

    /// Keeps a node heartbeating while `body` runs.
    func keepingAlive<T: Sendable>(_ writer: PresenceWriter, _ nodeID: String, _ body: @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    _ = try? await writer.heartbeat(NodeHeartbeat(nodeID: nodeID, incarnation: "\(nodeID)-1", startedAt: Date()))
                    try await Task.sleep(for: configuration.heartbeatInterval)
                }
            }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// Polls the stream until `done` holds of it, for up to `timeout`.
    func waitForChanges(_ registry: PresenceRegistry, timeout: Duration, _ done: ([PresenceChange]) -> Bool) async throws -> [PresenceChange] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let changes = try await registry.recordedChanges()
            if done(changes) || ContinuousClock.now > deadline { return changes }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A crashed node A (sockets of u1, u2 and none) beside a live node B (a socket of u2).
    func crashScenario(_ writer: PresenceWriter) async throws -> Int {
        _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "A-1", startedAt: Date()))
        _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "B", incarnation: "B-1", startedAt: Date()))
        _ = await writer.apply(nodeID: "A", incarnation: "A-1", events: [connect("a1", "u1"), connect("a2", "u2"), connect("a3", nil)])
        _ = await writer.apply(nodeID: "B", incarnation: "B-1", events: [connect("b1", "u2")])
        // A's last heartbeat: it expires one node TTL later.
        let beat = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "A-1", startedAt: Date()))
        return Int(beat.expiresAt.timeIntervalSince1970 * 1000)
    }

    /// Whether the crash scenario's changes are all in: the user going offline and the three
    /// disconnects (user entries go before records, so the offline can come first).
    static func crashRecorded(_ changes: [PresenceChange]) -> Bool {
        changes.contains { $0.kind == .userOffline } && changes.filter { $0.kind == .socketDisconnected }.count >= 3
    }

    func checkCrash(_ changes: [PresenceChange], expiresAt: Int, bound: Duration) {
        let down = changes.filter { $0.kind == .nodeDown }
        #expect(down.map(\.nodeID) == ["A"], "node.down exactly once")
        let disconnects = changes.filter { $0.kind == .socketDisconnected }
        #expect(Set(disconnects.compactMap(\.socketID)) == ["a1", "a2", "a3"])
        #expect(disconnects.count == 3, "each disconnect exactly once")
        #expect(disconnects.allSatisfy { $0.reason == .nodeDown && $0.nodeID == "A" })
        #expect(changes.filter { $0.kind == .userOffline }.map(\.userID) == ["u1"], "u2 is still online on B")
        for change in down + disconnects {
            #expect(change.id.milliseconds - expiresAt <= bound.milliseconds, "\(change.kind) \(change.id.milliseconds - expiresAt) ms after the expiry")
        }
        if let first = down.first {
            #expect(first.id.milliseconds >= expiresAt, "announced before it expired")
        }
    }

    @Test("a node that stops heartbeating: node.down, its sockets' node_down disconnects and user.offline within one heartbeat of its expiry", arguments: [Topology.standalone, .cluster])
    func crashAnnounced(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: configuration)
            let registry = PresenceRegistry(client: client, configuration: configuration)
            try await keepingAlive(writer, "B") {
                try await withWatchers(client, ids: ["w1"]) { _ in
                    let expiresAt = try await crashScenario(writer)
                    let (changes, slack) = try await measuringSchedulingSlack {
                        try await waitForChanges(registry, timeout: configuration.nodeTTL + .seconds(5)) { Self.crashRecorded($0) }
                    }
                    // Announcing and walking is a chain of dependent steps (the watcher's timer, the
                    // pass's reads, the announce script, the walk's pages), each of which a loaded
                    // machine may delay by up to the stall measured meanwhile.
                    checkCrash(changes, expiresAt: expiresAt, bound: configuration.heartbeatInterval + slack * 3)
                    #expect(try await registry.sockets(["a1", "a2", "a3"]) == [nil, nil, nil])
                    #expect(try await client.send("HGET", configuration.keys.goneNodes, "A").string?.hasPrefix("d\u{1F}A-1") == true)
                    // A comes back (a partition healed): node.up, and the mark goes.
                    let back = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "A-1", startedAt: Date()))
                    #expect(back.status == .revived)
                    let after = try await registry.recordedChanges()
                    #expect(after.filter { $0.nodeID == "A" && $0.kind.rawValue.hasPrefix("node.") }.map(\.kind) == [.nodeUp, .nodeDown, .nodeUp])
                    #expect(try await client.send("HEXISTS", configuration.keys.goneNodes, "A").int == 0)
                    #expect(try await client.send("HEXISTS", configuration.keys.node("A"), "down").int == 0)
                }
            }
        }
    }

    @Test("a node heartbeating while the watcher disconnects its sockets stays dead (status down) until the walk is done, then revives", arguments: [Topology.standalone, .cluster])
    func revivalWaitsForTheWalk(_ topology: Topology) async throws {
        try await withParts(topology) { client, writer, registry, watcher in
            let heartbeat = NodeHeartbeat(nodeID: "A", incarnation: "A-1", startedAt: Date())
            _ = try await writer.heartbeat(heartbeat)
            _ = await writer.apply(nodeID: "A", incarnation: "A-1", events: [connect("a1", "u1"), connect("a2", nil)])
            /// A's entry once the Redis clock (which the watcher reads too) has passed its expiry.
            func expiredEntry() async throws -> NodeTable.Entry {
                while true {
                    let table = NodeTable(time: try await client.send("TIME"), fields: try await client.send("HGETALL", configuration.keys.nodeTable))
                    if let entry = table.entries["A"], entry.expiresAt <= table.now { return entry }
                    await Task.yield()
                }
            }
            // A expires 20 ms from now.
            let short = try await writer.heartbeat(heartbeat, ttl: .milliseconds(20))
            let entry = try await expiredEntry()
            #expect(entry.expiresAt == Int(short.expiresAt.timeIntervalSince1970 * 1000))
            // Announced, its walk not started, a watcher holding the lease: the heartbeat writes nothing.
            _ = try await watcher.holdLease(false)
            #expect(try await watcher.announceDown(node: "A", entry: entry) == 1)
            let held = try await writer.heartbeat(heartbeat)
            #expect(held.status == .down && !held.needsResync)
            #expect(try await client.send("HGET", configuration.keys.nodeTable, "A").string == entry.raw, "the entry stays as it was")
            // The walk disconnects both (nothing came back meanwhile), then the heartbeat revives A.
            try await watcher.pass()
            let disconnected = try await registry.recordedChanges().filter { $0.kind == .socketDisconnected }
            #expect(Set(disconnected.compactMap(\.socketID)) == ["a1", "a2"] && disconnected.allSatisfy { $0.reason == .nodeDown })
            let back = try await writer.heartbeat(heartbeat)
            #expect(back.status == .revived && back.needsResync)
            let nodeChanges = try await registry.recordedChanges().filter { $0.nodeID == "A" && $0.kind.rawValue.hasPrefix("node.") }
            #expect(nodeChanges.map(\.kind) == [.nodeUp, .nodeDown, .nodeUp])
            // Without a watcher holding the lease nobody walks: a heartbeat revives at once.
            _ = try await writer.heartbeat(heartbeat, ttl: .milliseconds(20))
            #expect(try await watcher.announceDown(node: "A", entry: try await expiredEntry()) == 1)
            _ = try await client.send("DEL", configuration.keys.watcherLease)
            #expect(try await writer.heartbeat(heartbeat).status == .revived)
        }
    }

    @Test("two watchers at once, and passes run concurrently besides: no change recorded twice", arguments: [Topology.standalone, .cluster])
    func noDuplicates(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: configuration)
            let registry = PresenceRegistry(client: client, configuration: configuration)
            try await keepingAlive(writer, "B") {
                try await withWatchers(client, ids: ["w1", "w2"]) { watchers in
                    let expiresAt = try await crashScenario(writer)
                    try await waitUntilRedisTime(client, passes: expiresAt)
                    // Besides the lease holder, passes that ignore the lease (a stalled former holder).
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for watcher in watchers + watchers { group.addTask { try await watcher.pass() } }
                        try await group.waitForAll()
                    }
                    let changes = try await waitForChanges(registry, timeout: .seconds(3)) { Self.crashRecorded($0) }
                    try await Task.sleep(for: configuration.heartbeatInterval * 2)
                    #expect(try await registry.recordedChanges() == changes, "a later pass recorded more")
                    checkCrash(changes, expiresAt: expiresAt, bound: .seconds(60))
                }
            }
        }
    }

    @Test("a watcher killed midway: the next one takes the lease over and finishes, nothing lost", arguments: [Topology.standalone, .cluster])
    func takeover(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: configuration)
            let registry = PresenceRegistry(client: client, configuration: configuration)
            let keys = configuration.keys
            try await keepingAlive(writer, "B") {
                // The first watcher holds the lease, announces A down, and dies before its sockets.
                let first = ChangeWatcher(client: client, configuration: configuration, id: "killed", logger: testLogger("watcher.killed"))
                let expiresAt = try await crashScenario(writer)
                try await waitUntilRedisTime(client, passes: expiresAt)
                let entry = try #require(NodeTable.entry(try await client.send("HGET", keys.nodeTable, "A").string ?? ""))
                #expect(try await first.holdLease(false))  // held (again) when it dies
                #expect(try await first.announceDown(node: "A", entry: entry) == 1)
                #expect(try await client.send("GET", keys.watcherLease).string == "killed")
                try await withWatchers(client, ids: ["heir"]) { _ in
                    let changes = try await waitForChanges(registry, timeout: .seconds(5)) { Self.crashRecorded($0) }
                    checkCrash(changes, expiresAt: expiresAt, bound: .seconds(60))
                    // (Eventually: on a starved machine a lease can lapse between renewals and be taken again.)
                    try await eventually("the heir to hold the lease") { try await client.send("GET", keys.watcherLease).string == "heir" }
                }
            }
        }
    }

    @Test("a node that left registers again with the same incarnation only once the watcher removed its sockets (node_leaving meanwhile)")
    func reregistrationWaitsForTheWalk() async throws {
        try await withParts(.standalone) { client, writer, registry, watcher in
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "L", incarnation: "L-1", startedAt: Date()))
            _ = await writer.apply(nodeID: "L", incarnation: "L-1", events: [connect("l1", "lu")])
            #expect(try await writer.leave(nodeID: "L", incarnation: "L-1"))
            _ = try await watcher.holdLease(false)
            do {
                _ = try await writer.report(nodeID: "L", incarnation: "L-1", address: nil, meta: nil, userCount: nil)
                Issue.record("registered again while its sockets were being removed")
            } catch let error as PresenceError {
                #expect(error.code == .nodeLeaving)
            }
            #expect(try await client.send("HEXISTS", configuration.keys.nodeTable, "L").int == 0, "nothing written")
            try await watcher.pass()
            let (result, _) = try await writer.report(nodeID: "L", incarnation: "L-1", address: nil, meta: nil, userCount: nil)
            #expect(result.status == .new && result.needsResync)
            // Written again after the walk: nothing removes it now.
            _ = await writer.apply(nodeID: "L", incarnation: "L-1", events: [connect("l1", "lu")])
            try await watcher.pass()
            #expect(try await registry.sockets(["l1"]).first??.nodeID == "L")
        }
    }

    @Test("a node whose walk fails does not stop the others: the pass goes on, then reports the failure")
    func failingNodeDoesNotStopThePass() async throws {
        try await withParts(.standalone) { client, writer, registry, watcher in
            for node in ["X", "Y"] {
                _ = try await writer.heartbeat(NodeHeartbeat(nodeID: node, incarnation: "\(node)-1", startedAt: Date()))
                _ = await writer.apply(nodeID: node, incarnation: "\(node)-1", events: [connect("\(node.lowercased())1", nil)])
                _ = try await writer.heartbeat(NodeHeartbeat(nodeID: node, incarnation: "\(node)-1", startedAt: Date()), ttl: .milliseconds(20))
            }
            // X's socket set is not a set (corrupt, or its shard failing): its walk fails first (X < Y).
            _ = try await client.send("DEL", configuration.keys.nodeSockets("X"))
            _ = try await client.send("SET", configuration.keys.nodeSockets("X"), "not a set")
            while try await registry.sockets(["y1"]).first! != nil { await Task.yield() }
            await #expect(throws: RedisError.self) { try await watcher.pass() }
            let disconnected = try await registry.recordedChanges().filter { $0.kind == .socketDisconnected }.compactMap(\.socketID)
            #expect(disconnected == ["y1"], "Y walked although X failed before it")
            #expect(try await client.send("HGET", configuration.keys.goneNodes, "X").string?.hasPrefix("p") == true, "X is left for the next pass")
        }
    }

    @Test("the last node leaving keeps its mark for the watcher (the emptied table has no TTL to copy)", arguments: [Topology.standalone, .cluster])
    func lastNodeLeaves(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: configuration)
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "L", incarnation: "L-1", startedAt: Date()))
            #expect(try await writer.leave(nodeID: "L", incarnation: "L-1"))
            #expect(try await client.send("EXISTS", configuration.keys.nodeTable).int == 0)
            #expect(try await client.send("HGET", configuration.keys.goneNodes, "L").string == "p\u{1F}L-1\u{1F}node_left")
            #expect(try await client.send("PTTL", configuration.keys.goneNodes).int ?? 0 > 0)
        }
    }

    @Test("a node that leaves: node.left, then its sockets' node_left disconnects, once, though node and watcher both remove them")
    func leftNode() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: configuration)
            try await withWatchers(client, ids: ["w"]) { _ in
                let running = try await startNode("L", client: client, configuration: configuration)
                try running.node.connected(socketID: "l1", userID: "lu")
                try running.node.connected(socketID: "l2")
                try await running.node.flush()
                try await running.stop()
                let changes = try await waitForChanges(registry, timeout: .seconds(3)) { changes in
                    changes.filter { $0.kind == .socketDisconnected }.count >= 2 && changes.contains { $0.kind == .userOffline }
                }
                try await Task.sleep(for: configuration.heartbeatInterval * 2)
                #expect(try await registry.recordedChanges() == changes)
                let nodeKinds: [PresenceChange.Kind] = changes.map(\.kind).filter { $0 == .nodeUp || $0 == .nodeLeft }
                #expect(nodeKinds == [.nodeUp, .nodeLeft])
                let disconnects = changes.filter { $0.kind == .socketDisconnected }
                #expect(disconnects.count == 2)
                #expect(disconnects.allSatisfy { $0.reason == .nodeLeft })
            }
        }
    }
}
