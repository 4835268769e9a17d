import CHiredis
import Glibc

/// One hiredis blocking context. Confined to the client's I/O thread: never shared, never reused
/// after an I/O error (the caller drops it), freed exactly once.
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    /// What the server said it is on connect (`ROLE`): `master`, `slave` or `sentinel`.
    private(set) var role = ""
    /// What the server said it is on connect (`INFO server`), when asked for; a failure when it
    /// refused `INFO` or named no version.
    private(set) var serverInfo: Result<RedisServerInfo, RedisError>?

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit { redisFree(context) }

    /// Connects, authenticates, selects the database, names the client, checks `ROLE`, asks
    /// `INFO server` when `describeServer` (about 1 KB of reply, once per connection) and loads
    /// `scripts`, all in one round trip.
    static func connect(_ configuration: RedisConfiguration, scripts: [RedisScript], describeServer: Bool = false) throws(RedisError) -> RedisConnection {
        let connectTimeout = timeval(configuration.connectTimeout)
        let raw: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            guard (1...65535).contains(port) else { throw RedisError(.invalidConfiguration, "port \(port) is not 1–65535") }
            raw = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path): raw = redisConnectUnixWithTimeout(path, connectTimeout)
        }
        guard let context = raw else {
            throw RedisError(.connectionFailed, "cannot allocate a connection to \(configuration.endpoint)")
        }
        if context.pointee.err != 0 {
            let message = errorString(context)
            redisFree(context)
            throw RedisError(.connectionFailed, "cannot connect to \(configuration.endpoint): \(message)")
        }
        // Until setup is done the connect timeout also bounds the setup replies.
        _ = redisSetTimeout(context, connectTimeout)
        let connection = RedisConnection(context: context)
        var setup: [RedisCommand] = []
        if let password = configuration.password {
            setup.append(configuration.username.map { RedisCommand("AUTH", $0, password) } ?? RedisCommand("AUTH", password))
        }
        if configuration.database != 0 { setup.append(RedisCommand("SELECT", String(configuration.database))) }
        setup.append(RedisCommand("CLIENT", "SETNAME", configuration.clientName))
        // A cluster replica serves reads only after READONLY (else it redirects them to its primary).
        if configuration.readOnly { setup.append(RedisCommand("READONLY")) }
        setup.append(RedisCommand("ROLE"))
        if describeServer { setup.append(RedisCommand("INFO", "server")) }
        for script in scripts { setup.append(RedisCommand("SCRIPT", "LOAD", script.source)) }
        connection.append(setup)
        var replies: [Result<RedisValue, RedisError>] = []
        for _ in setup {
            do { replies.append(try connection.readReply()) } catch {
                throw RedisError(.connectionFailed, "connected to \(configuration.endpoint) but setup failed: \(error.message)")
            }
        }
        var index = 0
        if configuration.password != nil {
            if case .failure(let error) = replies[index] {
                throw RedisError(.authenticationFailed, "AUTH refused by \(configuration.endpoint): \(error.message)")
            }
            index += 1
        }
        if configuration.database != 0 {
            if case .failure(let error) = replies[index] {
                throw RedisError(.connectionFailed, "SELECT \(configuration.database) refused by \(configuration.endpoint): \(error.message)")
            }
            index += 1
        }
        index += 1  // CLIENT SETNAME: informative only
        if configuration.readOnly { index += 1 }  // READONLY: a refusal shows as redirects, which the router follows
        switch replies[index] {
        case .failure(let error):
            if error.message.hasPrefix("NOAUTH") {
                throw RedisError(.authenticationFailed, "\(configuration.endpoint) requires a password: \(error.message)")
            }
            throw RedisError(.connectionFailed, "ROLE refused by \(configuration.endpoint): \(error.message)")
        case .success(let value):
            guard let fields = value.array, let name = fields.first?.string else {
                throw RedisError(.protocolError, "unexpected ROLE reply from \(configuration.endpoint)")
            }
            connection.role = name
            if configuration.requirePrimary && name != "master" {
                var primary: String?
                if name == "slave", fields.count >= 3, let host = fields[1].string, let port = fields[2].int {
                    primary = "\(host):\(port)"
                }
                let follows = primary.map { " following the primary at \($0)" } ?? ""
                throw RedisError(
                    .replica,
                    "\(configuration.endpoint) is a \(name == "slave" ? "replica" : name)\(follows); presence writes only to a primary (point it at the primary or use Sentinel)",
                    primary: primary)
            }
        }
        index += 1
        if describeServer {
            // Informative: a server refusing INFO (an ACL) is still used, only its capabilities
            // are unknown.
            connection.serverInfo = replies[index].flatMap { reply in
                guard let info = reply.string.flatMap(RedisServerInfo.init(info:)) else {
                    return .failure(RedisError(.protocolError, "INFO server from \(configuration.endpoint) names no redis_version or valkey_version"))
                }
                return .success(info)
            }
            index += 1
        }
        for script in scripts {
            if case .failure(let error) = replies[index] {
                throw RedisError(.connectionFailed, "SCRIPT LOAD \(script.name) refused by \(configuration.endpoint): \(error.message)")
            }
            index += 1
        }
        _ = redisSetTimeout(context, timeval(configuration.commandTimeout))
        return connection
    }

    /// Queues `commands` in the output buffer, encoded in one piece; nothing is written until
    /// ``flush()`` or a read.
    func append(_ commands: [RedisCommand]) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(commands.reduce(0) { $0 + $1.encodedCapacity })
        for command in commands { command.encode(into: &encoded) }
        encoded.withUnsafeBytes { buffer in
            _ = redisAppendFormattedCommand(context, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
    }

    /// Queues `command` in the output buffer; nothing is written until ``flush()`` or a read.
    func append(_ command: RedisCommand) { append([command]) }

    /// Writes what is buffered. A failure leaves the connection broken: the next read reports it.
    func flush() {
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { return }
        }
    }

    /// Writes what is buffered and reads the next reply.
    /// - Returns: the reply, or `.failure` for an error reply (the connection is still usable).
    /// - Throws: on an I/O or protocol failure; the connection must then be dropped.
    func readReply() throws(RedisError) -> Result<RedisValue, RedisError> {
        var raw: UnsafeMutableRawPointer?
        errno = 0
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil {
            let code = errno
            let message = Self.errorString(context)
            if code == EAGAIN || code == EWOULDBLOCK {
                throw RedisError(.timeout, "no reply within the command timeout (\(message)); connection dropped")
            }
            throw RedisError(.connectionLost, "connection lost (\(message)); the command may or may not have run")
        }
        defer { freeReplyObject(raw) }
        let reply = raw!.assumingMemoryBound(to: redisReply.self)
        if reply.pointee.type == REDIS_REPLY_ERROR {
            return .failure(RedisError(.server, Self.text(reply)))
        }
        return .success(Self.value(reply))
    }

    private static func value(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            guard let str = r.str else { return .bulkString([]) }
            return .bulkString(Array(UnsafeRawBufferPointer(start: str, count: r.len)))
        case REDIS_REPLY_STATUS: return .simpleString(text(reply))
        case REDIS_REPLY_INTEGER: return .integer(Int(r.integer))
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_ERROR: return .error(text(reply))
        case REDIS_REPLY_ARRAY:
            var values: [RedisValue] = []
            values.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = r.element[index] { values.append(value(element)) } else { values.append(.null) }
            }
            return .array(values)
        default: return .null
        }
    }

    private static func text(_ reply: UnsafeMutablePointer<redisReply>) -> String {
        guard let str = reply.pointee.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.pointee.len), as: UTF8.self)
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

private func timeval(_ duration: Duration) -> Glibc.timeval {
    let (seconds, attoseconds) = duration.components
    return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
}
