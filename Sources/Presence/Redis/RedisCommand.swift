/// One Redis command as binary-safe arguments.
///
/// Arguments are stored back to back in one buffer with their lengths, so building a command costs
/// two allocations whatever its size. The connection encodes a whole pipeline into one buffer
/// (``encode(into:)``) and hands it to hiredis at once.
///
/// A command knows the keys it touches (``keys``), so that a Redis Cluster client can route it by
/// hash slot; a keyless command can be pinned to the node that owns a key with ``routed(by:)``.
public struct RedisCommand: Sendable, Hashable {
    @usableFromInline var bytes: [UInt8]
    @usableFromInline var lengths: [Int]
    /// Set by ``routed(by:)``: route by this key instead of the command's own.
    var routingKey: String?
    /// Cleared by ``answeringAsk()``: a cluster's `ASK` comes back to the caller instead of being
    /// followed.
    var followsAsk = true

    /// Creates a command from its name and arguments, e.g. `RedisCommand("HGET", key, field)`.
    public init(_ name: String, _ arguments: String...) {
        bytes = []
        lengths = []
        lengths.reserveCapacity(arguments.count + 1)
        bytes.reserveCapacity(arguments.reduce(name.utf8.count) { $0 + $1.utf8.count })
        append(name)
        for argument in arguments { append(argument) }
    }

    /// Creates a command from text arguments; the first is the command name.
    public init(_ arguments: [String]) {
        bytes = []
        lengths = []
        lengths.reserveCapacity(arguments.count)
        bytes.reserveCapacity(arguments.reduce(0) { $0 + $1.utf8.count })
        for argument in arguments { append(argument) }
    }

    /// Appends a text argument (UTF-8).
    @inlinable
    public mutating func append(_ argument: String) {
        let before = bytes.count
        bytes.append(contentsOf: argument.utf8)
        lengths.append(bytes.count - before)
    }

    /// Appends a decimal integer argument.
    @inlinable
    public mutating func append(_ argument: Int) {
        append(String(argument))
    }

    /// Appends a binary argument.
    @inlinable
    public mutating func append(bytes argument: some Collection<UInt8>) {
        bytes.append(contentsOf: argument)
        lengths.append(argument.count)
    }

    /// Appends several text arguments.
    @inlinable
    public mutating func append(contentsOf arguments: some Sequence<String>) {
        for argument in arguments { append(argument) }
    }

    /// The number of arguments, the name included.
    public var count: Int { lengths.count }

    /// The arguments as text (invalid UTF-8 repaired); for logs and tests.
    public var arguments: [String] {
        var result: [String] = []
        var offset = 0
        for length in lengths {
            result.append(String(decoding: bytes[offset..<offset + length], as: UTF8.self))
            offset += length
        }
        return result
    }

    /// The command name in upper case.
    public var name: String { count > 0 ? argument(0).uppercased() : "" }

    /// Whether the command's name is `upper` (upper-case letters), in any case; compared in place.
    func isNamed(_ upper: String) -> Bool {
        guard let length = lengths.first, length == upper.utf8.count else { return false }
        return zip(bytes, upper.utf8).allSatisfy { $0 & 0xDF == $1 }
    }

    /// The argument at `index` as text.
    func argument(_ index: Int) -> String {
        var offset = 0
        for length in lengths[..<index] { offset += length }
        return String(decoding: bytes[offset..<offset + lengths[index]], as: UTF8.self)
    }

    /// The keys the command touches, from the command's key specification: the declared keys of
    /// `EVAL`/`EVALSHA`/`FCALL`, every argument of `DEL`/`EXISTS`/`UNLINK`/`TOUCH`/`MGET`, none for
    /// server commands (`PING`, `TIME`, `INFO`, `SCAN`, `CLUSTER`, `SCRIPT`, …), else the first
    /// argument.
    public var keys: [String] {
        let name = self.name
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard count >= 3, let declared = Int(argument(2)), declared > 0 else { return [] }
            return (3..<min(count, 3 + declared)).map(argument)
        case "DEL", "EXISTS", "UNLINK", "TOUCH", "MGET", "WATCH":
            return (1..<count).map(argument)
        case "MEMORY", "OBJECT":
            return count >= 3 ? [argument(2)] : []
        default:
            if Self.keyless.contains(name) || count < 2 { return [] }
            return [argument(1)]
        }
    }

    /// The key the command is routed by: ``routed(by:)``'s, else its first key.
    public var routingKeyOrFirst: String? { routingKey ?? keys.first }

    /// Whether the command only reads, so that a client asked to may send it to a replica.
    public var isReadOnly: Bool { Self.readOnly.contains(name) }

    /// The same command, routed to the node that owns `key` (for keyless commands such as `TIME`
    /// that must reach one given node).
    public func routed(by key: String) -> RedisCommand {
        var command = self
        command.routingKey = key
        return command
    }

    /// The same command, but a Redis Cluster's `ASK` reply is returned rather than followed: for a
    /// script that touches more keys than it declares, where `ASKING` would let the importing node
    /// serve keys of the migrating slot that have not moved yet (it would read and write empty
    /// copies of them).
    public func answeringAsk() -> RedisCommand {
        var command = self
        command.followsAsk = false
        return command
    }

    static let keyless: Set<String> = [
        "PING", "TIME", "INFO", "SCAN", "CLUSTER", "SCRIPT", "ROLE", "CLIENT", "COMMAND", "DBSIZE", "FLUSHALL",
        "FLUSHDB", "CONFIG", "READONLY", "READWRITE", "ASKING", "AUTH", "SELECT", "HELLO", "ECHO", "MULTI", "EXEC",
        "DISCARD", "DEBUG", "SLOWLOG", "LATENCY", "LASTSAVE", "SAVE", "BGSAVE", "SHUTDOWN", "FUNCTION", "RANDOMKEY",
        "WAIT", "QUIT", "RESET", "ACL", "MONITOR", "SUBSCRIBE", "PSUBSCRIBE", "PUBLISH", "SENTINEL", "REPLICAOF", "SLAVEOF",
    ]

    static let readOnly: Set<String> = [
        "GET", "MGET", "STRLEN", "EXISTS", "TYPE", "TTL", "PTTL", "HGET", "HMGET", "HGETALL", "HLEN", "HEXISTS", "HKEYS",
        "HVALS", "HSCAN", "HSTRLEN", "SCARD", "SISMEMBER", "SMISMEMBER", "SMEMBERS", "SSCAN", "SRANDMEMBER", "ZCARD",
        "ZSCORE", "ZRANGE", "ZSCAN", "LLEN", "LRANGE", "TIME", "PING", "SCAN", "DBSIZE", "INFO", "EVALSHA_RO", "EVAL_RO",
        "FCALL_RO", "MEMORY", "OBJECT",
    ]

    /// Appends the command as the protocol sends it (`*<count>`, then `$<length>` and the bytes of
    /// each argument), as hiredis' argv API would have formatted it.
    func encode(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "*"))
        Self.appendDecimal(lengths.count, to: &out)
        var offset = 0
        bytes.withUnsafeBufferPointer { buffer in
            for length in lengths {
                out.append(UInt8(ascii: "$"))
                Self.appendDecimal(length, to: &out)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[offset..<offset + length]))
                out.append(13)
                out.append(10)
                offset += length
            }
        }
    }

    /// The bytes ``encode(into:)`` appends, at most.
    var encodedCapacity: Int { bytes.count + 24 * (lengths.count + 1) }

    /// Appends `value` (≥ 0) in decimal, then CRLF.
    private static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        let zero = UInt8(ascii: "0")
        if value < 100 {  // most lengths and counts
            if value >= 10 { out.append(zero + UInt8(value / 10)) }
            out.append(zero + UInt8(value % 10))
        } else {
            let digits = String(value).utf8
            out.append(contentsOf: digits)
        }
        out.append(13)
        out.append(10)
    }
}
