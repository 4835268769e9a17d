@testable import Presence
import Testing

/// What a command tells a Redis Cluster client (its keys, the key it is routed by, whether it only
/// reads), and how it goes on the wire.
@Suite("Redis commands: keys, routing key, read-only, encoding")
struct RedisCommandTests {
    @Test("EVAL/EVALSHA/FCALL: exactly the declared keys")
    func scriptKeys() {
        #expect(RedisCommand("EVALSHA", "abc", "0", "arg1", "arg2").keys == [])
        #expect(RedisCommand("EVALSHA", "abc", "1", "k1", "arg1").keys == ["k1"])
        #expect(RedisCommand("EVALSHA", "abc", "2", "k1", "k2", "arg1").keys == ["k1", "k2"])
        #expect(RedisCommand("evalsha", "abc", "2", "k1", "k2").keys == ["k1", "k2"])
        #expect(RedisCommand("EVAL", "return 1", "1", "k1").keys == ["k1"])
        #expect(RedisCommand("FCALL", "fn", "1", "k1", "a").keys == ["k1"])
        #expect(RedisCommand("EVALSHA_RO", "abc", "1", "k1").keys == ["k1"])
        // Fewer keys than declared: what is there; a malformed or negative count: none.
        #expect(RedisCommand("EVALSHA", "abc", "3", "k1").keys == ["k1"])
        #expect(RedisCommand("EVALSHA", "abc", "x", "k1").keys == [])
        #expect(RedisCommand("EVALSHA", "abc", "-1", "k1").keys == [])
        #expect(RedisCommand("EVALSHA", "abc").keys == [])
        #expect(RedisCommand("EVALSHA", "abc", "0", "a").routingKeyOrFirst == nil)
    }

    @Test("multi-key commands: every argument; ordinary commands: the first argument")
    func keys() {
        #expect(RedisCommand("DEL", "a", "b", "c").keys == ["a", "b", "c"])
        #expect(RedisCommand("UNLINK", "a", "b").keys == ["a", "b"])
        #expect(RedisCommand("EXISTS", "a").keys == ["a"])
        #expect(RedisCommand("MGET", "a", "b").keys == ["a", "b"])
        #expect(RedisCommand("DEL").keys == [])
        #expect(RedisCommand("HGET", "h", "f").keys == ["h"])
        #expect(RedisCommand("SREM", "s", "m1", "m2").keys == ["s"])
        #expect(RedisCommand("GET").keys == [])
        #expect(RedisCommand("DEL", "a", "b").routingKeyOrFirst == "a")
    }

    @Test("server commands have no key; MEMORY USAGE and OBJECT name theirs second")
    func keyless() {
        #expect(RedisCommand("TIME").keys == [])
        #expect(RedisCommand("PING").keys == [])
        #expect(RedisCommand("PING", "hello").keys == [])
        #expect(RedisCommand("SCAN", "0", "MATCH", "p:*").keys == [])
        #expect(RedisCommand("CLUSTER", "SHARDS").keys == [])
        #expect(RedisCommand("SCRIPT", "LOAD", "return 1").keys == [])
        #expect(RedisCommand("INFO", "replication").keys == [])
        #expect(RedisCommand("TIME").routingKeyOrFirst == nil)
        #expect(RedisCommand("MEMORY", "USAGE", "k").keys == ["k"])
        #expect(RedisCommand("memory", "usage", "k", "SAMPLES", "5").keys == ["k"])
        #expect(RedisCommand("MEMORY", "STATS").keys == [])
        #expect(RedisCommand("OBJECT", "ENCODING", "k").keys == ["k"])
    }

    @Test("routed(by:) overrides the routing key, not the keys or the arguments")
    func routedBy() {
        let time = RedisCommand("TIME").routed(by: "{u}:socket")
        #expect(time.routingKeyOrFirst == "{u}:socket")
        #expect(time.keys == [])
        #expect(time.arguments == ["TIME"])
        let hget = RedisCommand("HGET", "h", "f").routed(by: "other")
        #expect(hget.routingKeyOrFirst == "other")
        #expect(hget.keys == ["h"])
        #expect(hget.arguments == ["HGET", "h", "f"])
        #expect(hget != RedisCommand("HGET", "h", "f"))
        #expect(RedisCommand("HGET", "h", "f").routingKeyOrFirst == "h")
    }

    @Test("the name is upper-cased; read-only is decided by it")
    func nameAndReadOnly() {
        #expect(RedisCommand("hget", "h", "f").name == "HGET")
        #expect(RedisCommand("EvalSha", "abc", "0").name == "EVALSHA")
        #expect(RedisCommand([]).name == "")
        #expect(RedisCommand("hget", "h", "f").isReadOnly)
        #expect(RedisCommand("TIME").isReadOnly)
        #expect(RedisCommand("SMEMBERS", "s").isReadOnly)
        #expect(RedisCommand("EVALSHA_RO", "abc", "0").isReadOnly)
        #expect(!RedisCommand("HSET", "h", "f", "v").isReadOnly)
        #expect(!RedisCommand("EVALSHA", "abc", "0").isReadOnly)
        #expect(!RedisCommand("DEL", "k").isReadOnly)
        #expect(!RedisCommand("PEXPIRE", "k", "1").isReadOnly)
    }

    @Test("encoded as the protocol's array of bulk strings: lengths of one, two and three digits, empty and binary arguments")
    func encoding() {
        var out: [UInt8] = []
        RedisCommand("SET", "k", "").encode(into: &out)
        var command = RedisCommand("HSET", String(repeating: "h", count: 12))
        command.append(bytes: [0, 13, 10, 255])
        command.append(String(repeating: "v", count: 100))
        command.encode(into: &out)
        let expected = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
            + "*4\r\n$4\r\nHSET\r\n$12\r\n\(String(repeating: "h", count: 12))\r\n$4\r\n"
        let tail = "\r\n$100\r\n\(String(repeating: "v", count: 100))\r\n"
        #expect(out == Array(expected.utf8) + [0, 13, 10, 255] + Array(tail.utf8))
        var alone: [UInt8] = []
        command.encode(into: &alone)
        #expect(command.encodedCapacity >= alone.count, "the buffer is reserved once")
    }
}
