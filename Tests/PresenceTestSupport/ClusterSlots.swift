import PresenceEmbedded

/// At most a few Redis Clusters at once per test process: each is three to six redis-servers
/// pinging each other, and a dozen at once on two cores would stretch every heartbeat of every
/// test past its TTL. A test waiting for a slot uses no CPU.
public actor ClusterSlots {
    public static let shared = ClusterSlots(limit: 2)

    private let limit: Int
    private var busy = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    /// Runs `body` once a slot is free.
    public func withSlot<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if busy < limit {
            busy += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty { busy -= 1 } else { waiting.removeFirst().resume() }
    }
}

/// Runs `body` with a fresh local Redis Cluster, started once a slot of ``ClusterSlots`` is free
/// and stopped after.
public func withLocalCluster<T: Sendable>(
    primaries: Int = 3, replicasPerPrimary: Int, extraArguments: [String] = [], server: String? = nil,
    _ body: @Sendable (LocalRedisCluster) async throws -> T
) async throws -> T {
    try await ClusterSlots.shared.withSlot {
        let cluster = try await LocalRedisCluster.start(
            primaries: primaries, replicasPerPrimary: replicasPerPrimary, extraArguments: extraArguments, server: server)
        defer { cluster.stop() }
        return try await body(cluster)
    }
}
