import Synchronization

/// Hash slots whose primary failed over, numbered by generation, so that a writer can tell
/// what Redis may have lost and write it again: a replica promoted after its primary failed may
/// lack the writes the primary acknowledged last (replication is asynchronous).
public final class RedisFailovers: Sendable {
    private struct Log {
        var generation = 0
        /// Slot → the generation of its latest failover.
        var slots: [Int: Int] = [:]
        var listeners: [Int: AsyncStream<Int>.Continuation] = [:]
        var nextListener = 0
    }

    private let log = Mutex(Log())

    init() {}

    /// The current generation: 0 until a failover is seen.
    public var generation: Int { log.withLock { $0.generation } }

    /// The slots that failed over after `generation`, and the generation to ask from next time.
    public func slots(since generation: Int) -> (generation: Int, slots: Set<Int>) {
        log.withLock { log in
            guard log.generation != generation else { return (generation, []) }
            return (log.generation, Set(log.slots.compactMap { $0.value > generation ? $0.key : nil }))
        }
    }

    /// Each new generation, as it is recorded (the latest only, when a listener lags), until the
    /// listening task ends.
    public func changes() -> AsyncStream<Int> {
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(1))
        let id = log.withLock { log in
            defer { log.nextListener += 1 }
            log.listeners[log.nextListener] = continuation
            return log.nextListener
        }
        continuation.onTermination = { [weak self] _ in self?.log.withLock { _ = $0.listeners.removeValue(forKey: id) } }
        return stream
    }

    func record(_ slots: [Int]) {
        let (generation, listeners) = log.withLock { log in
            log.generation += 1
            for slot in slots { log.slots[slot] = log.generation }
            return (log.generation, Array(log.listeners.values))
        }
        for listener in listeners { listener.yield(generation) }
    }
}
