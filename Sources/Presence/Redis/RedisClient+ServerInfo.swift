extension RedisClient {
    /// Which server this client talks to and the native conditional commands it has, so that a
    /// writer can use them instead of a Lua script.
    ///
    /// Standalone and Sentinel: the server of the live connection (with Sentinel, the primary it
    /// resolved to, or the replica when it prefers one). Every connect asks `INFO server` in the
    /// round trip that authenticates and loads scripts, so a reconnect — after a restart that may
    /// have upgraded the server, or a failover — refreshes it, and a connected client answers
    /// from memory, without a round trip. Disconnected, it sends `INFO server` itself (which
    /// connects).
    ///
    /// Redis Cluster: what every primary has, ``RedisServerInfo/common(_:)`` of the primaries'
    /// answers (each node client's own, as above), so that a cluster upgraded node by node uses
    /// only what all support; the primaries are asked concurrently, only the disconnected ones cost
    /// a round trip.
    ///
    /// The answer describes the server as of the last connect: a server may be replaced at any
    /// moment after (a restart into an older release), so a writer still handles an
    /// unknown-command error, falling back to its script.
    /// - Throws: ``RedisError``: a connection code when a server cannot be reached,
    ///   ``RedisError/Code/server`` when it refuses `INFO` (an ACL), ``RedisError/Code/protocolError``
    ///   when its `INFO` names no version.
    public func serverInfo() async throws -> RedisServerInfo {
        if isCluster {
            let primaries = try await primaryClients()
            let servers = try await withThrowingTaskGroup(of: RedisServerInfo.self) { group in
                for primary in primaries { group.addTask { try await primary.serverInfo() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            guard let common = RedisServerInfo.common(servers) else {
                throw RedisError(.unavailable, "the Redis Cluster topology lists no primary")
            }
            return common
        }
        if let known = serverInfoCache.current { return try known.get() }
        let reply = try await send("INFO", "server")
        guard let server = reply.string.flatMap(RedisServerInfo.init(info:)) else {
            throw RedisError(.protocolError, "INFO server from \(configuration.endpoint) names no redis_version or valkey_version")
        }
        return server
    }
}
