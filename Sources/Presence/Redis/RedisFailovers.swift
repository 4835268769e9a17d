import Synchronization

/// Hash slots whose primary failed over, numbered by generation, so that a writer can tell
/// what Redis may have lost and write it again: a replica promoted after its primary failed may
/// lack the writes the primary acknowledged last (replication is asynchronous).
public final class RedisFailovers: Sendable {
    private struct Log {
        var generation = 0
        /// Slot → the generation of its latest failover.
        var slots: [Int: Int] = [:]
    }

    private let log = Mutex(Log())

    init() {}

    /// The current generation: 0 until a failover is seen.
    public var generation: Int { log.withLock { $0.generation } }

    /// The slots that failed over after `generation`, and the generation to ask from next time.
    public func slots(since generation: Int) -> (generation: Int, slots: Set<Int>) {
        log.withLock { log in
            (log.generation, Set(log.slots.compactMap { $0.value > generation ? $0.key : nil }))
        }
    }

    func record(_ slots: [Int]) {
        log.withLock { log in
            log.generation += 1
            for slot in slots { log.slots[slot] = log.generation }
        }
    }
}
