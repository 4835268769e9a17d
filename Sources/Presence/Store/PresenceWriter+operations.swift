extension PresenceWriter {
    /// Operations per script call: long enough to amortize the call, short enough that one call
    /// never blocks Redis for long (about a millisecond).
    static let operationsPerCall = 256
    /// Rounds of sending again the operations a cluster node answered it does not serve.
    static let rerouteRounds = 4

    /// Runs `prefix` and then `operations` through ``PresenceScripts/events`` in one pipeline:
    /// calls of up to ``operationsPerCall`` operations in order, one node's operations per call on
    /// a Redis Cluster (the calls to different nodes go concurrently).
    ///
    /// On a cluster a user add whose connect went to another node waits for that connect's answer
    /// and is sent only if the connect was not superseded (a second round trip), so that a stale
    /// report never writes the user entry, on either topology. Operations a node answered it does
    /// not serve (a slot moved or migrating) are sent again one by one, routed by their own key,
    /// so that the client follows `MOVED` and `ASK`.
    /// - Returns: the prefix's replies and one result per operation.
    /// - Parameter ordered: the prefix must have run before any operation (on a cluster they go
    ///   to different nodes, so this costs a round trip there).
    /// - Parameter reason: recorded with the `socket.disconnected` changes of the call's disconnects.
    /// - Parameter unlisting: the node's socket set, which `x`/`X` operations remove from (one
    ///   server only: on a cluster the set's primary is seldom the records').
    func run(
        _ operations: [SocketOperation], nodeID: String, incarnation: String?, after prefix: [RedisCommand] = [], ordered: Bool = false,
        reason: DisconnectReason = .disconnected, unlisting index: String = ""
    ) async -> (prefix: [Result<RedisValue, RedisError>], operations: [Result<RedisValue, RedisError>]) {
        if operations.isEmpty && prefix.isEmpty { return ([], []) }
        var header = Header(
            node: nodeID, incarnation: incarnation ?? "", ttl: String(configuration.socketKeyTTLMilliseconds),
            retention: configuration.changesRetentionArgument, reason: reason.rawValue,
            lastSeen: configuration.lastSeenArgument, socketHistory: configuration.socketHistoryArgument, index: index, keys: keys, streams: [:])
        let streamKeys = configuration.changes ? ChangeStreams.keys(keys, cluster: client.isCluster) : []
        var groups = await client.nodeGroups(of: operations.map(\.key) + streamKeys)
        header.streams = Self.streams(streamKeys, groups: groups[operations.count...])
        groups.removeLast(streamKeys.count)
        // A user add stays with its connect when both are on one node; else it waits for it.
        var deferred: [Int] = []
        var first: [Int] = []
        first.reserveCapacity(operations.count)
        for index in operations.indices {
            if operations[index].code == .userAdd, index > 0, groups[index] != groups[index - 1] {
                deferred.append(index)
            } else {
                first.append(index)
            }
        }
        var results = [Result<RedisValue, RedisError>](repeating: .success(.null), count: operations.count)
        var prefixReplies: [Result<RedisValue, RedisError>] = []
        var together = prefix
        if ordered && client.isCluster && !prefix.isEmpty && !operations.isEmpty {
            // On a cluster the prefix (the set's additions) and the operations go to different
            // nodes at once: send it first, so that no record is written that the set does not list.
            prefixReplies = await client.pipeline(prefix)
            if let error = Self.firstFailure(prefixReplies[...]) { return (prefixReplies, operations.map { _ in .failure(error) }) }
            together = []
        }
        prefixReplies += await send(first, of: operations, groups: groups, header: header, prefix: together, into: &results)
        if !deferred.isEmpty {
            _ = await send(settle(deferred, &results), of: operations, groups: groups, header: header, prefix: [], into: &results)
        }
        var misrouted = operations.indices.filter { Self.isMisrouted(results[$0]) }
        var round = 0
        while !misrouted.isEmpty && round < Self.rerouteRounds {
            round += 1
            if !streamKeys.isEmpty {
                // The slot map changed: which stream each primary serves may have too.
                let fresh = await client.nodeGroups(of: misrouted.map { operations[$0].key } + streamKeys)
                header.streams = Self.streams(streamKeys, groups: fresh[misrouted.count...])
                for (index, group) in zip(misrouted, fresh) { groups[index] = group }
            }
            // One call per operation, its own key declared: the cluster redirects each one. A user
            // add waits for its connect's answer, as a deferred one does.
            let adds = misrouted.filter { Self.followsConnect($0, in: operations) }
            let others = misrouted.filter { !Self.followsConnect($0, in: operations) }
            _ = await send(others, of: operations, groups: groups, header: header, prefix: [], into: &results, alone: true)
            let due = settle(adds.filter { !Self.isMisrouted(results[$0 - 1]) }, &results)
            _ = await send(due, of: operations, groups: groups, header: header, prefix: [], into: &results, alone: true)
            misrouted = misrouted.filter { Self.isMisrouted(results[$0]) }
        }
        for index in misrouted {
            if case .failure(let error) = results[index] {
                results[index] = .failure(RedisError(.unavailable, "the Redis Cluster node serving this key could not be reached: \(error.message)"))
            }
        }
        return (prefixReplies, results)
    }

    /// The script's leading arguments; the change stream depends on the primary a call goes to.
    struct Header {
        var node: String
        var incarnation: String
        var ttl: String
        var retention: String
        var reason: String
        var lastSeen: String
        var socketHistory: String
        /// The node's socket set for `x`/`X` (`""`: none).
        var index: String
        var keys: PresenceKeys
        /// Node group → the index of the first change stream that primary serves (none when
        /// changes are off); its users-online counter shares the stream's slot.
        var streams: [Int: Int]

        func arguments(group: Int) -> [String] {
            guard let stream = streams[group] else { return [node, incarnation, ttl, "", retention, reason, "", "", "", index] }
            return [node, incarnation, ttl, keys.changeStream(stream), retention, reason, keys.onlineUsers(stream), lastSeen, socketHistory, index]
        }
    }

    /// Node group → the index of the first stream (in index order) its primary serves.
    static func streams(_ keys: [String], groups: ArraySlice<Int>) -> [Int: Int] {
        var streams: [Int: Int] = [:]
        for (index, group) in groups.enumerated() where index < keys.count && group >= 0 && streams[group] == nil { streams[group] = index }
        return streams
    }

    /// User adds whose connect (the operation before each) has answered: those to send (the
    /// connect succeeded), the others settled in `results` (0 when it was superseded, its error
    /// when it failed).
    private func settle(_ adds: [Int], _ results: inout [Result<RedisValue, RedisError>]) -> [Int] {
        var due: [Int] = []
        for index in adds {
            switch results[index - 1] {
            case .failure(let error): results[index] = .failure(error)
            case .success(let value) where value.int == -1: results[index] = .success(.integer(0))
            case .success: due.append(index)
            }
        }
        return due
    }

    /// Whether the operation at `index` is the user add of the connect right before it.
    static func followsConnect(_ index: Int, in operations: [SocketOperation]) -> Bool {
        index > 0 && operations[index].code == .userAdd && operations[index - 1].code == .connect && operations[index].b == operations[index - 1].key
    }

    /// Sends the operations at `indices` (in order) after `prefix` in one pipeline and writes their
    /// results into `results`.
    private func send(
        _ indices: [Int], of operations: [SocketOperation], groups: [Int], header: Header, prefix: [RedisCommand],
        into results: inout [Result<RedisValue, RedisError>], alone: Bool = false
    ) async -> [Result<RedisValue, RedisError>] {
        let calls = alone ? indices.map { [$0] } : Self.calls(indices, of: operations, groups: groups)
        var commands = prefix
        commands.reserveCapacity(prefix.count + calls.count)
        for call in calls {
            var command = RedisCommand("EVALSHA", PresenceScripts.events.sha1, "1", operations[call[0]].key)
            command.append(contentsOf: header.arguments(group: groups[call[0]]))
            let recording = header.streams[groups[call[0]]] != nil  // as arguments(group:) decided
            for index in call { operations[index].append(to: &command, recording: recording) }
            // Only the first key is declared: an ASK for it says nothing of the others, so a call of
            // several operations comes back, and they go again one by one (each ASK then is right).
            commands.append(call.count > 1 ? command.answeringAsk() : command)
        }
        if commands.isEmpty { return [] }
        let replies = await client.pipeline(commands)
        for (call, reply) in zip(calls, replies[prefix.count...]) {
            switch reply {
            case .failure(let error):
                for index in call { results[index] = .failure(error) }
            case .success(let value):
                guard let values = value.array, values.count == call.count else {
                    let error = RedisError(.protocolError, "unexpected \(PresenceScripts.events.name) reply \(value)")
                    for index in call { results[index] = .failure(error) }
                    continue
                }
                for (index, value) in zip(call, values) {
                    if case .error(let message) = value {
                        results[index] = .failure(RedisError(.server, message))
                    } else {
                        results[index] = .success(value)
                    }
                }
            }
        }
        return Array(replies[..<prefix.count])
    }

    /// Whether a node answered that it does not serve the operation's key (or could not, the
    /// cluster being down or the slot moving): the operation did nothing and may go again.
    static func isMisrouted(_ result: Result<RedisValue, RedisError>) -> Bool {
        guard case .failure(let error) = result, error.code == .server else { return false }
        return error.message.contains("non local key") || error.message.contains("cluster is down")
            || error.message.contains("slot not served")
            || error.message.hasPrefix("MOVED") || error.message.hasPrefix("ASK") || error.message.hasPrefix("TRYAGAIN")
            || error.message.hasPrefix("CLUSTERDOWN")
    }

    /// The operations of each call, by position, in order: one node group's per call, up to
    /// ``operationsPerCall`` each. A user add stays in the call of the connect before it (a call
    /// may then hold one operation more), so that the script can skip the entry of a superseded
    /// connect.
    static func calls(_ indices: [Int], of operations: [SocketOperation], groups: [Int]) -> [[Int]] {
        var calls: [[Int]] = []
        var open: [Int: Int] = [:]  // group → its call being filled
        for index in indices {
            let group = groups[index]
            if let call = open[group], calls[call].count < operationsPerCall || operations[index].code == .userAdd {
                calls[call].append(index)
            } else {
                open[group] = calls.count
                calls.append([index])
            }
        }
        return calls
    }
}
