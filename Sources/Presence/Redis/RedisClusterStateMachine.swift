/// The decisions of the Redis Cluster client, as a value: where each command goes, what a reply
/// means (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, an unreachable node),
/// how long to wait before retrying, and when to ask the cluster for its topology again. It does
/// no I/O and reads no clock: `RedisClusterRouter` runs the calls around it, and unit tests drive
/// it by hand.
struct RedisClusterStateMachine {
    typealias Instant = ContinuousClock.Instant
    typealias Endpoint = RedisConfiguration.Endpoint

    /// Where one command goes next.
    enum Route {
        /// Send it to this node; precede it with `ASKING` when `asking`.
        case node(Endpoint, asking: Bool)
        /// Return this error to the caller.
        case fail(RedisError)
    }

    /// What to do with a command after its reply.
    enum Verdict: Equatable {
        /// The reply is the caller's (a value, or an error that is about the command itself).
        case done
        /// The reply is the caller's, and the topology must be asked again (the connection broke
        /// after the command was written: it may have run, so it is not sent again).
        case doneAndRefresh
        /// Send it again to the node the slot map now names (`MOVED`, map updated).
        case redirect
        /// Send it once to this node, after `ASKING` (the slot is migrating there).
        case ask(Endpoint)
        /// Send it again after a pause (`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`).
        case retryAfterPause
        /// Send it again once the topology has been asked again (the node was unreachable, is no
        /// longer a primary, or `MOVED` named a node the map does not know; the command did not run).
        case retryAfterRefresh
    }

    let readFrom: RedisConfiguration.Cluster.ReadFrom
    let refreshInterval: Duration
    let maximumAttempts: Int
    /// A stable choice among a shard's replicas, so that one client's reads of a slot go to one
    /// replica (and `TIME` beside them reads that replica's clock).
    let replicaChoice: Int
    /// The shortest time between two refreshes: a burst of redirects triggers one, not hundreds.
    static let minimumRefreshSpacing: Duration = .milliseconds(100)

    private(set) var topology: RedisClusterTopology?
    private(set) var lastRefresh: Instant?
    private(set) var refreshRequested = true
    /// The node that answered the last refresh: asked first next time (a dead primary listed first
    /// would make every refresh wait out its timeout).
    private(set) var lastAnswered: Endpoint?
    /// The primary that last served each slot, as refreshes saw it (not as `MOVED` patched it).
    private var servedBy: [Endpoint?] = []
    /// Primaries that failed over, and when: a stale view naming one owner again is ignored for
    /// ``retirement``.
    private var retired: [Endpoint: Instant] = [:]
    static let retirement: Duration = .seconds(60)

    init(configuration: RedisConfiguration.Cluster, replicaChoice: Int) {
        readFrom = configuration.readFrom
        refreshInterval = configuration.refreshInterval
        maximumAttempts = max(1, configuration.maximumAttempts)
        self.replicaChoice = max(0, replicaChoice)
    }

    // MARK: Routing

    /// The node for `command` (by its routing key's slot; keyless commands go to the first primary).
    /// `replicaAllowed: false` sends a read to the primary (after its replica failed to answer).
    func route(_ command: RedisCommand, replicaAllowed: Bool = true) -> Route {
        guard let topology else {
            return .fail(RedisError(.unavailable, "the Redis Cluster topology is not known yet (no seed node answered CLUSTER SHARDS)"))
        }
        guard let key = command.routingKeyOrFirst else {
            guard let first = topology.primaries.first else {
                return .fail(RedisError(.unavailable, "the Redis Cluster has no primary serving slots"))
            }
            return .node(first, asking: false)
        }
        let slot = RedisKeySlot.slot(key)
        guard let shard = topology.shard(ofSlot: slot) else {
            return .fail(RedisError(.unavailable, "no Redis Cluster primary serves hash slot \(slot) (cluster down or failing over)"))
        }
        if readFrom == .replicas, replicaAllowed, command.isReadOnly, !shard.replicas.isEmpty {
            return .node(shard.replicas[replicaChoice % shard.replicas.count], asking: false)
        }
        return .node(shard.primary, asking: false)
    }

    /// The command a transaction is routed by: the slot of its first key (keyless commands such as
    /// `TIME` may come first), to the primary unless every command only reads (a replica would
    /// refuse the writes).
    static func routingCommand(ofTransaction commands: [RedisCommand]) -> RedisCommand {
        let lead = commands.first { !$0.isReadOnly } ?? commands[0]
        guard let key = commands.lazy.compactMap(\.routingKeyOrFirst).first else { return lead }
        return lead.routed(by: key)
    }

    /// The primary serving `key`'s slot, for grouping work by node.
    func primary(of key: String) -> Endpoint? {
        topology?.shard(ofSlot: RedisKeySlot.slot(key))?.primary
    }

    // MARK: Replies

    /// What `result`, the reply of a command sent to `endpoint`, means. Updates the slot map on
    /// `MOVED` and asks for a refresh where the map may be stale.
    mutating func verdict(for result: Result<RedisValue, RedisError>, from endpoint: Endpoint) -> Verdict {
        guard case .failure(let error) = result else { return .done }
        if error.code == .server {
            let message = error.message
            if message.hasPrefix("MOVED ") {
                guard let (slot, target) = Self.redirect(message, from: endpoint) else { return .done }
                // Several slots may have moved at once (a reshard, a failover): learn them all.
                refreshRequested = true
                // A target the map does not know as a primary (a promoted replica, a new node): the
                // map still names the node that refused, so wait for the refresh rather than send
                // it there again at once.
                return topology?.moved(slot: slot, to: target) == true ? .redirect : .retryAfterRefresh
            }
            if message.hasPrefix("ASK ") {
                guard let (_, target) = Self.redirect(message, from: endpoint) else { return .done }
                return .ask(target)
            }
            if message.hasPrefix("TRYAGAIN") || message.hasPrefix("LOADING") {
                return .retryAfterPause
            }
            if message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("MASTERDOWN") {
                refreshRequested = true
                return .retryAfterPause
            }
            return .done
        }
        switch error.code {
        case .connectionFailed, .unavailable, .replica:
            refreshRequested = true
            return .retryAfterRefresh
        case .connectionLost, .timeout:
            refreshRequested = true
            return .doneAndRefresh
        default:
            return .done
        }
    }

    /// The pause before attempt `attempt` (1-based) of a retried command: 10 ms doubling, up to
    /// 320 ms, scaled by `jitter` (0.5–1).
    static func pause(attempt: Int, jitter: Double) -> Duration {
        let base = Duration.milliseconds(10) * (1 << min(max(attempt - 1, 0), 5))
        return base * min(max(jitter, 0.5), 1)
    }

    /// Whether a command that has been sent `attempts` times may go once more.
    func mayRetry(attempts: Int) -> Bool { attempts < maximumAttempts }

    // MARK: Topology refresh

    /// Whether the topology should be asked for now: first use, something forced it (and the
    /// last refresh is at least ``minimumRefreshSpacing`` ago), or the periodic refresh is due.
    /// A failed refresh is tried again after the spacing, a topology known or not: while no node
    /// answers, calls fail fast instead of each waiting for every seed's connect timeout.
    func refreshDue(now: Instant) -> Bool {
        guard let lastRefresh else { return true }
        if refreshRequested || topology == nil { return now - lastRefresh >= Self.minimumRefreshSpacing }
        return now - lastRefresh >= refreshInterval
    }

    /// How long until a forced refresh may run (the spacing after the last one).
    func refreshDelay(now: Instant) -> Duration {
        guard let lastRefresh else { return .zero }
        return max(.zero, Self.minimumRefreshSpacing - (now - lastRefresh))
    }

    /// The nodes to ask for the topology, best first: the one that answered last, the known primaries, their replicas, then
    /// the seeds (a whole new cluster behind the same seeds is still found).
    func refreshCandidates(seeds: [Endpoint]) -> [Endpoint] {
        var candidates: [Endpoint] = lastAnswered.map { [$0] } ?? []
        let known = (topology?.shards ?? []).map(\.primary) + (topology?.shards ?? []).flatMap(\.replicas)
        for endpoint in known + seeds where !candidates.contains(endpoint) { candidates.append(endpoint) }
        return candidates
    }

    /// A refresh answered. Returns the slots that **failed over** since the last refresh that
    /// saw them served: their primary is now another node, and the one that served them before is no
    /// longer a primary (it failed, or was demoted). Writes acknowledged by the old primary just
    /// before may be missing on the new one (replication is asynchronous); a slot merely moved by a
    /// reshard, its old primary still a primary, lost nothing.
    @discardableResult
    mutating func refreshed(_ topology: RedisClusterTopology, now: Instant, answeredBy endpoint: Endpoint? = nil) -> [Int] {
        var failedOver: [Int] = []
        let primaries = Set(topology.primaries)
        if servedBy.isEmpty { servedBy = Array(repeating: nil, count: RedisClusterTopology.slotCount) }
        retired = retired.filter { now - $0.value < Self.retirement }
        for slot in 0..<RedisClusterTopology.slotCount {
            guard let owner = topology.shard(ofSlot: slot)?.primary else { continue }  // keep who served it last
            // A node that lags the cluster may still call a failed-over primary the owner: that is
            // not a second failover.
            if retired[owner] != nil { continue }
            if let before = servedBy[slot], before != owner, !primaries.contains(before) {
                failedOver.append(slot)
                retired[before] = now
            }
            servedBy[slot] = owner
        }
        self.topology = topology
        lastAnswered = endpoint
        lastRefresh = now
        refreshRequested = topology.uncoveredSlots > 0
        return failedOver
    }

    /// A refresh found no node that answered: keep the map, try again after the spacing.
    mutating func refreshFailed(now: Instant) {
        lastRefresh = now
        refreshRequested = true
    }

    /// Asks for a refresh at the next occasion.
    mutating func requestRefresh() { refreshRequested = true }

    /// Parses `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381` (an empty host means the
    /// node that answered).
    static func redirect(_ message: String, from endpoint: Endpoint) -> (slot: Int, target: Endpoint)? {
        let parts = message.split(separator: " ")
        guard parts.count >= 3, let slot = Int(parts[1]), let colon = parts[2].lastIndex(of: ":"),
              let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty, case .tcp(let known, _) = endpoint { host = known }
        guard !host.isEmpty else { return nil }
        return (slot, .tcp(host: host, port: port))
    }
}
