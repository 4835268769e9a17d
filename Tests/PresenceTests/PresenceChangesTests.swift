import Foundation
@testable import Presence
import PresenceTestSupport
import Testing

/// `PresenceRegistry.changes(from:filter:)`: recorded changes, then live ones, as typed values.
@Suite("Change stream: the AsyncSequence for Swift consumers")
struct PresenceChangesTests {
    func connect(_ socketID: String, _ userID: String?) -> SocketEvent {
        .connect(socketID: socketID, userID: userID, meta: [:], connectedAt: Date())
    }

    /// The first `count` changes of `sequence`, failing after `timeout`.
    func first(_ count: Int, of sequence: PresenceChanges, timeout: Duration = .seconds(10)) async throws -> [PresenceChange] {
        try await withThrowingTaskGroup(of: [PresenceChange]?.self) { group in
            group.addTask {
                var taken: [PresenceChange] = []
                for try await change in sequence {
                    taken.append(change)
                    if taken.count == count { break }
                }
                return taken
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let result = try await group.next()!
            group.cancelAll()
            return try #require(result, "fewer than \(count) changes within \(timeout)")
        }
    }

    @Test("recorded changes first, then live ones, in order per user; filters by kind, user and node", arguments: [Topology.standalone, .cluster, .valkey])
    func recordedThenLive(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connect("s1", "u1")])
            let everything = registry.changes(pollInterval: .milliseconds(20))
            async let seen = first(4, of: everything)
            async let mine = first(2, of: registry.changes(filter: ChangeFilter(kinds: [.userOffline, .userOnline], userIDs: ["u1"])))
            async let onB = first(1, of: registry.changes(filter: ChangeFilter(nodeID: "B")))
            try await Task.sleep(for: .milliseconds(300))
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s1", userID: "u1")])
            _ = await writer.apply(nodeID: "B", incarnation: "b1", events: [connect("s2", nil)])
            let all = try await seen
            #expect(all.filter { $0.userID == "u1" }.map(\.kind) == [.socketConnected, .userOnline, .socketDisconnected, .userOffline])
            #expect(try await mine.map(\.kind) == [.userOnline, .userOffline])
            let b = try await onB
            #expect(b.map(\.socketID) == ["s2"])

            // Resuming after a change reads only what followed it.
            var position = ChangePosition()
            for change in all.prefix(2) { position.advance(past: change.id) }
            let rest = try await first(2, of: registry.changes(from: ChangePosition(position.description)!, filter: ChangeFilter(userIDs: ["u1"])))
            #expect(rest.map(\.kind) == [.socketDisconnected, .userOffline])
        }
    }

    @Test("a position whose following changes were trimmed fails with changesTrimmed and the oldest position")
    func trimmed() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            // One call each: an entry each (a call's changes share one).
            for id in ["s1", "s2", "s3"] { _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connect(id, nil)]) }
            let changes = try await registry.recordedChanges()
            #expect(changes.count == 3)
            #expect(try await client.send("XLEN", fastConfiguration.keys.changeStream(0)).int == 3)
            var position = ChangePosition()
            position.advance(past: changes[0].id)
            // Retention passing, exactly: trim up to the third change.
            _ = try await client.send("XTRIM", fastConfiguration.keys.changeStream(0), "MINID", changes[2].id.id)
            var iterator = registry.changes(from: position).makeAsyncIterator()
            await #expect(throws: PresenceError.self) { _ = try await iterator.next() }
            let oldest = try await registry.oldestChangePosition()
            #expect(oldest.last[0] == changes[2].id.predecessor.id)
            var resumed = registry.changes(from: oldest).makeAsyncIterator()
            #expect(try await resumed.next()?.socketID == "s3")
            // A position at or past the trim point reads on.
            var fine = registry.changes(from: oldest).makeAsyncIterator()
            #expect(try await fine.next() != nil)
        }
    }

    @Test("a position Redis cannot vouch for (its stream gone, or ahead of it) fails with changesTrimmed")
    func lostStreams() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let stream = fastConfiguration.keys.changeStream(0)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connect("s1", nil), connect("s2", nil)])
            let newest = try await registry.newestChangePosition()
            try await registry.checkRetained(newest)
            // Ahead of the stream: Redis lost what the reader had read (and may record those ids anew).
            let lastID = try #require(newest.last[0])
            let last = try #require(ChangePosition.Entry(stream: 0, id: lastID))
            var ahead = ChangePosition()
            ahead.advance(past: ChangePosition.Entry(stream: 0, id: "\(last.milliseconds + 60_000)-0")!)
            await #expect(throws: PresenceError.self) { try await registry.checkRetained(ahead) }
            // The stream gone (expired, flushed, or a restarted Redis): nothing vouches for what followed.
            _ = try await client.send("DEL", stream)
            do {
                try await registry.checkRetained(newest)
                Issue.record("a position in a lost stream was accepted")
            } catch let error as PresenceError {
                #expect(error.code == .changesTrimmed && error.message.contains("no longer exists"))
            }
            // A position naming no stream (the start) is always fine.
            try await registry.checkRetained(ChangePosition())
        }
    }

    @Test("entries a reader cannot decode (a newer version's change types) are read past, not read again")
    func undecodable() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let stream = fastConfiguration.keys.changeStream(0)
            let unknown = try #require(try await client.send("XADD", stream, "*", "t", "from-the-future", "x", "1").string)
            let read = try await registry.readChanges(after: ChangePosition(), count: 10)
            #expect(read.changes.isEmpty && read.position.last[0] == unknown && !read.isPartial)
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connect("s1", nil)])
            var iterator = registry.changes(from: ChangePosition(), pollInterval: .milliseconds(5)).makeAsyncIterator()
            #expect(try await iterator.next()?.socketID == "s1")
            #expect(try await registry.readChanges(after: read.position, count: 10).changes.map(\.socketID) == ["s1"])
        }
    }

    @Test("a call's changes share one entry; a position inside it resumes at the next change, nothing twice, nothing missed", arguments: [Topology.standalone, .cluster])
    func positionInsideEntry(_ topology: Topology) async throws {
        try await withRedis(topology) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: fastConfiguration)
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            // One socket, so that on a cluster the call's changes go to one primary's stream too.
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [connect("s1", "u1")])
            _ = await writer.apply(nodeID: "A", incarnation: "a1", events: [.disconnect(socketID: "s1", userID: "u1")])
            let all = try await registry.recordedChanges()
            #expect(all.map(\.kind) == [.socketConnected, .userOnline, .socketDisconnected, .userOffline])
            #expect(all.map(\.id.index) == [0, ChangePosition.Entry.whole, 0, ChangePosition.Entry.whole])
            #expect(Set(all.map(\.id.entryID)).count == 2, "two calls, two entries")
            for taken in 0...all.count {
                var position = ChangePosition()
                for change in all.prefix(taken) { position.advance(past: change.id) }
                let text = position.description
                #expect(taken % 2 == 0 || text.contains("."), "\(text): inside an entry")
                let rest = try await registry.recordedChanges(after: try #require(ChangePosition(text)))
                #expect(rest == Array(all.dropFirst(taken)), "after \(taken): \(text)")
            }
        }
    }

    @Test("entries of the earlier layout (one change in fields t, s, n, …) are read as before; an unknown code ends its entry")
    func earlierLayoutAndUnknownCodes() async throws {
        try await withRedis(.standalone) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let keys = fastConfiguration.keys
            let stream = keys.changeStream(0)
            _ = try await client.send("XADD", stream, "*", "t", "sc", "s", "old", "n", "N", "u", "U", "c", "1700000000000000")
            _ = try await client.send("XADD", stream, "*", "t", "sd", "s", "old", "n", "N", "u", "U", "r", "node_down")
            // Today's layout: a record key or a user field for the socket, a user key for the user.
            _ = try await client.send(RedisCommand("XADD", stream, "*", "sc", keys.socket("new"), "N", "", "1700000000000001",
                "uon", keys.user("V"), "from-the-future", "x", "sd", "new\u{1F}i1", "N", keys.user("V"), "moved"))
            let changes = try await registry.recordedChanges()
            #expect(changes.map { "\($0.kind.rawValue) \($0.socketID ?? "-") \($0.userID ?? "-")" } == [
                "socket.connected old U", "socket.disconnected old U", "socket.connected new -", "user.online - V",
            ])
            #expect(changes[0].connectedAt == Date(timeIntervalSince1970: 1_700_000_000))
            #expect(changes[1].reason == .nodeDown && changes[1].nodeID == "N")
            #expect(changes.map(\.id.index) == [ChangePosition.Entry.whole, ChangePosition.Entry.whole, 0, ChangePosition.Entry.whole])
        }
    }

    @Test("position text round-trips and rejects malformed input")
    func positionText() throws {
        let position = try #require(ChangePosition("0=1700000000000-3,4=1700000000001-0.7"))
        #expect(position.last == [0: "1700000000000-3", 4: "1700000000001-0.7"])
        #expect(position.description == "0=1700000000000-3,4=1700000000001-0.7")
        #expect(ChangePosition("") == ChangePosition())
        for bad in ["x", "0=abc", "16=1-0", "0=1-0,", "=1-0", "0=1", "0=1-0.", "0=1-0.x", "0=1-0.1.2", "0=1.2-3", "0=1-0.9223372036854775807"] {
            #expect(ChangePosition(bad) == nil, "\(bad)")
        }
        #expect(ChangeStreams.keys(PresenceKeys(prefix: "p"), cluster: true).map(RedisKeySlot.slot).enumerated().dropFirst().allSatisfy { $1 / 1024 == $0 })
    }
}
