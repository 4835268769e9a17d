import Foundation
@testable import Presence
import PresenceTestSupport
import Testing

/// Nodes writing with Valkey 9's native commands and nodes writing by script share one server:
/// one layout, the same answers, and the reconnect races of semantics c decided the same way
/// whichever kind of node wrote first.
@Suite("Native commands and scripts against one Valkey 9 server")
struct MixedWritersTests {
    /// Native commands are used only with the change stream off (with it on, every server gets the script).
    private var nativeConfiguration: PresenceConfiguration {
        var configuration = fastConfiguration
        configuration.changes = false
        return configuration
    }

    private var scripted: PresenceConfiguration {
        var configuration = fastConfiguration
        configuration.writeCommands = .scripts
        return configuration
    }

    /// How often the server ran `command` (`INFO commandstats`), or refused it (`field`
    /// `rejected_calls`).
    private func calls(_ client: RedisClient, _ command: String, field: String = "calls") async throws -> Int {
        let info = try await client.send("INFO", "commandstats").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
              let range = line.range(of: ":\(field)=") ?? line.range(of: ",\(field)=") else { return 0 }
        return Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    @Test("one layout: a connect written by native commands and by the script leaves the same record and user entry")
    func sameLayout() async throws {
        try await withRedis(.valkey) { (client: RedisClient) async throws in
            let native = PresenceWriter(client: client, configuration: nativeConfiguration)
            let script = PresenceWriter(client: client, configuration: scripted)
            #expect(await native.nativeServer() != nil, "Valkey 9 has SET … IFEQ and DELIFEQ")
            #expect(await script.nativeServer() == nil)
            let connectedAt = Date(timeIntervalSince1970: 1_800_000_000.123456)
            func connect(_ socketID: String) -> SocketEvent {
                .connect(socketID: socketID, userID: "u", meta: ["room": "lobby", "a": "1"], connectedAt: connectedAt)
            }
            let scriptsBefore = try await calls(client, "evalsha")
            let before = Int(Date().timeIntervalSince1970 * 1000)
            #expect(try await native.apply(nodeID: "n", incarnation: "i", events: [connect("s-native")]).map { try $0.get() } == [.created])
            #expect(try await calls(client, "evalsha") == scriptsBefore, "the native writer ran a script")
            #expect(try await script.apply(nodeID: "n", incarnation: "i", events: [connect("s-script")]).map { try $0.get() } == [.created])
            #expect(try await calls(client, "evalsha") > scriptsBefore)

            let keys = fastConfiguration.keys
            let nativeRecord = try #require(try await client.send("GET", keys.socket("s-native")).string)
            #expect(try await client.send("GET", keys.socket("s-script")).string == nativeRecord)
            #expect(SocketRecord(decoding: nativeRecord) == SocketRecord(
                nodeID: "n", incarnation: "i", connectedAtMicroseconds: 1_800_000_000_123_456, userID: "u", meta: #"{"a":"1","room":"lobby"}"#))
            for id in ["s-native", "s-script"] {
                #expect(try await client.send("PTTL", keys.socket(id)).int ?? 0 > 0)
            }
            let entries = try await client.send("HGETALL", keys.user("u")).fieldMap
            #expect(Set(entries.keys) == ["s-native\u{1F}i", "s-script\u{1F}i"])
            let ttl = fastConfiguration.socketKeyTTLMilliseconds
            for value in entries.values {
                let parts = value.split(separator: "\u{1F}")
                #expect(parts.count == 2 && parts[1] == "n", "\(value)")
                // The script writes the server's time, the native writer its own clock: the hosts'.
                #expect((before + ttl - 5_000...Int(Date().timeIntervalSince1970 * 1000) + ttl + 5_000).contains(Int(parts[0]) ?? 0), "\(value)")
            }
            #expect(try await client.send("PTTL", keys.user("u")).int ?? 0 > 0)
        }
    }

    @Test("c across kinds: a late disconnect or a stale connect of either kind never displaces the other kind's newer connection")
    func racesAcrossKinds() async throws {
        try await withRedis(.valkey) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let native = try await startNode("native", client: client, configuration: nativeConfiguration)
            let script = try await startNode("script", client: client, configuration: scripted)
            // S moves from the native node to the script node, T the other way.
            try native.node.connected(socketID: "S", userID: "u")
            try script.node.connected(socketID: "T", userID: "u")
            try await native.node.flush()
            try await script.node.flush()
            try script.node.connected(socketID: "S", userID: "u")
            try native.node.connected(socketID: "T", userID: "u")
            try await native.node.flush()
            try await script.node.flush()
            #expect(try await registry.sockets(["S", "T"]).map { $0?.nodeID } == ["script", "native"])
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["script", "native"])

            for (late, socketID, holder) in [(native, "S", "script"), (script, "T", "native")] {
                let writer = late.node.writer, node = late.node.nodeID, incarnation = late.node.incarnation
                // A disconnect from the node the socket left removes nothing of the new holder's.
                let gone = await writer.apply(nodeID: node, incarnation: incarnation, events: [.disconnect(socketID: socketID, userID: nil)])
                #expect(try gone[0].get() == .notHeld, "\(node) \(socketID)")
                // A connect report older than the new holder's is superseded.
                let stale = await writer.apply(nodeID: node, incarnation: incarnation, events: [
                    .connect(socketID: socketID, userID: "u", meta: [:], connectedAt: Date(timeIntervalSinceNow: -60)),
                ])
                #expect(try stale[0].get() == .superseded, "\(node) \(socketID)")
                #expect(try await registry.socket(socketID)?.nodeID == holder)
                let fields = try await client.send("HKEYS", fastConfiguration.keys.user("u")).array?.compactMap(\.string) ?? []
                #expect(fields.contains(SocketRecord.userField(socketID: socketID, incarnation: try #require(try await registry.socket(socketID)).nodeIncarnation)))
            }
            #expect(try await registry.sockets(ofUser: "u").map(\.nodeID) == ["script", "native"])

            // Each holder disconnects its socket: both records and entries go, whoever wrote first.
            #expect(try script.node.disconnected(socketID: "S"))
            #expect(try native.node.disconnected(socketID: "T"))
            _ = try native.node.disconnected(socketID: "S")
            _ = try script.node.disconnected(socketID: "T")
            try await native.node.flush()
            try await script.node.flush()
            #expect(try await registry.sockets(["S", "T"]) == [nil, nil])
            for id in ["S", "T"] { #expect(!(try await hasRecord(client, fastConfiguration.keys.socket(id)))) }
            #expect(try await client.send("EXISTS", fastConfiguration.keys.user("u")).int == 0, "user entries left behind")
            try await native.stop()
            try await script.stop()
        }
    }
    @Test("a native node deletes its record by the value it wrote, without reading it; a record of its own with another value is read, then deleted")
    func deleteByValue() async throws {
        try await withRedis(.valkey) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("n", client: client, configuration: nativeConfiguration)
            try running.node.connected(socketID: "plain", userID: "u", meta: ["k": "v"])
            try running.node.connected(socketID: "changed", userID: "u")
            try await running.node.flush()
            let reads = try await calls(client, "get") + calls(client, "getex")
            #expect(try running.node.disconnected(socketID: "plain"))
            try await running.node.flush()
            #expect(try await calls(client, "get") + calls(client, "getex") == reads, "the record was read before its delete")
            #expect(!(try await hasRecord(client, fastConfiguration.keys.socket("plain"))))
            // Its own record, holding another value than the node wrote (say, a write the node
            // retried): the delete by value misses, so the node reads it and deletes what it read.
            let key = fastConfiguration.keys.socket("changed")
            let stored = try await client.send("GET", key).string ?? ""
            let current = try #require(SocketRecord(decoding: stored))
            var other = current
            other.meta = #"{"k":"other"}"#
            _ = try await client.send("SET", key, other.encoded, "KEEPTTL")
            #expect(try running.node.disconnected(socketID: "changed"))
            try await running.node.flush()
            #expect(try await client.send("EXISTS", key).int == 0, "a record of the node's outlived its disconnect")
            #expect(try await registry.sockets(ofUser: "u").isEmpty)
            #expect(try await client.send("EXISTS", fastConfiguration.keys.user("u")).int == 0)
            try await running.stop()
        }
    }
    @Test("a server that refuses a native command (an ACL without DELIFEQ) gets the script from then on, and nothing is lost")
    func refusedNativeCommand() async throws {
        try await withRedis(.valkey) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: fastConfiguration)
            let running = try await startNode("n", client: client, configuration: nativeConfiguration)
            try running.node.connected(socketID: "s1", userID: "u")
            try await running.node.flush()
            #expect(try await registry.socket("s1")?.nodeID == "n")
            _ = try await client.send("ACL", "SETUSER", "default", "-delifeq")
            #expect(try running.node.disconnected(socketID: "s1"))
            try running.node.connected(socketID: "s2", userID: "u")
            try await running.node.flush()
            #expect(running.node.writer.nativeRefused.isSet, "the refusal was not noticed")
            #expect(!(try await hasRecord(client, fastConfiguration.keys.socket("s1"))), "the refused disconnect was lost")
            #expect(try await registry.sockets(ofUser: "u").map(\.socketID) == ["s2"])
            let refused = try await calls(client, "delifeq", field: "rejected_calls")
            #expect(refused >= 1)
            #expect(try running.node.disconnected(socketID: "s2"))
            try await running.node.flush()
            #expect(try await calls(client, "delifeq", field: "rejected_calls") == refused, "the writer tried the native command again")
            #expect(!(try await hasRecord(client, fastConfiguration.keys.socket("s2"))))
            try await running.stop()
        }
    }
}
