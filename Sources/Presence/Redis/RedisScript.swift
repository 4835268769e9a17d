/// A Lua script known to the client: loaded on every connect and called by SHA1 with `EVALSHA`.
///
/// When Redis answers `NOSCRIPT` (its script cache was flushed) the client loads the script again
/// and retries the call once.
public struct RedisScript: Sendable, Hashable {
    /// A short name for logs.
    public let name: String
    /// The Lua source.
    public let source: String
    /// The lowercase hex SHA1 of ``source``, as Redis names the script.
    public let sha1: String

    /// Creates a script.
    public init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha1 = SHA1.hexDigest(Array(source.utf8))
    }

    /// An `EVALSHA` command calling this script with the given keys and arguments.
    public func call(keys: [String], arguments: [String] = []) -> RedisCommand {
        var command = RedisCommand("EVALSHA", sha1, String(keys.count))
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return command
    }
}
