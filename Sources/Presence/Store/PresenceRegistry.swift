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
        try await read(socketIDs, departures: false).map(\.socket)
    }

    /// ``sockets(_:)`` with, for each socket that has no record, how it went (its tombstone,
    /// kept ``PresenceConfiguration/socketHistoryRetention`` with changes on): on one server the
    /// same round trip; on a Redis Cluster the tombstones go in the second round trip (which a
    /// lookup finding no record then makes too).
    /// - Throws: ``PresenceError`` for a malformed id or too many ids (nothing is sent), ``RedisError``.
    public func lookup(_ socketIDs: [String]) async throws -> [SocketState] {
        try await read(socketIDs, departures: true)
    }

    private func read(_ socketIDs: [String], departures: Bool) async throws -> [SocketState] {
        guard socketIDs.count <= Self.maximumBatch else {
            throw PresenceError(.invalidID, "at most \(Self.maximumBatch) socket ids per lookup, got \(socketIDs.count)")
        }
        for id in socketIDs { try PresenceID.validate(id, field: "socketId") }
        if socketIDs.isEmpty { return [] }
        if !client.isCluster, let reply = try await lookupScript(socketIDs) {
            let count = socketIDs.count
            guard let parts = reply.array, parts.count == count + 5, let names = parts[count + 2].array,
                  let gone = parts[count + 4].array, gone.count == count else {
                throw PresenceError(.corruptData, "unexpected \(PresenceScripts.lookup.name) reply")
            }
            let table = NodeTable(time: .array([parts[0], parts[1]]), nodes: names.compactMap(\.string), values: parts[count + 3])
            return try zip(socketIDs.indices, parts[2..<count + 2]).map { index, record in
                SocketState(
                    socket: try Self.liveSocket(id: socketIDs[index], fields: record, table: table),
                    departure: departures ? gone[index].string.flatMap(SocketDeparture.init(decoding:)) : nil)
            }
        }
        let replies = await client.pipeline(socketIDs.map { RedisCommand("GET", keys.socket($0)) })
        let records = try replies.map { try $0.get() }
        var named = Set<String>()
        var absent: [Int] = []
        var found = [SocketDeparture?](repeating: nil, count: socketIDs.count)
        for (index, record) in records.enumerated() {
            if let value = record.string, let record = SocketRecord(decoding: value) {
                named.insert(record.nodeID)
            } else if !departures {
                continue
            } else if let value = record.string {
                found[index] = SocketDeparture(decoding: value)  // a tombstone, written over the record
            } else {
                absent.append(index)
            }
        }
        if named.isEmpty && absent.isEmpty { return found.map { SocketState(socket: nil, departure: $0) } }
        // The table's entries and the tombstones of the earlier layout (a key of their own, until
        // it expires) of the sockets without a record, in one round trip.
        var commands = absent.map { RedisCommand("GET", keys.socketGone(socketIDs[$0])) }
        let nodes = Array(named)
        if !nodes.isEmpty { commands += entriesCommands(of: nodes) }
        let second = await client.pipeline(commands)
        for (index, reply) in zip(absent, second) { found[index] = try reply.get().string.flatMap(SocketDeparture.init(decoding:)) }
        let table = nodes.isEmpty
            ? NodeTable(now: 0, entries: [:])
            : NodeTable(time: try second[absent.count].get(), nodes: nodes, values: try second[absent.count + 1].get())
        return try zip(socketIDs, records).enumerated().map { index, pair in
            SocketState(socket: try Self.liveSocket(id: pair.0, fields: pair.1, table: table), departure: found[index])
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
        let replies = await client.pipeline(entriesCommands(of: nodes))
        return NodeTable(time: try replies[0].get(), nodes: nodes, values: try replies[1].get())
    }

    /// `TIME` from the table's primary and `HMGET` of the entries of `nodes`.
    private func entriesCommands(of nodes: [String]) -> [RedisCommand] {
        var read = RedisCommand("HMGET", keys.nodeTable)
        read.append(contentsOf: nodes)
        return [RedisCommand("TIME").routed(by: keys.nodeTable), read]
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
        let (table, infos, _) = try await nodeTableAndRecords(alsoReading: [])
        return (table, infos)
    }

    /// ``nodeTableAndRecords()``, with `GET` of `counters` in the first round trip.
    private func nodeTableAndRecords(alsoReading counters: [String]) async throws -> (NodeTable, [PresenceNodeInfo], [RedisValue]) {
        let first = await client.pipeline(
            [RedisCommand("TIME").routed(by: keys.nodeTable), RedisCommand("HGETALL", keys.nodeTable)] + counters.map { RedisCommand("GET", $0) })
        let table = NodeTable(time: try first[0].get(), fields: try first[1].get())
        let counts = try first[2...].map { try $0.get() }
        let ids = table.entries.keys.sorted()
        if ids.isEmpty { return (table, [], counts) }
        let replies = await client.pipeline(ids.flatMap { [RedisCommand("HGETALL", keys.node($0)), RedisCommand("SCARD", keys.nodeSockets($0))] })
        var infos: [PresenceNodeInfo] = []
        for (position, id) in ids.enumerated() {
            let record = try replies[2 * position].get().fieldMap
            if let info = Self.nodeInfo(id: id, record: record, table: table, indexedSockets: try replies[2 * position + 1].get().int) {
                infos.append(info)
            }
        }
        return (table, infos, counts)
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
        try await user(userID).sockets
    }

    /// A user: its live sockets (as ``sockets(ofUser:)``, in as many round trips) and, once it
    /// went offline, when its last socket went (read in the first round trip). A user whose
    /// sockets read dead but still have entries (their node crashed and is not announced yet) has
    /// no `lastSeenAt`: the one stored is of an earlier offline, and the new one comes with the
    /// announcement.
    /// - Throws: ``PresenceError`` for a malformed id, ``RedisError``.
    public func user(_ userID: String) async throws -> PresenceUser {
        try PresenceID.validate(userID, field: "userId")
        let first = await client.pipeline([RedisCommand("HGETALL", keys.user(userID)), RedisCommand("GET", keys.lastSeen(userID))])
        let fields = try first[0].get()
        let sockets = try await sockets(ofUser: userID, entries: fields)
        let gone = sockets.isEmpty && !fields.fieldMap.keys.contains { SocketRecord.parseUserField($0) != nil }
        let lastSeen = gone ? try first[1].get().string.flatMap { Int($0) }.map(Date.init(milliseconds:)) : nil
        return PresenceUser(userID: userID, sockets: sockets, lastSeenAt: lastSeen)
    }

    /// The live sockets among a user's hash `fields` (`HGETALL`'s reply).
    private func sockets(ofUser userID: String, entries fields: RedisValue) async throws -> [PresenceSocket] {
        var entries: [(socketID: String, incarnation: String, node: String)] = []
        for (field, value) in fields.fieldMap {
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

    /// Totals for the whole registry. Two round trips; with changes on, users online are the sum
    /// of the users-online counters (one per change stream), read in the first.
    /// - Throws: ``RedisError``.
    public func stats() async throws -> PresenceStats {
        let counters = configuration.changes ? (0..<ChangeStreams.keys(keys, cluster: client.isCluster).count).map(keys.onlineUsers) : []
        let (_, infos, counts) = try await nodeTableAndRecords(alsoReading: counters)
        let alive = infos.filter(\.alive)
        // A reshard can move a user between counters: one may go negative, the sum stays right.
        let exact = counts.reduce(0) { $0 + (Int($1.string ?? "") ?? 0) }
        return PresenceStats(
            aliveNodes: alive.count, deadNodes: infos.count - alive.count,
            aliveSockets: alive.reduce(0) { $0 + $1.socketCount },
            onlineUsers: configuration.changes ? max(0, exact) : alive.reduce(0) { $0 + $1.userCount },
            onlineUsersExact: configuration.changes)
    }
}
