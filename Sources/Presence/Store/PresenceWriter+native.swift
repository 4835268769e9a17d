import Foundation

/// Socket events written with the server's native conditional commands (Valkey 9, Redis 8.4), no
/// Lua: the same layout and the same semantics as ``PresenceScripts/events``, in plain commands
/// that cost the server a fraction of a script's work.
///
/// - connect: `SET rec PX ttl NX GET` writes a record that was absent. When one was there, its
///   value comes back: a later connect of another node leaves it (superseded); otherwise
///   `SET … PX ttl IFEQ <that value>` swaps it, and a swap that lost a race reads again.
/// - disconnect: the server's compare-and-delete of the value the node wrote, when the node says
///   which (``PresenceNode`` does); otherwise, or when that value is no longer there, `GETEX` (a
///   `GET` that a client reading from replicas still sends to the primary), then the
///   compare-and-delete of what was read, when this node and incarnation hold it.
/// - user add: `HSET` of `socket␟incarnation`, sent with its connect (and removed again in the
///   rare case the connect turns out superseded), then per user key `PEXPIRE … GT` and `… NX`
///   in the same pipeline: a TTL of at least `ttl`, never shortened, and never a key left without
///   one. User remove: `HDEL` of that field.
///
/// A server that refuses a native command (unknown to it, or denied by an ACL) makes the writer
/// use the script from then on; the batch is written again by script, which is idempotent.
/// - the node's set: `SADD` (with the same two `PEXPIRE`s) before, `SREM` after.
extension PresenceWriter {
    /// Rounds of swapping a record whose value changed between reading and swapping it.
    static let swapRounds = 4

    /// The server, when this writer should use its native commands for socket events.
    func nativeServer() async -> RedisServerInfo? {
        // Recording changes needs the decision and the XADD in one atomic step: the script's.
        guard configuration.writeCommands == .automatic, !configuration.changes, !nativeRefused.isSet else { return nil }
        guard let server = try? await client.serverInfo(),
              server.capabilities.isSuperset(of: [.setIfEqual, .deleteIfEqual]) else { return nil }
        return server
    }

    /// ``apply(nodeID:incarnation:events:)`` with native commands. A batch naming a socket more
    /// than once is applied as consecutive batches, each naming a socket once, so that every
    /// event's commands see the state its predecessors left.
    /// - Returns: `nil` when the server refused a native command: the caller uses the script.
    func applyNative(
        nodeID: String, incarnation: String, events: [SocketEvent], written: [String: String], server: RedisServerInfo
    ) async -> [Result<SocketEventOutcome, RedisError>]? {
        var generation: [String: Int] = [:]
        var rounds: [[Int]] = []
        for (position, event) in events.enumerated() {
            let round = generation[event.socketID, default: 0]
            generation[event.socketID] = round + 1
            if round == rounds.count { rounds.append([]) }
            rounds[round].append(position)
        }
        if rounds.count == 1 {
            return await applyNativeOnce(nodeID: nodeID, incarnation: incarnation, events: events, written: written, server: server)
        }
        var outcomes = [Result<SocketEventOutcome, RedisError>](repeating: .success(.notHeld), count: events.count)
        for round in rounds {
            // The written values are of a socket's last event only (a node names a socket once).
            guard let results = await applyNativeOnce(
                nodeID: nodeID, incarnation: incarnation, events: round.map { events[$0] }, written: [:], server: server) else { return nil }
            for (position, result) in zip(round, results) { outcomes[position] = result }
        }
        return outcomes
    }

    /// A batch that names each socket once.
    private func applyNativeOnce(
        nodeID: String, incarnation: String, events: [SocketEvent], written: [String: String], server: RedisServerInfo
    ) async -> [Result<SocketEventOutcome, RedisError>]? {
        let ttl = String(configuration.socketKeyTTLMilliseconds)
        let userEntry = "\(Int(Date().timeIntervalSince1970 * 1000) + configuration.socketKeyTTLMilliseconds)\u{1F}\(nodeID)"

        // The set's additions, before any record is written (a prune must find every record).
        let added = events.compactMap { event -> String? in
            if case .connect(let socketID, _, _, _) = event { return socketID }
            return nil
        }
        var setCommands = indexCommands(nodeID: nodeID, added: added, removed: [])
        if client.isCluster && !setCommands.isEmpty {
            // On a cluster the set and the records live on different nodes: the set goes first.
            if let error = Self.firstFailure(await client.pipeline(setCommands)[...]) { return events.map { _ in .failure(error) } }
            setCommands = []
        }

        // Round 1: each connect's SET NX GET and user entry, each disconnect's GET and known user remove.
        var commands = setCommands
        var records: [String?] = []  // per event: the connect's record value
        var first: [Int] = []  // per event: its command in round 1
        var userCommands: [Int] = []
        var touchedUsers: [String] = []
        var seenUsers = Set<String>()
        for event in events {
            switch event {
            case .connect(let socketID, let userID, let meta, let connectedAt):
                let record = SocketRecord(nodeID: nodeID, incarnation: incarnation, userID: userID, meta: meta, connectedAt: connectedAt).encoded
                records.append(record)
                first.append(commands.count)
                commands.append(RedisCommand("SET", keys.socket(socketID), record, "PX", ttl, "NX", "GET"))
                if let userID {
                    userCommands.append(commands.count)
                    commands.append(RedisCommand("HSET", keys.user(userID), SocketRecord.userField(socketID: socketID, incarnation: incarnation), userEntry))
                    if seenUsers.insert(userID).inserted { touchedUsers.append(userID) }
                }
            case .disconnect(let socketID, let userID):
                let last = written[socketID]
                records.append(last)
                first.append(commands.count)
                if let last, let delete = server.deleteIfEqual(key: keys.socket(socketID), value: last) {
                    commands.append(delete)
                } else {
                    records[records.count - 1] = nil
                    commands.append(RedisCommand("GETEX", keys.socket(socketID)))
                }
                if let userID {
                    userCommands.append(commands.count)
                    commands.append(removeEntry(userID, socketID, incarnation))
                }
            }
        }
        // A user key's TTL, in the pipeline that may create the key.
        let extensions = commands.count
        for userID in touchedUsers { commands += Self.keepTTL(keys.user(userID), ttl) }
        let replies = await client.pipeline(commands)
        if refusesNative(first.map { replies[$0] }) { return nil }
        if let error = Self.firstFailure(replies[..<setCommands.count]) ?? Self.firstFailure(ArraySlice(userCommands.map { replies[$0] }))
            ?? Self.firstFailure(replies[extensions...]) {
            return events.map { _ in .failure(error) }
        }

        // Round 2 (and more while swaps lose races): swaps, deletes, and what follows from them.
        var outcomes = [Result<SocketEventOutcome, RedisError>?](repeating: nil, count: events.count)
        var seen = [String?](repeating: nil, count: events.count)  // the value a swap or delete expects
        var followUps: [RedisCommand] = []  // user entries and set members, once the records settled
        var probes: [Int] = []  // disconnects whose value was not the one written: read it
        for (position, event) in events.enumerated() {
            switch (event, replies[first[position]]) {
            case (_, .failure(let error)):
                outcomes[position] = .failure(error)
            case (.connect, .success(let value)):
                if value.isNull { outcomes[position] = .success(.created) } else { seen[position] = value.string }
            case (.disconnect(let socketID, let knownUser), .success(let value)):
                if let last = records[position] {
                    if value.int == 1 {
                        outcomes[position] = .success(.removed)
                        if knownUser == nil, let userID = SocketRecord(decoding: last)?.userID {
                            followUps.append(removeEntry(userID, socketID, incarnation))
                        }
                    } else {
                        probes.append(position)
                    }
                } else if let current = value.string {
                    seen[position] = current
                } else {
                    outcomes[position] = .success(.notHeld)
                }
            }
        }
        if !probes.isEmpty {
            let values = await client.pipeline(probes.map { RedisCommand("GETEX", keys.socket(events[$0].socketID)) })
            for (position, value) in zip(probes, values) {
                switch value {
                case .failure(let error): outcomes[position] = .failure(error)
                case .success(let value):
                    if let current = value.string { seen[position] = current } else { outcomes[position] = .success(.notHeld) }
                }
            }
        }
        for _ in 0..<Self.swapRounds {
            var due: [(position: Int, command: RedisCommand)] = []
            for (position, event) in events.enumerated() where outcomes[position] == nil {
                guard let current = seen[position] else { continue }
                switch event {
                case .connect(let socketID, let userID, _, let connectedAt):
                    let record = records[position]!
                    let held = SocketRecord(decoding: current)
                    if let held, held.nodeID != nodeID, held.connectedAtMicroseconds > Int(connectedAt.timeIntervalSince1970 * 1_000_000) {
                        outcomes[position] = .success(.superseded)
                        if let userID {  // its entry went with the connect: take it back
                            followUps.append(removeEntry(userID, socketID, incarnation))
                        }
                    } else {
                        due.append((position, RedisCommand("SET", keys.socket(socketID), record, "PX", ttl, "IFEQ", current)))
                    }
                case .disconnect(let socketID, _):
                    if SocketRecord.isHeld(current, nodeID: nodeID, incarnation: incarnation),
                       let delete = server.deleteIfEqual(key: keys.socket(socketID), value: current) {
                        due.append((position, delete))
                    } else {
                        outcomes[position] = .success(.notHeld)
                    }
                }
            }
            if due.isEmpty { break }
            let answers = await client.pipeline(due.map(\.command))
            if refusesNative(answers) { return nil }
            var retry: [(position: Int, command: RedisCommand)] = []
            for ((position, _), answer) in zip(due, answers) {
                let event = events[position]
                switch (event, answer) {
                case (_, .failure(let error)):
                    outcomes[position] = .failure(error)
                case (.connect(let socketID, _, _, _), .success(let value)):
                    if value.isNull {
                        // The record changed since it was read: read it again (or write it, if gone).
                        retry.append((position, RedisCommand("SET", keys.socket(socketID), records[position]!, "PX", ttl, "NX", "GET")))
                    } else {
                        let mine = seen[position].map { SocketRecord.isHeld($0, nodeID: nodeID, incarnation: incarnation) } ?? false
                        outcomes[position] = .success(mine ? .updated : .created)
                    }
                case (.disconnect(_, let knownUser), .success(let value)):
                    guard value.int == 1 else {
                        outcomes[position] = .success(.notHeld)
                        continue
                    }
                    outcomes[position] = .success(.removed)
                    if knownUser == nil, let held = seen[position].flatMap(SocketRecord.init(decoding:)), let userID = held.userID {
                        followUps.append(removeEntry(userID, event.socketID, incarnation))
                    }
                }
            }
            if retry.isEmpty { break }
            let reread = await client.pipeline(retry.map(\.command))
            for ((position, _), answer) in zip(retry, reread) {
                switch answer {
                case .failure(let error): outcomes[position] = .failure(error)
                case .success(let value):
                    if value.isNull { outcomes[position] = .success(.created) } else { seen[position] = value.string }
                }
            }
        }
        let contended = RedisError(.server, "the socket's record kept changing while it was written (\(Self.swapRounds) rounds)")
        let results = outcomes.map { $0 ?? .failure(contended) }

        // The set keeps members until their record is gone: removals after the deletes ran.
        var settled: [String] = []
        for (event, result) in zip(events, results) {
            if case .disconnect = event, case .success = result { settled.append(event.socketID) }
        }
        followUps += indexCommands(nodeID: nodeID, added: [], removed: settled)
        if !followUps.isEmpty, let error = Self.firstFailure(await client.pipeline(followUps)[...]) {
            return events.map { _ in .failure(error) }
        }
        return results
    }

    /// `HDEL` of an incarnation's entry in a user's hash.
    private func removeEntry(_ userID: String, _ socketID: String, _ incarnation: String) -> RedisCommand {
        RedisCommand("HDEL", keys.user(userID), SocketRecord.userField(socketID: socketID, incarnation: incarnation))
    }

    /// Whether a server answered that it does not take a native command (unknown, a syntax it
    /// lacks such as `IFEQ`, or denied by an ACL): the writer then uses the script for good.
    private func refusesNative(_ replies: [Result<RedisValue, RedisError>]) -> Bool {
        for case .failure(let error) in replies where error.code == .server {
            let message = error.message
            if message.hasPrefix("ERR unknown command") || message.hasPrefix("ERR syntax error") || message.hasPrefix("NOPERM") {
                nativeRefused.set()
                return true
            }
        }
        return false
    }

    /// `PEXPIRE key ttl NX` and `… GT`: a TTL of at least `ttl` (another node may write a longer
    /// one, which is kept), also on a key that had none.
    static func keepTTL(_ key: String, _ ttl: String) -> [RedisCommand] {
        [RedisCommand("PEXPIRE", key, ttl, "NX"), RedisCommand("PEXPIRE", key, ttl, "GT")]
    }
}
