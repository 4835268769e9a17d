import Foundation

/// The read side: answers whether sockets are alive and where, for the whole cluster.
///
/// Liveness is derived at read time, never stored: a socket is alive iff its record names a node
/// whose entry in the liveness table has the same incarnation and an expiry later than the Redis
/// server's clock, read with that entry. No sweeper is needed for correct answers. A lookup reads
/// the sockets asked for and the entries of the nodes they name, never the whole table, so its
/// cost does not grow with the number of registered nodes.
public struct PresenceRegistry: Sendable {
    /// The client; it must have been created with ``PresenceScripts/all``.
    public let client: RedisClient
    /// Key prefix and timings.
    public let configuration: PresenceConfiguration
    var keys: PresenceKeys { configuration.keys }

    /// Most ids ``sockets(_:)`` takes in one call.
    public static let maximumBatch = 1000

    /// Creates a registry reader.
    public init(client: RedisClient, configuration: PresenceConfiguration = PresenceConfiguration()) {
        self.client = client
        self.configuration = configuration
    }

    /// The socket if it is alive, else `nil` (unknown, disconnected, or its node is dead).
    /// Two round trips (one when the socket has no record).
    /// - Throws: ``PresenceError`` for a malformed id (nothing is sent), ``RedisError``.
    public func socket(_ socketID: String) async throws -> PresenceSocket? {
        try await sockets([socketID])[0]
    }

    /// Looks up to 1,000 sockets. On one server (standalone or Sentinel): one round trip, a
    /// read-only script that reads the records, `TIME` and the table entries of the nodes they
    /// name. On a Redis Cluster: the records in one pipelined round trip, then `TIME` and the table
    /// entries (`HMGET`) from the table's primary in a second (skipped when no record exists). One
    /// entry per id, in order, `nil` where the socket is not alive.
    /// - Throws: ``PresenceError`` for a malformed id or too many ids (nothing is sent), ``RedisError``.
    public func sockets(_ socketIDs: [String]) async throws -> [PresenceSocket?] {
        guard socketIDs.count <= Self.maximumBatch else {
            throw PresenceError(.invalidID, "at most \(Self.maximumBatch) socket ids per lookup, got \(socketIDs.count)")
        }
        for id in socketIDs { try PresenceID.validate(id, field: "socketId") }
        if socketIDs.isEmpty { return [] }
        if !client.isCluster, let reply = try await lookupScript(socketIDs) {
            guard let parts = reply.array, parts.count == socketIDs.count + 4, let names = parts[socketIDs.count + 2].array else {
                throw PresenceError(.corruptData, "unexpected \(PresenceScripts.lookup.name) reply")
            }
            let table = NodeTable(time: .array([parts[0], parts[1]]), nodes: names.compactMap(\.string), values: parts[socketIDs.count + 3])
            return try zip(socketIDs, parts[2..<socketIDs.count + 2]).map { id, record in
                try Self.liveSocket(id: id, fields: record, table: table)
            }
        }
        let replies = await client.pipeline(socketIDs.map { RedisCommand("GET", keys.socket($0)) })
        let records = try replies.map { try $0.get() }
        var named = Set<String>()
        for record in records {
            if let value = record.string, let record = SocketRecord(decoding: value) { named.insert(record.nodeID) }
        }
        if named.isEmpty { return socketIDs.map { _ in nil } }
        let table = try await entries(of: Array(named))
        return try zip(socketIDs, records).map { id, record in
            try Self.liveSocket(id: id, fields: record, table: table)
        }
    }

    /// The one-round-trip lookup's reply; `nil` when the client was made without the script
    /// (``PresenceScripts/lookup``), for the two-round-trip path.
    private func lookupScript(_ socketIDs: [String]) async throws -> RedisValue? {
        do {
            return try await client.send(PresenceScripts.lookup.call(keys: [keys.nodeTable], arguments: socketIDs.map(keys.socket)))
        } catch let error as RedisError where error.code == .noScript {
            return nil
        }
    }

    /// `TIME` and the table entries of `nodes`, in one round trip.
    func entries(of nodes: [String]) async throws -> NodeTable {
        var read = RedisCommand("HMGET", keys.nodeTable)
        read.append(contentsOf: nodes)
        let replies = await client.pipeline([RedisCommand("TIME").routed(by: keys.nodeTable), read])
        return NodeTable(time: try replies[0].get(), nodes: nodes, values: try replies[1].get())
    }

    /// Decodes a record (`GET`'s reply) and applies the liveness rule.
    static func liveSocket(id: String, fields: RedisValue, table: NodeTable) throws -> PresenceSocket? {
        guard let value = fields.string, let record = SocketRecord(decoding: value) else { return nil }
        guard table.isAlive(node: record.nodeID, incarnation: record.incarnation), let entry = table.entries[record.nodeID] else { return nil }
        return PresenceSocket(
            socketID: id, nodeID: record.nodeID, nodeIncarnation: record.incarnation, nodeAddress: entry.address,
            userID: record.userID, connectedAt: Date(timeIntervalSince1970: Double(record.connectedAtMicroseconds) / 1_000_000),
            meta: PresenceMeta.decode(record.meta) ?? [:])
    }

    /// A node, alive or dead-but-listed; `nil` when unknown (never registered, left, or forgotten).
    /// - Throws: ``PresenceError`` for a malformed id, ``RedisError``.
    public func node(_ nodeID: String) async throws -> PresenceNodeInfo? {
        try PresenceID.validate(nodeID, field: "nodeId")
        let replies = await client.pipeline([
            RedisCommand("TIME").routed(by: keys.nodeTable), RedisCommand("HMGET", keys.nodeTable, nodeID), RedisCommand("HGETALL", keys.node(nodeID)),
            RedisCommand("SCARD", keys.nodeSockets(nodeID)),
        ])
        let table = NodeTable(time: try replies[0].get(), nodes: [nodeID], values: try replies[1].get())
        return Self.nodeInfo(id: nodeID, record: try replies[2].get().fieldMap, table: table, indexedSockets: try replies[3].get().int)
    }

    /// Every listed node, alive or dead (until swept or past retention), sorted by id.
    /// Two round trips: the table, then every record in one pipeline.
    /// - Throws: ``RedisError``.
    public func nodes() async throws -> [PresenceNodeInfo] {
        try await nodeTableAndRecords().1
    }

    func nodeTableAndRecords() async throws -> (NodeTable, [PresenceNodeInfo]) {
        let first = await client.pipeline([RedisCommand("TIME").routed(by: keys.nodeTable), RedisCommand("HGETALL", keys.nodeTable)])
        let table = NodeTable(time: try first[0].get(), fields: try first[1].get())
        let ids = table.entries.keys.sorted()
        if ids.isEmpty { return (table, []) }
        let replies = await client.pipeline(ids.flatMap { [RedisCommand("HGETALL", keys.node($0)), RedisCommand("SCARD", keys.nodeSockets($0))] })
        var infos: [PresenceNodeInfo] = []
        for (position, id) in ids.enumerated() {
            let record = try replies[2 * position].get().fieldMap
            if let info = Self.nodeInfo(id: id, record: record, table: table, indexedSockets: try replies[2 * position + 1].get().int) {
                infos.append(info)
            }
        }
        return (table, infos)
    }

    /// A node from its record; `indexedSockets` (its set's size) stands in for a socket count the
    /// record lacks, as for nodes that report over HTTP.
    static func nodeInfo(id: String, record: [String: String], table: NodeTable, indexedSockets: Int? = nil) -> PresenceNodeInfo? {
        guard let incarnation = record["incarnation"] else { return nil }
        return PresenceNodeInfo(
            nodeID: id, incarnation: incarnation, address: record["address"] ?? "",
            alive: table.isAlive(node: id, incarnation: incarnation),
            startedAt: Date(milliseconds: Int(record["startedAt"] ?? "") ?? 0),
            lastHeartbeatAt: Date(milliseconds: Int(record["lastHeartbeat"] ?? "") ?? 0),
            expiresAt: Date(milliseconds: Int(record["expiresAt"] ?? "") ?? 0),
            socketCount: record["socketCount"].flatMap { Int($0) } ?? indexedSockets ?? 0,
            userCount: Int(record["userCount"] ?? "") ?? 0,
            meta: record["meta"].flatMap(PresenceMeta.decode) ?? [:])
    }

    /// A page of a node's live sockets. Pages follow Redis `SSCAN`: `limit` is a hint (a page may
    /// hold fewer, or a few more), a socket present throughout is returned at least once, and a
    /// `nil` cursor means the end.
    /// - Parameters:
    ///   - cursor: `nil` for the first page, then the previous page's cursor.
    ///   - limit: 1–1,000.
    /// - Throws: ``PresenceError`` for a malformed id, cursor or limit; ``RedisError``.
    public func sockets(onNode nodeID: String, cursor: String? = nil, limit: Int = 100) async throws -> (sockets: [PresenceSocket], nextCursor: String?) {
        try PresenceID.validate(nodeID, field: "nodeId")
        guard (1...Self.maximumBatch).contains(limit) else {
            throw PresenceError(.invalidID, "limit must be 1–\(Self.maximumBatch), got \(limit)")
        }
        let start = cursor ?? "0"
        guard let position = UInt64(start) else { throw PresenceError(.invalidID, "cursor must be a cursor returned by a previous page") }
        let page = try await client.send(RedisCommand("SSCAN", keys.nodeSockets(nodeID), String(position), "COUNT", String(limit)))
        let (next, members) = try page.scanPage("SSCAN")
        let ids = Array(Set(members.compactMap(\.string))).sorted()
        var live: [PresenceSocket] = []
        for chunk in ids.chunked(Self.maximumBatch) {
            live.append(contentsOf: try await sockets(Array(chunk)).compactMap { $0 }.filter { $0.nodeID == nodeID })
        }
        return (live, next == "0" ? nil : next)
    }

    /// A user's live sockets, sorted by id. Three round trips: the user's entries, the table
    /// entries of the nodes they name, then the live candidates' records (and their nodes').
    /// - Throws: ``PresenceError`` for a malformed id, ``RedisError``.
    public func sockets(ofUser userID: String) async throws -> [PresenceSocket] {
        try PresenceID.validate(userID, field: "userId")
        var entries: [(socketID: String, incarnation: String, node: String)] = []
        for (field, value) in try await client.send(RedisCommand("HGETALL", keys.user(userID))).fieldMap {
            guard let (socketID, incarnation) = SocketRecord.parseUserField(field), PresenceID.isValid(socketID),
                  let split = value.firstIndex(of: "\u{1F}") else { continue }
            entries.append((socketID, incarnation, String(value[value.index(after: split)...])))
        }
        if entries.isEmpty { return [] }
        let table = try await self.entries(of: Array(Set(entries.map(\.node))))
        // A socket may have an entry per incarnation that added it (until the others are removed).
        let candidates = Set(entries.filter { table.isAlive(node: $0.node, incarnation: $0.incarnation) }.map(\.socketID)).sorted()
        var live: [PresenceSocket] = []
        for chunk in candidates.chunked(Self.maximumBatch) {
            live.append(contentsOf: try await sockets(Array(chunk)).compactMap { $0 }.filter { $0.userID == userID })
        }
        return live
    }

    /// Totals for the whole registry. Two round trips.
    /// - Throws: ``RedisError``.
    public func stats() async throws -> PresenceStats {
        let (_, infos) = try await nodeTableAndRecords()
        let alive = infos.filter(\.alive)
        return PresenceStats(
            aliveNodes: alive.count, deadNodes: infos.count - alive.count,
            aliveSockets: alive.reduce(0) { $0 + $1.socketCount },
            onlineUsers: alive.reduce(0) { $0 + $1.userCount })
    }
}
