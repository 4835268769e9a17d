import Foundation
@testable import Presence
import PresenceTestSupport
import Testing

/// The change stream recorded by the writers (`docs/changes.md`), on every topology.
@Suite("Change stream: what each write records")
struct ChangeStreamTests {
    let keys = PresenceKeys(prefix: "presence")

    /// The kinds recorded about one socket, in order.
    func history(_ changes: [PresenceChange], socket: String) -> [String] {
        changes.filter { $0.socketID == socket }.map { "\($0.kind.rawValue) \($0.nodeID ?? "")\($0.reason.map { " " + $0.rawValue } ?? "")" }
    }

    /// The user changes and socket changes of one user, in order.
    func history(_ changes: [PresenceChange], user: String) -> [String] {
        changes.filter { $0.userID == user }.map { "\($0.kind.rawValue)\($0.socketID.map { " " + $0 } ?? "")" }
    }

    @Test("every change type, in order per socket and per user; user.offline only with the last socket", arguments: Topology.allCases)
    func everyType(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let start = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a1", startedAt: Date()))
            #expect(start.status == .new)
            let first = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s1", "u1"), connectEvent("s2", nil)])
            #expect(first.map { try? $0.get() } == [.created, .created])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s3", "u1")])
            // A batch sent again (after a failure, say) records nothing new.
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s3", "u1")])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s1", userID: "u1")])
            // The user unknown to the caller: read from the record, removed in a second step.
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s3", userID: nil)])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s2", userID: nil)])
            // A disconnect of a socket not held records nothing.
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s2", userID: nil)])
            #expect(try await writer.leave(nodeID: "A", incarnation: "a1"))

            let changes = try await registry.recordedChanges()
            #expect(history(changes, user: "u1") == [
                "socket.connected s1", "user.online", "socket.connected s3", "socket.disconnected s1",
                "socket.disconnected s3", "user.offline",
            ])
            #expect(history(changes, socket: "s2") == ["socket.connected A", "socket.disconnected A disconnected"])
            #expect(history(changes, socket: "s1") == ["socket.connected A", "socket.disconnected A disconnected"])
            let nodes = changes.filter { $0.kind.rawValue.hasPrefix("node.") }.map { "\($0.kind.rawValue) \($0.nodeID!) \($0.incarnation!)" }
            #expect(nodes == ["node.up A a1", "node.left A a1"])
            let connected = try #require(changes.first { $0.socketID == "s1" })
            #expect(connected.incarnation == nil)  // socket changes name the node, not its incarnation
            #expect(abs(try #require(connected.connectedAt).timeIntervalSinceNow) < 60)
            #expect(abs(connected.at.timeIntervalSinceNow) < 60)
            #expect(changes.count == 10)
        }
    }

    @Test("a socket moving between nodes records moved for the old node, and its user stays online", arguments: Topology.allCases)
    func moved(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a1", startedAt: Date()))
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "B", incarnation: "b1", startedAt: Date()))
            let early = Date()
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("m", "u"), connectEvent("bare", nil)])
            let later = early.addingTimeInterval(1)
            let movedTo = await writer.apply(nodeID: "B", incarnation: "b1", events: [connectEvent("m", "u", at: later), connectEvent("bare", nil, at: later)])
            #expect(movedTo.map { try? $0.get() } == [.created, .created])
            // A's late disconnects find B's records: nothing is removed, nothing recorded.
            let late = await writer.apply(nodeID: "A", incarnation: "a1", events: [
                .disconnect(socketID: "m", userID: "u"), .disconnect(socketID: "bare", userID: nil),
            ])
            #expect(late.map { try? $0.get() } == [.notHeld, .notHeld])
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "B", incarnation: "b1", startedAt: Date()))
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["B"])
            _ = await writer.apply(nodeID: "B", incarnation: "b1", events: [.disconnect(socketID: "m", userID: "u")])

            let changes = try await registry.recordedChanges()
            #expect(history(changes, socket: "m") == [
                "socket.connected A", "socket.disconnected A moved", "socket.connected B", "socket.disconnected B disconnected",
            ])
            #expect(history(changes, user: "u") == [
                "socket.connected m", "user.online", "socket.disconnected m", "socket.connected m", "socket.disconnected m", "user.offline",
            ])
            #expect(history(changes, socket: "bare") == ["socket.connected A", "socket.disconnected A moved", "socket.connected B"])
        }
    }

    @Test("a superseded connect and a rejected disconnect record nothing", arguments: Topology.allCases)
    func rejectedWritesRecordNothing(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let now = Date()
            _ = await writer.apply(nodeID: "B", incarnation: "b1", events: [connectEvent("x", "u", at: now), connectEvent("y", nil, at: now)])
            let before = try await registry.recordedChanges()
            let stale = await writer.apply(nodeID: "A", incarnation: "a1", events: [
                connectEvent("x", "u", at: now.addingTimeInterval(-5)), connectEvent("y", nil, at: now.addingTimeInterval(-5)),
            ])
            #expect(stale.map { try? $0.get() } == [.superseded, .superseded])
            let foreign = await writer.apply(nodeID: "C", incarnation: "c1", events: [
                .disconnect(socketID: "x", userID: "u"), .disconnect(socketID: "y", userID: nil), .disconnect(socketID: "never", userID: nil),
            ])
            #expect(foreign.map { try? $0.get() } == [.notHeld, .notHeld, .notHeld])
            #expect(try await registry.recordedChanges() == before)
            #expect(before.count == 3)  // x connected, u online, y connected
        }
    }

    @Test("with changes off nothing is recorded or kept beside it (and Valkey keeps its native commands); users online is the nodes' sum, not exact", arguments: Topology.allCases)
    func changesOff(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            var configuration = fastConfiguration
            configuration.changes = false
            let writer = PresenceWriter(client: client, configuration: configuration)
            let registry = PresenceRegistry(client: client, configuration: configuration)
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a1", startedAt: Date()))
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("s", "u"), connectEvent("t", nil)])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s", userID: "u")])
            // No last seen, tombstone or counter (docs/data-model.md, "Last seen").
            #expect(try await registry.user("u").lastSeenAt == nil)
            #expect(try await registry.lookup(["s"])[0].departure == nil)
            // A heartbeat just before: A alive whatever the time the writes took on a loaded machine.
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a1", startedAt: Date(), userCount: 1))
            let stats = try await registry.stats()
            #expect(stats.onlineUsers == 1 && !stats.onlineUsersExact, "the node's reported userCount")
            _ = try await writer.leave(nodeID: "A", incarnation: "a1")
            if topology == .valkey || topology == .valkeyCluster { #expect(await writer.nativeServer() != nil) }
            #expect(try await PresenceRegistry(client: client, configuration: configuration).recordedChanges().isEmpty)
            for key in ChangeStreams.keys(keys, cluster: client.isCluster) {
                #expect(try await client.send("EXISTS", key).int == 0)
            }
            #expect(try await allKeys(client, changes: true).filter(isChangeStreamKey).isEmpty)
        }
    }

    @Test("a restarted node: node.down of the old incarnation, node.up of the new, its sockets marked for the watcher", arguments: [Topology.standalone, .cluster])
    func restart(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a1", startedAt: Date()))
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connectEvent("old", "u")])
            let again = try await writer.heartbeat(NodeHeartbeat(nodeID: "A", incarnation: "a2", startedAt: Date()))
            #expect(again.status == .replaced)
            // The new incarnation writes the socket again: the old entry is displaced, not doubled.
            _ = await writer.apply(nodeID: "A", incarnation: "a2", events: [connectEvent("old", "u", at: Date().addingTimeInterval(1))])
            let changes = try await registry.recordedChanges()
            let nodes = changes.filter { $0.kind.rawValue.hasPrefix("node.") }.map { "\($0.kind.rawValue) \($0.incarnation!)" }
            #expect(nodes == ["node.up a1", "node.down a1", "node.up a2"])
            #expect(history(changes, user: "u") == ["socket.connected old", "user.online", "socket.disconnected old", "socket.connected old"])
            #expect(changes.first { $0.kind == .socketDisconnected }?.reason == .nodeDown)
            #expect(try await client.send("HGET", keys.goneNodes, "A").string == "p\u{1F}a1\u{1F}node_down")
        }
    }

    @Test("bytes per recorded change")
    func bytesPerChange() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let events = (0..<1000).map { _ in connectEvent("socket-\(UUID().uuidString.prefix(13))", "user-\(UUID().uuidString.prefix(15))") }
            for chunk in events.chunked(250) { _ = await writer.apply(nodeID: "node-0123456789abcdef", incarnation: "inc-0123456789abcdef", events: Array(chunk)) }
            let usage = try await client.send("MEMORY", "USAGE", keys.changeStream(0), "SAMPLES", "0").int ?? 0
            let changes = try await PresenceRegistry(client: client, configuration: fastConfiguration).recordedChanges().count
            let entries = try await client.send("XLEN", keys.changeStream(0)).int ?? 0
            #expect(changes == 2000)  // socket.connected and user.online each
            // A call's changes share an entry (at most 200 of them).
            #expect(entries >= changes / ChangeStreams.changesPerEntry && entries < changes / 100)
            print("change stream: \(usage / changes) bytes per change (20-byte ids), \(changes / entries) changes per entry")
            #expect(usage / changes < 200)
        }
    }
}
