extension PresenceWriter {
    /// Operations per script call: long enough to amortize the call, short enough that one call
    /// never blocks Redis for long (about a millisecond).
    static let operationsPerCall = 256

    /// Runs `prefix` and then `operations` through ``PresenceScripts/events`` in one pipeline:
    /// calls of up to ``operationsPerCall`` operations in order, each confined to one hash slot
    /// when the server is a Redis Cluster node (asked once per client, before the first call).
    /// - Returns: the prefix's replies and one result per operation.
    func run(
        _ operations: [SocketOperation], nodeID: String, incarnation: String?, after prefix: [RedisCommand] = []
    ) async -> (prefix: [Result<RedisValue, RedisError>], operations: [Result<RedisValue, RedisError>]) {
        let cluster: Bool
        do {
            cluster = operations.isEmpty ? false : try await client.slotMode.isCluster(client)
        } catch {
            let failure = error as? RedisError ?? RedisError(.protocolError, "\(error)")
            return (prefix.map { _ in .failure(failure) }, operations.map { _ in .failure(failure) })
        }
        let calls = Self.calls(operations, bySlot: cluster)
        let header = [nodeID, incarnation ?? "", String(configuration.socketKeyTTLMilliseconds)]
        var commands = prefix
        for call in calls {
            var command = RedisCommand("EVALSHA", PresenceScripts.events.sha1, String(call.count))
            for index in call { command.append(operations[index].key) }
            command.append(contentsOf: header)
            for index in call { operations[index].append(to: &command) }
            commands.append(command)
        }
        if commands.isEmpty { return ([], []) }
        let replies = await client.pipeline(commands)
        var results = [Result<RedisValue, RedisError>](repeating: .success(.null), count: operations.count)
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
                for (index, value) in zip(call, values) { results[index] = .success(value) }
            }
        }
        return (Array(replies[..<prefix.count]), results)
    }

    /// The operations of each call, by position, in order; split per hash slot when `bySlot`.
    /// Without slots, a user add stays in the call of the connect before it (a call may then hold
    /// one operation more), so that the script can skip the entry of a superseded connect.
    static func calls(_ operations: [SocketOperation], bySlot: Bool) -> [[Int]] {
        guard bySlot else {
            var calls: [[Int]] = []
            var current: [Int] = []
            for index in operations.indices {
                if current.count >= operationsPerCall, operations[index].code != .userAdd {
                    calls.append(current)
                    current = []
                }
                current.append(index)
            }
            if !current.isEmpty { calls.append(current) }
            return calls
        }
        var calls: [[Int]] = []
        var callOfSlot: [Int: Int] = [:]
        for (index, operation) in operations.enumerated() {
            let slot = RedisKeySlot.slot(operation.key)
            if let call = callOfSlot[slot], calls[call].count < operationsPerCall {
                calls[call].append(index)
            } else {
                callOfSlot[slot] = calls.count
                calls.append([index])
            }
        }
        return calls
    }
}
