/// The sockets a node disconnected lately, kept for a while on a Redis Cluster: a failover may
/// lose a record's deletion while the socket set's `SREM` (on another shard) survives, and the
/// record would then read alive, outside the set, until its TTL. After a failover the node deletes
/// again, conditionally, those whose keys lived in the failed-over slots.
struct RecentDisconnects {
    struct Entry {
        var socketID: String
        var userID: String?
        var at: ContinuousClock.Instant
    }

    /// How long a disconnect is kept: longer than a failover takes to be noticed (node timeout and
    /// election, a topology refresh, a heartbeat) with Redis Cluster's default 15 s node timeout.
    let window: Duration
    /// Most entries kept, so that a burst of disconnects cannot grow memory without bound.
    let capacity: Int
    private var entries: [Entry] = []
    private var start = 0

    init(window: Duration = .seconds(60), capacity: Int = 200_000) {
        self.window = window
        self.capacity = capacity
    }

    mutating func append(_ socketID: String, userID: String?, at now: ContinuousClock.Instant) {
        prune(now: now)
        if entries.count - start >= capacity { start += 1 }
        entries.append(Entry(socketID: socketID, userID: userID, at: now))
        if start > 4_096 && start * 2 > entries.count {
            entries.removeFirst(start)
            start = 0
        }
    }

    /// The entries still inside the window.
    mutating func current(now: ContinuousClock.Instant) -> ArraySlice<Entry> {
        prune(now: now)
        return entries[start...]
    }

    private mutating func prune(now: ContinuousClock.Instant) {
        while start < entries.count && now - entries[start].at > window { start += 1 }
    }
}
