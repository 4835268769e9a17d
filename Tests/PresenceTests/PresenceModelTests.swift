import Foundation
@testable import Presence
import PresenceTestSupport
import Testing

@Suite("Ids, meta and the liveness rule (pure)")
struct PresenceModelTests {
    @Test("valid ids", arguments: ["a", "socket-1", "user@example.com", "with space", "日本語", "emoji 🎉", "{tag}", String(repeating: "x", count: 256)])
    func validIDs(id: String) throws {
        try PresenceID.validate(id, field: "socketId")
    }

    @Test("invalid ids are refused with the field named", arguments: [
        "", String(repeating: "x", count: 257), String(repeating: "é", count: 129), "a\u{0}b", "line\nbreak", "tab\there",
        "del\u{7F}", "bidi\u{202E}", "zero\u{200B}width", "ls\u{2028}", "private\u{E000}",
        "50%", "a%0Bb", "%25",  // ids travel percent-encoded in paths, so they never hold a "%"
    ])
    func invalidIDs(id: String) {
        #expect {
            try PresenceID.validate(id, field: "socketId")
        } throws: { error in
            guard let error = error as? PresenceError else { return false }
            return error.code == .invalidID && error.message.hasPrefix("socketId")
        }
    }

    @Test("invalid UTF-8 bytes are refused")
    func invalidUTF8() throws {
        #expect(throws: PresenceError.self) { try PresenceID.validated(bytes: [0x61, 0xFF, 0x62], field: "nodeId") }
        #expect(try PresenceID.validated(bytes: Array("ok".utf8), field: "nodeId") == "ok")
    }

    @Test("a socket tombstone decodes as ms × 10 + reason code; anything else is no departure")
    func socketDeparture() {
        let departure = SocketDeparture(decoding: "17000000001234")
        #expect(departure == SocketDeparture(disconnectedAt: Date(timeIntervalSince1970: 1_700_000_000.123), reason: .moved))
        #expect(SocketDeparture(decoding: "17000000001231")?.reason == .disconnected)
        #expect(SocketDeparture(decoding: "17000000001232")?.reason == .nodeDown)
        #expect(SocketDeparture(decoding: "17000000001233")?.reason == .nodeLeft)
        #expect(SocketDeparture(decoding: "17000000001230") == nil)
        for bad in ["", "x", "-17000000001231", "1700000000123d", "17000000001235"] { #expect(SocketDeparture(decoding: bad) == nil, "\(bad)") }
    }

    @Test("meta round-trips and its limits hold")
    func meta() throws {
        let meta = ["region": "eu-west", "quote": "a\"b\\c/d", "unicode": "ü ✓", "load%": "50%"]  // meta may hold "%"
        #expect(PresenceMeta.decode(PresenceMeta.encode(meta)) == meta)
        #expect(PresenceMeta.encode([:]) == "")
        #expect(PresenceMeta.decode("") == [:])
        #expect(PresenceMeta.decode("{not json") == nil)
        try PresenceMeta.validate(meta)
        let tooMany = Dictionary(uniqueKeysWithValues: (0..<17).map { ("k\($0)", "v") })
        #expect(throws: PresenceError.self) { try PresenceMeta.validate(tooMany) }
        #expect(throws: PresenceError.self) { try PresenceMeta.validate(["k": String(repeating: "v", count: 1025)]) }
        #expect(throws: PresenceError.self) { try PresenceMeta.validate(["": "v"]) }
        #expect(throws: PresenceError.self) { try PresenceMeta.validate(["k": "a\u{1}b"]) }
    }

    @Test("the liveness rule: same incarnation and expiry after Redis' now")
    func livenessRule() {
        let table = NodeTable(now: 1_000, entries: [
            "alive": .init(expiresAt: 1_001, incarnation: "i2", address: "", raw: ""),
            "expired": .init(expiresAt: 1_000, incarnation: "i1", address: "", raw: ""),
        ])
        #expect(table.isAlive(node: "alive", incarnation: "i2"))
        #expect(!table.isAlive(node: "alive", incarnation: "i1"))  // an earlier incarnation's socket
        #expect(!table.isAlive(node: "expired", incarnation: "i1"))  // expiry is exclusive
        #expect(!table.isAlive(node: "unknown", incarnation: "i1"))
    }

    @Test("table entries parse, with separators in the address kept")
    func tableEntry() {
        let entry = NodeTable.entry("1700000000000\u{1F}abc\u{1F}ws://h:1/x\u{1F}y")
        #expect(entry?.expiresAt == 1_700_000_000_000)
        #expect(entry?.incarnation == "abc")
        #expect(entry?.address == "ws://h:1/x\u{1F}y")
        #expect(NodeTable.entry("garbage") == nil)
    }

    @Test("keys touched by one script share a hash tag")
    func hashTags() {
        let keys = PresenceKeys(prefix: "presence")
        #expect(hashTag(keys.nodeTable) == hashTag(keys.node("n}1")))
        #expect(hashTag(keys.nodeTable) == "registry")
        #expect(hashTag(keys.socket("s1")) == "s1")
        #expect(hashTag(keys.user("u1")) == "u1")
        #expect(hashTag(keys.nodeSockets("n1")) == "n1")
    }

    @Test("hash slots follow Redis Cluster: CRC16 of the hash tag, modulo 16384")
    func hashSlots() {
        #expect(RedisKeySlot.slot("123456789") == 0x31C3)
        #expect(RedisKeySlot.slot("foo") == 12182)
        #expect(RedisKeySlot.slot("{user1000}.following") == RedisKeySlot.slot("user1000"))
        #expect(RedisKeySlot.slot("foo{bar}{zap}") == RedisKeySlot.slot("bar"))
        #expect(RedisKeySlot.slot("foo{{bar}}zap") == RedisKeySlot.slot("{bar"))
        #expect(RedisKeySlot.slot("foo{}{bar}") != RedisKeySlot.slot("bar"))
        let keys = PresenceKeys(prefix: "presence")
        #expect(RedisKeySlot.slot(keys.socket("s1")) == RedisKeySlot.slot("s1"))
    }

    @Test("script calls: in order, at most 256 operations each; per node group on a cluster, each group's order kept")
    func scriptCalls() {
        let keys = PresenceKeys(prefix: "presence")
        let operations = (0..<600).map { SocketOperation(code: .connect, key: keys.socket("s\($0 % 3)")) }
        let all = Array(operations.indices)
        #expect(PresenceWriter.calls(all, of: operations, groups: all.map { _ in 0 }) == [Array(0..<256), Array(256..<512), Array(512..<600)])
        let groups = all.map { $0 % 3 }
        let byGroup = PresenceWriter.calls(all, of: operations, groups: groups)
        #expect(byGroup.flatMap { $0 }.sorted() == all)
        #expect(byGroup.count == 3)
        for call in byGroup {
            #expect(Set(call.map { groups[$0] }).count == 1)
            #expect(call == call.sorted())
            #expect(call.count <= 256)
        }
        // A user add stays with the connect before it, even across the 256 boundary.
        let pairs = [SocketOperation(code: .disconnect, key: keys.socket("x"))] + (0..<200).flatMap { i in [
            SocketOperation(code: .connect, key: keys.socket("p\(i)")), SocketOperation(code: .userAdd, key: keys.user("u"), a: "p\(i)", b: keys.socket("p\(i)")),
        ] }
        let paired = PresenceWriter.calls(Array(pairs.indices), of: pairs, groups: pairs.map { _ in 0 })
        #expect(paired.flatMap { $0 } == Array(0..<401))
        #expect(paired.map(\.count) == [257, 144])
        for call in paired { #expect(pairs[call[0]].code != .userAdd) }
    }

    @Test("configuration bounds")
    func configuration() throws {
        try PresenceConfiguration().validate()
        try PresenceConfiguration(heartbeatInterval: .milliseconds(300), nodeTTL: .seconds(1)).validate()
        #expect(throws: PresenceError.self) { try PresenceConfiguration(nodeTTL: .milliseconds(900)).validate() }
        #expect(throws: PresenceError.self) { try PresenceConfiguration(heartbeatInterval: .seconds(6), nodeTTL: .seconds(6)).validate() }
        #expect(throws: PresenceError.self) { try PresenceConfiguration(keyPrefix: "a{b}").validate() }
    }

    @Test("SHA1 names scripts as Redis does")
    func sha1() {
        #expect(SHA1.hexDigest([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hexDigest(Array("return 1".utf8)) == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }

    /// Redis Cluster's rule: the part between the first `{` and the next `}`, if not empty.
    private func hashTag(_ key: String) -> String {
        guard let open = key.firstIndex(of: "{"), let close = key[key.index(after: open)...].firstIndex(of: "}"),
              close > key.index(after: open) else { return key }
        return String(key[key.index(after: open)..<close])
    }
}
