import Synchronization

/// Counters the client keeps about itself; cheap enough for every round trip.
public final class RedisClientMetrics: Sendable {
    private let roundTrips = Atomic<Int>(0)
    private let commands = Atomic<Int>(0)
    private let errors = Atomic<Int>(0)
    private let connectedFlag = Atomic<Bool>(false)
    private let redirects = Atomic<Int>(0)

    init() {}

    /// Pipelines written (each one write followed by reading its replies).
    public var roundTripCount: Int { roundTrips.load(ordering: .relaxed) }
    /// Commands written, `MULTI`/`EXEC` and script reloads included.
    public var commandCount: Int { commands.load(ordering: .relaxed) }
    /// Connection failures: failed connects, broken or timed-out connections.
    public var errorCount: Int { errors.load(ordering: .relaxed) }
    /// Whether a connection to Redis is currently established.
    public var isConnected: Bool { connectedFlag.load(ordering: .relaxed) }

    /// Redis Cluster: commands sent again elsewhere after `MOVED` or `ASK`.
    public var redirectCount: Int { redirects.load(ordering: .relaxed) }

    func recordRedirect() { redirects.add(1, ordering: .relaxed) }

    func recordRoundTrip(commands count: Int) {
        roundTrips.add(1, ordering: .relaxed)
        commands.add(count, ordering: .relaxed)
    }

    func recordError() { errors.add(1, ordering: .relaxed) }

    func setConnected(_ value: Bool) { connectedFlag.store(value, ordering: .relaxed) }
}
