import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The I/O around ``RedisClusterStateMachine``: one standalone ``RedisClient`` per cluster node
/// (each with its own connection, I/O thread, script cache handling and reply matching), a
/// pipeline split per node and sent concurrently, redirected commands sent again, and the topology
/// asked for with `CLUSTER SHARDS` on a short-lived connection of its own.
final class RedisClusterRouter: Sendable {
    typealias Endpoint = RedisConfiguration.Endpoint

    /// A node's client: writes go to primaries (``RedisConfiguration/requirePrimary``), reads
    /// from replicas to a `READONLY` connection.
    private struct NodeKey: Hashable {
        var endpoint: Endpoint
        var replica: Bool
    }

    private enum Phase { case idle, running, stopped }

    private struct State {
        var machine: RedisClusterStateMachine
        var clients: [NodeKey: RedisClient] = [:]
        var phase = Phase.idle
        var refresh: Task<Void, Never>?
        /// A refresh was forced while one ran: run another after it.
        var refreshAgain = false
    }

    private let configuration: RedisConfiguration
    private let cluster: RedisConfiguration.Cluster
    private let scripts: [RedisScript]
    private let metrics: RedisClientMetrics
    private let logger: Logger
    private let state: Mutex<State>
    /// Slots that failed over, for the nodes to write again what may have been lost.
    let failovers: RedisFailovers
    private let started: AsyncStream<RedisClient>
    private let start: AsyncStream<RedisClient>.Continuation

    init(configuration: RedisConfiguration, cluster: RedisConfiguration.Cluster, scripts: [RedisScript], metrics: RedisClientMetrics, failovers: RedisFailovers, logger: Logger) {
        self.configuration = configuration
        self.failovers = failovers
        self.cluster = cluster
        self.scripts = scripts
        self.metrics = metrics
        self.logger = logger
        state = Mutex(State(machine: RedisClusterStateMachine(configuration: cluster, replicaChoice: Int.random(in: 0..<1024))))
        (started, start) = AsyncStream.makeStream(of: RedisClient.self)
    }

    /// Runs the node clients and the periodic topology refresh until graceful shutdown or
    /// cancellation.
    func run() async throws {
        let begin = state.withLock { state -> Bool in
            guard state.phase == .idle else { return false }
            state.phase = .running
            return true
        }
        guard begin else { throw RedisError(.invalidConfiguration, "a RedisClient runs once") }
        let start = self.start
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { [self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: cluster.refreshInterval)
                        if Task.isCancelled { break }
                        await refresh(force: false, wait: true)
                    }
                }
                for await client in started {
                    group.addTask { try? await client.run() }
                }
                group.cancelAll()
            }
        } onCancelOrGracefulShutdown: { [self] in
            state.withLock { $0.phase = .stopped }
            start.finish()
        }
        state.withLock { $0.phase = .stopped }
    }

    // MARK: Commands

    /// Sends `commands`, each to the node serving its slot, and returns their results in order.
    /// A transaction is one unit: its commands must share a slot.
    func pipeline(_ commands: [RedisCommand], transaction: Bool) async -> [Result<RedisValue, RedisError>] {
        if let error = await waitUntilRunning() { return commands.map { _ in .failure(error) } }
        let units: [[Int]]
        if transaction {
            let slots = Set(commands.compactMap(\.routingKeyOrFirst).map(RedisKeySlot.slot))
            guard slots.count <= 1 else {
                let error = RedisError(.server, "CROSSSLOT a transaction's keys must share one hash slot on a Redis Cluster")
                return commands.map { _ in .failure(error) }
            }
            units = [Array(commands.indices)]
        } else {
            units = commands.indices.map { [$0] }
        }
        let transactionLead = transaction ? RedisClusterStateMachine.routingCommand(ofTransaction: commands) : nil
        var results = [Result<RedisValue, RedisError>?](repeating: nil, count: commands.count)
        var pending = units.map { Pending(positions: $0, attempts: 0, ask: nil) }
        // Retries end at this instant, whatever attempts remain: a caller waits about one command
        // timeout for a cluster that is failing over, then gets its error (the API's 503).
        let deadline = ContinuousClock.now + configuration.commandTimeout
        while !pending.isEmpty {
            // Only a client with no map waits for a refresh here; a due periodic one runs beside.
            await refresh(force: false, wait: state.withLock { $0.machine.topology == nil })
            if Task.isCancelled {
                let error = RedisError(.cancelled, "the call was cancelled before Redis answered it")
                for unit in pending { for position in unit.positions { results[position] = .failure(error) } }
                break
            }
            // Route every pending unit; group by node.
            var byNode: [NodeKey: [Pending]] = [:]
            var unroutable: [Pending] = []
            state.withLock { state in
                for unit in pending {
                    let route = unit.ask.map { RedisClusterStateMachine.Route.node($0, asking: true) }
                        ?? state.machine.route(transactionLead ?? commands[unit.positions[0]], replicaAllowed: !unit.primaryOnly)
                    switch route {
                    case .fail(let error):
                        // No node serves the slot: ask the cluster once more (the map may be older
                        // than a promotion), then answer unavailable rather than wait out a failover.
                        if state.machine.topology != nil, unit.attempts == 0, state.machine.mayRetry(attempts: 1), ContinuousClock.now < deadline {
                            unroutable.append(Pending(positions: unit.positions, attempts: unit.attempts + 1, ask: nil))
                        } else {
                            for position in unit.positions { results[position] = .failure(error) }
                        }
                    case .node(let endpoint, _):
                        let replica = state.machine.topology?.replicas.contains(endpoint) ?? false
                        byNode[NodeKey(endpoint: endpoint, replica: replica && unit.ask == nil), default: []].append(unit)
                    }
                }
            }
            // Send each node's share concurrently.
            let answered = await withTaskGroup(of: (NodeKey, [Pending], [[Result<RedisValue, RedisError>]]).self) { group in
                for (key, units) in byNode {
                    guard let client = nodeClient(key) else {
                        let error = RedisError(.shutdown, "the Redis client has shut down")
                        group.addTask { (key, units, units.map { $0.positions.map { _ in .failure(error) } }) }
                        continue
                    }
                    group.addTask { (key, units, await Self.send(units, of: commands, transaction: transaction, to: client)) }
                }
                var all: [(NodeKey, [Pending], [[Result<RedisValue, RedisError>]])] = []
                for await item in group { all.append(item) }
                return all
            }
            // Judge the replies.
            var next = unroutable
            var pause = false
            var refreshNeeded = !unroutable.isEmpty
            var attempt = unroutable.map(\.attempts).max() ?? 0
            state.withLock { state in
                for (key, units, replies) in answered {
                    for (unit, unitReplies) in zip(units, replies) {
                        var verdict = state.machine.verdict(for: Self.judged(unitReplies), from: key.endpoint)
                        // A read that may or may not have run is safe to send again.
                        if verdict == .doneAndRefresh, unit.positions.allSatisfy({ commands[$0].isReadOnly }) { verdict = .retryAfterRefresh }
                        let retry = state.machine.mayRetry(attempts: unit.attempts + 1) && ContinuousClock.now < deadline
                        var again = Pending(positions: unit.positions, attempts: unit.attempts + 1, ask: nil, primaryOnly: unit.primaryOnly)
                        switch verdict {
                        case .done, .doneAndRefresh:
                            for (position, reply) in zip(unit.positions, unitReplies) { results[position] = reply }
                            continue
                        case .redirect: metrics.recordRedirect()
                        case .ask(let target):
                            if !transaction, !commands[unit.positions[0]].followsAsk {
                                for (position, reply) in zip(unit.positions, unitReplies) { results[position] = reply }
                                continue
                            }
                            metrics.recordRedirect()
                            if transaction { pause = true } else { again.ask = target }
                        case .retryAfterPause:
                            pause = true
                            if key.replica { again.primaryOnly = true }
                        case .retryAfterRefresh:
                            refreshNeeded = true
                            if key.replica { again.primaryOnly = true }
                        }
                        if retry {
                            next.append(again)
                            attempt = max(attempt, again.attempts)
                        } else {
                            // Out of attempts on a redirect or a cluster still settling: unavailable,
                            // not an error about the command.
                            for (position, reply) in zip(unit.positions, unitReplies) {
                                if case .failure(let error) = reply, !error.isConnectivity {
                                    results[position] = .failure(RedisError(.unavailable, "Redis Cluster did not settle after \(again.attempts) attempts: \(error.message)"))
                                } else {
                                    results[position] = reply
                                }
                            }
                        }
                    }
                }
            }
            pending = next
            if pending.isEmpty { break }
            if refreshNeeded {
                // A refresh forced within the spacing of the last one would not run: wait for it.
                let delay = state.withLock { $0.machine.refreshDelay(now: .now) }
                if delay > .zero, ContinuousClock.now + delay < deadline { try? await Task.sleep(for: delay) }
                await refresh(force: true, wait: true)
            }
            if pause || refreshNeeded {
                try? await Task.sleep(for: RedisClusterStateMachine.pause(attempt: attempt, jitter: Double.random(in: 0.5...1)))
            }
        }
        return results.map { $0 ?? .failure(RedisError(.protocolError, "no reply was recorded for a command")) }
    }

    private struct Pending: Sendable {
        var positions: [Int]
        var attempts: Int
        var ask: Endpoint?
        /// A replica failed to answer it: read from the primary instead.
        var primaryOnly = false
    }

    /// One node's share: single commands pipelined (each `ASK`ed one behind `ASKING`), or a
    /// transaction.
    private static func send(_ units: [Pending], of commands: [RedisCommand], transaction: Bool, to client: RedisClient) async -> [[Result<RedisValue, RedisError>]] {
        if transaction {
            return [await client.transaction(units[0].positions.map { commands[$0] })]
        }
        var batch: [RedisCommand] = []
        batch.reserveCapacity(units.count)
        for unit in units {
            if unit.ask != nil { batch.append(RedisCommand("ASKING")) }
            batch.append(commands[unit.positions[0]])
        }
        let replies = await client.pipeline(batch)
        var index = 0
        var result: [[Result<RedisValue, RedisError>]] = []
        result.reserveCapacity(units.count)
        for unit in units {
            if unit.ask != nil { index += 1 }
            result.append([replies[index]])
            index += 1
        }
        return result
    }

    /// The reply that decides a unit's fate: its first failure, or its first reply.
    private static func judged(_ replies: [Result<RedisValue, RedisError>]) -> Result<RedisValue, RedisError> {
        for reply in replies { if case .failure = reply { return reply } }
        return replies.first ?? .success(.null)
    }

    // MARK: Topology

    /// The primary serving each key's slot (refreshing the topology first when it is due); `nil`
    /// for a key no primary serves.
    func primaries(of keys: [String]) async -> [Endpoint?] {
        if await waitUntilRunning() == nil { await refresh(force: false, wait: state.withLock { $0.machine.topology == nil }) }
        return state.withLock { state in keys.map { state.machine.primary(of: $0) } }
    }

    /// A client for each primary serving slots (for commands that must visit every node, such as `SCAN`).
    func primaryClients() async throws -> [RedisClient] {
        if let error = await waitUntilRunning() { throw error }
        await refresh(force: false, wait: state.withLock { $0.machine.topology == nil })
        let primaries = state.withLock { $0.machine.topology?.primaries ?? [] }
        guard !primaries.isEmpty else { throw RedisError(.unavailable, "the Redis Cluster topology is not known (no node answered CLUSTER SHARDS)") }
        return try primaries.map { endpoint in
            guard let client = nodeClient(NodeKey(endpoint: endpoint, replica: false)) else { throw RedisError(.shutdown, "the Redis client has shut down") }
            return client
        }
    }

    /// Asks the cluster for its topology when due (or now, when `force`, spaced by the state
    /// machine's minimum), and waits for the answer only when `wait`: a caller whose slot is mapped
    /// is not held up by a refresh that may have to try several nodes. Concurrent callers share one
    /// refresh; a refresh forced while one runs is done again after it (the running one may have
    /// read the cluster before the event that forced it).
    private func refresh(force: Bool, wait: Bool) async {
        let task = state.withLock { state -> Task<Void, Never>? in
            if let running = state.refresh {
                if force { state.refreshAgain = true }
                return running
            }
            if force { state.machine.requestRefresh() }
            guard state.phase == .running, state.machine.refreshDue(now: .now) else { return nil }
            let candidates = state.machine.refreshCandidates(seeds: cluster.seeds)
            let task = Task { [self] in
                let answer = await Self.ask(candidates, configuration: configuration)
                let changed = self.state.withLock { current -> RedisClusterTopology? in
                    defer {
                        current.refresh = nil
                        if current.refreshAgain {
                            current.refreshAgain = false
                            current.machine.requestRefresh()
                        }
                    }
                    switch answer {
                    case .success(let (topology, endpoint)):
                        let changed = topology != current.machine.topology ? topology : nil
                        let failedOver = current.machine.refreshed(topology, now: .now, answeredBy: endpoint)
                        if !failedOver.isEmpty { failovers.record(failedOver) }
                        return changed
                    case .failure:
                        current.machine.refreshFailed(now: .now)
                        return nil
                    }
                }
                if case .failure(let error) = answer {
                    logger.warning("Redis Cluster topology refresh failed", metadata: ["error": "\(error.message)"])
                } else if let changed {
                    logger.info("Redis Cluster topology", metadata: [
                        "primaries": "\(changed.primaries.map(\.description).joined(separator: ","))",
                        "uncoveredSlots": "\(changed.uncoveredSlots)"])
                }
            }
            state.refresh = task
            return task
        }
        if wait { await task?.value }
    }

    /// `CLUSTER SHARDS` from the first candidate that answers, on connections of its own made on
    /// threads of their own (hiredis blocks): the best candidate alone first (usually the node
    /// that answered last time: one connection per refresh), then the others three at a time, so
    /// that dead or frozen nodes cost a short timeout per three, not one each.
    private static func ask(_ candidates: [Endpoint], configuration: RedisConfiguration) async -> Result<(RedisClusterTopology, Endpoint), RedisError> {
        guard let best = candidates.first else {
            return .failure(RedisError(.unavailable, "no Redis Cluster node to ask for the topology"))
        }
        var failures: [String] = []
        switch await race([best], configuration: configuration) {
        case .success(let answer): return .success(answer)
        case .failure(let error): failures.append(error.message)
        }
        // Then three at a time: a struggling cluster is not met with a connection per node at once.
        for group in Array(candidates.dropFirst()).chunked(3) {
            switch await race(Array(group), configuration: configuration) {
            case .success(let answer): return .success(answer)
            case .failure(let error): failures.append(error.message)
            }
        }
        return .failure(RedisError(.unavailable, failures.joined(separator: "; ")))
    }

    /// Asks every candidate at once; the first answer wins.
    private static func race(_ candidates: [Endpoint], configuration: RedisConfiguration) async -> Result<(RedisClusterTopology, Endpoint), RedisError> {
        await withCheckedContinuation { continuation in
            let race = TopologyRace(continuation, runners: candidates.count)
            for candidate in candidates {
                let thread = Thread { race.finished(candidate, askOne(candidate, configuration: configuration)) }
                thread.name = "presence-redis-topology"
                thread.start()
            }
        }
    }

    private static func askOne(_ candidate: Endpoint, configuration: RedisConfiguration) -> Result<RedisClusterTopology, RedisError> {
        var target = configuration
        target.endpoint = candidate
        target.cluster = nil
        target.requirePrimary = false
        target.connectTimeout = min(configuration.connectTimeout, .milliseconds(500))
        target.commandTimeout = min(configuration.commandTimeout, .milliseconds(500))
        do {
            let connection = try RedisConnection.connect(target, scripts: [])
            connection.append(RedisCommand("CLUSTER", "SHARDS"))
            let reply = try connection.readReply().get()
            var host = "127.0.0.1"
            if case .tcp(let known, _) = candidate { host = known }
            let topology = try RedisClusterTopology.parse(shards: reply, seedHost: host)
            guard !topology.shards.isEmpty else { return .failure(RedisError(.unavailable, "no shard with an online primary")) }
            return .success(topology)
        } catch {
            return .failure(error)
        }
    }

    // MARK: Node clients

    /// The client of one node, created (and started) on first use; `nil` once stopped.
    private func nodeClient(_ key: NodeKey) -> RedisClient? {
        state.withLock { state in
            if let client = state.clients[key] { return client }
            guard state.phase == .running else { return nil }
            var node = configuration
            node.endpoint = key.endpoint
            node.cluster = nil
            node.database = 0
            node.requirePrimary = !key.replica
            node.readOnly = key.replica
            let client = RedisClient(configuration: node, scripts: scripts, metrics: metrics, logger: logger)
            state.clients[key] = client
            start.yield(client)
            return client
        }
    }

    /// Waits for ``run()`` to start, up to the connect timeout: a call made before the client runs
    /// fails clearly rather than waiting forever.
    private func waitUntilRunning() async -> RedisError? {
        let deadline = ContinuousClock.now + configuration.connectTimeout
        while true {
            switch state.withLock({ $0.phase }) {
            case .running: return nil
            case .stopped: return RedisError(.shutdown, "the Redis client has shut down")
            case .idle:
                if ContinuousClock.now >= deadline || Task.isCancelled {
                    return RedisError(.notRunning, "the Redis client is not running: start its run() (in a ServiceGroup) before sending")
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }
}
