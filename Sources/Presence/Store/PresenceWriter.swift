import Foundation

/// The write side of the layout: registration, heartbeats, socket events, leaving and pruning,
/// each as few pipelines as possible. ``PresenceNode`` drives it for Swift nodes; the HTTP API
/// drives it for nodes in other languages. Inputs are validated by the callers' public entry points.
public struct PresenceWriter: Sendable {
    /// The client; it must have been created with ``PresenceScripts/all``.
    public let client: RedisClient
    /// Key prefix and timings.
    public let configuration: PresenceConfiguration
    var keys: PresenceKeys { configuration.keys }
    /// Set once the server refused a native command (an ACL, a renamed command): the script
    /// from then on.
    let nativeRefused = NativeCommandRefusal()
    /// Node incarnations this writer made leave: their sockets' removals record `node_left`.
    let left = LeftIncarnations()

    /// Creates a writer.
    public init(client: RedisClient, configuration: PresenceConfiguration) {
        self.client = client
        self.configuration = configuration
    }

    /// Registers or heartbeats a node and refreshes its socket set's TTL: three commands in one
    /// round trip, whatever the node's socket count.
    /// - Parameter ttl: the node TTL to write; ``PresenceConfiguration/nodeTTL`` by default.
    /// - Throws: ``RedisError``.
    public func heartbeat(_ heartbeat: NodeHeartbeat, ttl: Duration? = nil) async throws -> HeartbeatResult {
        try await sendHeartbeat(heartbeat, ttl: ttl, readRecord: false).0
    }

    /// A heartbeat from a node that reports over HTTP: the registered incarnation is kept (or a
    /// new one made) unless `incarnation` names one, the start time is kept while the incarnation
    /// stays, and the node as it now stands comes back with the answer: one round trip, whatever
    /// the number of nodes or sockets. Its socket count is its set's size.
    /// - Throws: ``RedisError``; ``PresenceError`` when the record is unreadable.
    public func report(nodeID: String, incarnation: String?, address: String?, meta: [String: String]?, userCount: Int?) async throws -> (HeartbeatResult, PresenceNodeInfo) {
        let heartbeat = NodeHeartbeat(
            nodeID: nodeID, incarnation: incarnation ?? "", address: address, startedAt: Date(),
            socketCount: nil, userCount: userCount, meta: meta)
        let (result, record) = try await sendHeartbeat(heartbeat, ttl: nil, readRecord: true)
        if result.status == .down && record.isEmpty {
            throw PresenceError(.nodeLeaving, "node \(nodeID)'s incarnation \(result.incarnation ?? "") left and its sockets are still being disconnected; register again in a moment (or with a new incarnation)")
        }
        let entry = NodeTable.Entry(expiresAt: Int(result.expiresAt.timeIntervalSince1970 * 1000), incarnation: result.incarnation ?? "", address: "", raw: "")
        let table = NodeTable(now: entry.expiresAt - configuration.nodeTTLMilliseconds, entries: [nodeID: entry])
        guard let node = PresenceRegistry.nodeInfo(id: nodeID, record: record, table: table, indexedSockets: result.indexedSockets) else {
            throw PresenceError(.corruptData, "node \(nodeID) has no record right after its heartbeat")
        }
        return (result, node)
    }

    private func sendHeartbeat(_ heartbeat: NodeHeartbeat, ttl: Duration?, readRecord: Bool) async throws -> (HeartbeatResult, [String: String]) {
        let ttlMilliseconds = (ttl ?? configuration.nodeTTL).milliseconds
        let arguments = [
            heartbeat.nodeID, heartbeat.incarnation, String(ttlMilliseconds), String(configuration.nodeRetentionMilliseconds),
            heartbeat.address ?? "", String(Int(heartbeat.startedAt.timeIntervalSince1970 * 1000)),
            String(heartbeat.socketCount ?? -1), String(heartbeat.userCount ?? -1),
            heartbeat.meta.map { $0.isEmpty ? "{}" : PresenceMeta.encode($0) } ?? "",
            heartbeat.incarnation.isEmpty ? PresenceID.newIncarnation() : "",
            configuration.changesRetentionArgument,
        ]
        let index = keys.nodeSockets(heartbeat.nodeID)
        var commands = [
            PresenceScripts.heartbeat.call(
                keys: [keys.nodeTable, keys.node(heartbeat.nodeID), keys.changeStream(0), keys.goneNodes, keys.watcherLease], arguments: arguments),
            RedisCommand("PEXPIRE", index, String(configuration.socketKeyTTLMilliseconds)),
            RedisCommand("SCARD", index),
        ]
        if readRecord { commands.append(RedisCommand("HGETALL", keys.node(heartbeat.nodeID))) }
        let results = await client.pipeline(commands)
        let reply = try results[0].get()
        guard let parts = reply.array, parts.count >= 3, let status = parts[0].string.flatMap(HeartbeatResult.Status.init(rawValue:)),
              let expiresAt = parts[2].int else {
            throw PresenceError(.corruptData, "unexpected heartbeat reply \(reply)")
        }
        let indexed = try results[2].get().int ?? 0
        let result = HeartbeatResult(
            status: status, expiresAt: Date(milliseconds: expiresAt), indexedSockets: indexed,
            incarnation: parts.count > 3 ? parts[3].string : heartbeat.incarnation)
        return (result, readRecord ? try results[3].get().fieldMap : [:])
    }

    /// Removes a node from the liveness table and its record: all its sockets read dead at once.
    /// - Parameter incarnation: only this incarnation leaves (`nil`: whichever is registered).
    /// - Returns: `false` when another incarnation holds the record (nothing changed).
    /// - Throws: ``RedisError``.
    public func leave(nodeID: String, incarnation: String?) async throws -> Bool {
        let reply = try await client.send(PresenceScripts.leave.call(
            keys: [keys.nodeTable, keys.node(nodeID), keys.changeStream(0), keys.goneNodes],
            arguments: [nodeID, incarnation ?? "", configuration.changesRetentionArgument]))
        if reply.int == 1, let incarnation { left.insert(nodeID: nodeID, incarnation: incarnation) }
        return reply.int == 1
    }

    /// Removes a node for good, whichever incarnation is registered: its entry and record first
    /// (its sockets read dead at once), then its sockets, user entries and socket set.
    /// - Returns: `false` when the node was not registered (nothing else is touched then).
    /// - Throws: ``RedisError``.
    public func removeNode(nodeID: String) async throws -> Bool {
        guard try await leave(nodeID: nodeID, incarnation: nil) else { return false }
        _ = try await prune(nodeID: nodeID, reason: .nodeLeft) { _ in false }
        _ = try await client.send(RedisCommand("DEL", keys.nodeSockets(nodeID)))
        return true
    }

    /// Applies socket events of one node incarnation in order. By script: one pipeline on one
    /// server, plus a second one for the user entries of disconnects reported without their user;
    /// on a Redis Cluster the set's additions go first, a user add whose connect lives on another
    /// node waits for it, and the set's removals follow the disconnects: up to four round trips.
    /// By native commands (``PresenceConfiguration/writeCommands``, on servers that have them):
    /// one pipeline, plus one when a record was found in place or a disconnect was reported, and
    /// more only while a swap loses a race.
    ///
    /// Socket records change exactly in event order. The node's socket set and the user index
    /// follow each socket's last event in the batch. The set stays a superset of the node's socket
    /// records whatever fails midway: ids are added before their records are written and removed
    /// only after their disconnect ran, so a resync's prune always finds every record.
    /// Disconnects are conditional: a socket now held by another node (a reconnect race) is left
    /// alone and reported as ``SocketEventOutcome/notHeld``.
    /// - Returns: one result per event; a failure carries the ``RedisError`` of that event's command
    ///   (or of the batch's index and user updates, reported on every event).
    public func apply(nodeID: String, incarnation: String, events: [SocketEvent]) async -> [Result<SocketEventOutcome, RedisError>] {
        await apply(nodeID: nodeID, incarnation: incarnation, events: events) { [:] }
    }

    /// ``apply(nodeID:incarnation:events:)``, told the record values the node last wrote for some
    /// of the sockets it disconnects (`socket id → value`, asked for only by the native path):
    /// with native commands, those are deleted by value in one command, without reading them first.
    func apply(
        nodeID: String, incarnation: String, events: [SocketEvent], written: () -> [String: String]
    ) async -> [Result<SocketEventOutcome, RedisError>] {
        if events.isEmpty { return [] }
        if let server = await nativeServer(),
           let results = await applyNative(nodeID: nodeID, incarnation: incarnation, events: events, written: written(), server: server) {
            return results
        }
        var last: [String: Int] = [:]
        for (position, event) in events.enumerated() { last[event.socketID] = position }
        // Where one server holds it all, the node's set and the user entries of a socket's last
        // disconnect go in the call's operations, not in a round trip or operations after them.
        let unlisting = !client.isCluster
        var added: [String] = []
        var userRemoves: [String: [String]] = [:]
        for (position, event) in events.enumerated() where last[event.socketID] == position {
            switch event {
            case .connect(let socketID, _, _, _):
                added.append(socketID)
            case .disconnect(let socketID, let userID):
                if let userID, !unlisting { userRemoves[userID, default: []].append(socketID) }
            }
        }
        var operations: [SocketOperation] = []
        var eventOperation: [Int] = []  // event position → its operation
        operations.reserveCapacity(2 * events.count + userRemoves.count)
        eventOperation.reserveCapacity(events.count)
        for (position, event) in events.enumerated() {
            eventOperation.append(operations.count)
            switch event {
            case .connect(let socketID, let userID, let meta, let connectedAt):
                let socketKey = keys.socket(socketID)
                let record = SocketRecord(nodeID: nodeID, incarnation: incarnation, userID: userID, meta: meta, connectedAt: connectedAt)
                // The user entry follows its socket's last connect in the same call, so that a
                // connect found stale writes no user entry either: on one server in the same operation.
                if let userID, last[socketID] == position, unlisting {
                    operations.append(SocketOperation(
                        code: .connectAdding, key: socketKey, a: record.encoded, b: keys.user(userID),
                        c: SocketRecord.userField(socketID: socketID, incarnation: incarnation),
                        d: String(record.connectedAtMicroseconds)))
                    continue
                }
                operations.append(SocketOperation(code: .connect, key: socketKey, a: record.encoded))
                if let userID, last[socketID] == position {
                    operations.append(SocketOperation(
                        code: .userAdd, key: keys.user(userID), a: SocketRecord.userField(socketID: socketID, incarnation: incarnation), b: socketKey,
                        c: String(record.connectedAtMicroseconds)))
                }
            case .disconnect(let socketID, let userID):
                // The record comes back only where the user must be read from it. On one server a
                // socket's last disconnect also takes it out of the node's set, in the same call.
                let isLast = last[socketID] == position
                if let userID, isLast, unlisting {
                    operations.append(SocketOperation(
                        code: .eraseUnlistingRemoving, key: keys.socket(socketID), a: keys.user(userID),
                        b: SocketRecord.userField(socketID: socketID, incarnation: incarnation)))
                    continue
                }
                let code: SocketOperation.Code = switch (userID == nil && isLast, unlisting && isLast) {
                case (true, true): .disconnectUnlisting
                case (true, false): .disconnect
                case (false, true): .eraseUnlisting
                case (false, false): .erase
                }
                operations.append(SocketOperation(code: code, key: keys.socket(socketID)))
            }
        }
        for (userID, sockets) in userRemoves {
            for socketID in sockets {
                operations.append(SocketOperation(
                    code: .userRemove, key: keys.user(userID), a: SocketRecord.userField(socketID: socketID, incarnation: incarnation)))
            }
        }
        let (indexReplies, replies) = await run(
            operations, nodeID: nodeID, incarnation: incarnation, after: indexCommands(nodeID: nodeID, added: added, removed: []), ordered: true,
            unlisting: unlisting ? keys.nodeSockets(nodeID) : "")
        var userFailure: RedisError?
        for (operation, reply) in zip(operations, replies) where operation.code.changesUserEntry {
            if case .failure(let error) = reply { userFailure = error; break }
        }
        if let error = Self.firstFailure(indexReplies[...]) ?? userFailure {
            return events.map { _ in .failure(error) }
        }

        var outcomes: [Result<SocketEventOutcome, RedisError>] = []
        outcomes.reserveCapacity(events.count)
        var settled: [String] = []
        var lateUserRemoves: [SocketOperation] = []
        for (position, event) in events.enumerated() {
            switch (event, replies[eventOperation[position]]) {
            case (_, .failure(let error)):
                outcomes.append(.failure(error))
            case (.connect, .success(let value)):
                switch value.int {
                case 1: outcomes.append(.success(.created))
                case -1: outcomes.append(.success(.superseded))
                default: outcomes.append(.success(.updated))
                }
            case (.disconnect(let socketID, let knownUser), .success(let value)):
                let isLast = last[socketID] == position
                if isLast && !unlisting { settled.append(socketID) }
                guard let deleted = value.string else {
                    outcomes.append(.success(.notHeld))
                    continue
                }
                outcomes.append(.success(.removed))
                if knownUser == nil, isLast, let record = SocketRecord(decoding: deleted), let userID = record.userID {
                    lateUserRemoves.append(SocketOperation(
                        code: .userRemove, key: keys.user(userID), a: SocketRecord.userField(socketID: socketID, incarnation: record.incarnation)))
                }
            }
        }
        let cleanup = indexCommands(nodeID: nodeID, added: [], removed: settled)
        if !cleanup.isEmpty || !lateUserRemoves.isEmpty {
            let (indexReplies, userReplies) = await run(lateUserRemoves, nodeID: nodeID, incarnation: incarnation, after: cleanup)
            if let error = Self.firstFailure(indexReplies[...]) ?? Self.firstFailure(userReplies[...]) {
                return outcomes.map { _ in .failure(error) }
            }
        }
        return outcomes
    }

    static func firstFailure(_ results: ArraySlice<Result<RedisValue, RedisError>>) -> RedisError? {
        for case .failure(let error) in results { return error }
        return nil
    }

    func indexCommands(nodeID: String, added: [String], removed: [String]) -> [RedisCommand] {
        let index = keys.nodeSockets(nodeID)
        var commands: [RedisCommand] = []
        for chunk in added.chunked(1000) {
            var command = RedisCommand("SADD", index)
            command.append(contentsOf: chunk)
            commands.append(command)
        }
        if !added.isEmpty { commands += Self.keepTTL(index, String(configuration.socketKeyTTLMilliseconds)) }
        for chunk in removed.chunked(1000) {
            var command = RedisCommand("SREM", index)
            command.append(contentsOf: chunk)
            commands.append(command)
        }
        return commands
    }

    /// Refreshes the TTL of some of a node's sockets (the amortized refresh): one `PEXPIRE` per
    /// socket and one script per user, in one pipeline.
    /// - Returns: the ids whose socket key was missing (to be written again).
    /// - Throws: ``RedisError``.
    public func refresh(nodeID: String, incarnation: String, sockets: [(socketID: String, userID: String?)]) async throws -> [String] {
        if sockets.isEmpty { return [] }
        let ttl = String(configuration.socketKeyTTLMilliseconds)
        let expires = sockets.map { RedisCommand("PEXPIRE", keys.socket($0.socketID), ttl) }
        let users = sockets.compactMap { socket in
            socket.userID.map {
                SocketOperation(code: .userRefresh, key: keys.user($0), a: SocketRecord.userField(socketID: socket.socketID, incarnation: incarnation))
            }
        }
        let (replies, userReplies) = await run(users, nodeID: nodeID, incarnation: incarnation, after: expires)
        var missing: [String] = []
        for (socket, reply) in zip(sockets, replies) {
            if try reply.get().int == 0 { missing.append(socket.socketID) }
        }
        for reply in userReplies { _ = try reply.get() }
        return missing
    }

    /// Every member of a node's socket set, walked with `SSCAN` in pages of
    /// ``PresenceConfiguration/batchSize`` (a reconcile compares it with the node's local truth).
    /// - Throws: ``RedisError``.
    public func members(nodeID: String) async throws -> Set<String> {
        let index = keys.nodeSockets(nodeID)
        var cursor = "0"
        var members = Set<String>()
        repeat {
            let page = try await client.send(RedisCommand("SSCAN", index, cursor, "COUNT", String(configuration.batchSize)))
            let (next, listed) = try page.scanPage("SSCAN")
            cursor = next
            for member in listed { if let id = member.string { members.insert(id) } }
        } while cursor != "0"
        return members
    }

    /// Removes from a node's socket set, and from Redis, every socket the node no longer holds
    /// (`keep` answers whether it does), whatever incarnation wrote it. Walks the set with `SSCAN`
    /// in pages of ``PresenceConfiguration/batchSize``.
    /// - Returns: how many sockets were removed.
    /// - Throws: ``RedisError``.
    public func prune(nodeID: String, keep: (String) -> Bool) async throws -> Int {
        try await prune(nodeID: nodeID, reason: .nodeDown, keep: keep)
    }

    /// ``prune(nodeID:keep:)`` recording its disconnects with `reason`.
    func prune(nodeID: String, reason: DisconnectReason, keep: (String) -> Bool) async throws -> Int {
        let index = keys.nodeSockets(nodeID)
        var cursor = "0"
        var removedTotal = 0
        repeat {
            let page = try await client.send(RedisCommand("SSCAN", index, cursor, "COUNT", String(configuration.batchSize)))
            let (next, members) = try page.scanPage("SSCAN")
            cursor = next
            let stale = members.compactMap(\.string).filter { !keep($0) }
            removedTotal += try await removeSockets(nodeID: nodeID, incarnation: nil, socketIDs: stale, reason: reason)
        } while cursor != "0"
        return removedTotal
    }

    /// Deletes sockets held by `nodeID` (conditionally), their user entries and set members.
    /// - Parameter incarnation: only sockets of this incarnation (`nil`: any).
    /// - Parameter reason: recorded with their `socket.disconnected`; by default `node_left` for an
    ///   incarnation this writer saw leave, else `disconnected`.
    /// - Returns: how many socket records were deleted.
    func removeSockets(nodeID: String, incarnation: String?, socketIDs: [String], reason: DisconnectReason? = nil) async throws -> Int {
        if socketIDs.isEmpty { return 0 }
        let reason = reason ?? (incarnation.map { left.contains(nodeID: nodeID, incarnation: $0) } == true ? .nodeLeft : .disconnected)
        let (_, replies) = await run(
            socketIDs.map { SocketOperation(code: .disconnect, key: keys.socket($0)) }, nodeID: nodeID, incarnation: incarnation, reason: reason)
        var userRemoves: [SocketOperation] = []
        var settled: [String] = []
        var deleted = 0
        for (socketID, reply) in zip(socketIDs, replies) {
            guard case .success(let value) = reply else { continue }
            settled.append(socketID)
            guard let value = value.string else { continue }
            deleted += 1
            if let record = SocketRecord(decoding: value), let userID = record.userID {
                userRemoves.append(SocketOperation(
                    code: .userRemove, key: keys.user(userID), a: SocketRecord.userField(socketID: socketID, incarnation: record.incarnation)))
            }
        }
        // Members leave the set only once their record is gone (or was never this node's).
        let (indexReplies, userReplies) = await run(
            userRemoves, nodeID: nodeID, incarnation: nil, after: indexCommands(nodeID: nodeID, added: [], removed: settled), reason: reason)
        for reply in indexReplies + userReplies { _ = try reply.get() }
        if let error = Self.firstFailure(replies[...]) { throw error }
        return deleted
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

extension Date {
    init(milliseconds: Int) { self.init(timeIntervalSince1970: Double(milliseconds) / 1000) }
}
