import Logging
import Presence
import ServiceLifecycle
import Synchronization

/// The fan-out behind `GET /v1/changes`: ONE reader of the change streams per `presence serve`,
/// whatever the number of subscribers. It starts at the newest position, reads every
/// ``ChangeFeedConfiguration/pollInterval`` when nothing was new (at once while pages come back
/// full), and offers each batch to every subscriber's bounded queue (``ChangeSubscription``);
/// every ``ChangeFeedConfiguration/heartbeatInterval`` it asks each for a keep-alive comment.
///
/// It reads through the registry's client, without blocking it (the polling `XRANGE` pipeline of
/// ``PresenceRegistry/recordedChanges(after:count:)``): a blocking `XREAD` would hold the
/// client's one connection for every other request (`docs/changes.md`). Cost: one pipeline per
/// poll interval per server (40 a second by default: 40 `XRANGE`s, or 640 on a 16-stream cluster,
/// microseconds each) plus, per subscriber, only memory; each read's events are encoded once
/// (``ChangeBatch``), not once per subscriber.
///
/// A subscriber that resumes from a position reads its own history first (``subscribe(filter:)``
/// registers it before, so it misses nothing; it drops live changes it has read already).
final class ChangeHub: Service, Sendable {
    /// Counters, for tests and `/metrics`.
    struct Statistics: Sendable, Equatable {
        /// Subscribers now.
        var subscribers = 0
        /// Reads of the streams by the hub (one `XRANGE` pipeline each).
        var reads = 0
        /// Changes read by the hub.
        var changes = 0
        /// Subscribers cut off because their queue overflowed.
        var slowDisconnects = 0
        /// Keep-alive rounds sent.
        var heartbeats = 0
        /// Reads that failed (Redis unreachable or answering errors).
        var readFailures = 0
        /// History replays running, and waiting for their turn (``ReplayGate``).
        var replaysRunning = 0
        var replaysWaiting = 0
    }

    private struct State {
        var subscribers: [Int: ChangeSubscription] = [:]
        var nextID = 0
        /// After the last change offered to subscribers; `nil` until the first read.
        var position: ChangePosition?
        /// Whether the last read succeeded (Redis reachable) and the hub is running.
        var healthy = false
        var stopped = false
        var statistics = Statistics()
    }

    let registry: PresenceRegistry
    let configuration: ChangeFeedConfiguration
    let logger: Logger
    /// Bounds the subscribers' history replays (they read through the registry's connection too).
    let replays: ReplayGate
    private let state = Mutex(State())

    init(registry: PresenceRegistry, configuration: ChangeFeedConfiguration, logger: Logger) {
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
        self.replays = ReplayGate(limit: configuration.concurrentReplays)
    }

    var statistics: Statistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.subscribers = state.subscribers.count
            (statistics.replaysRunning, statistics.replaysWaiting) = replays.counts
            return statistics
        }
    }

    /// A registered subscriber: its id (for ``unsubscribe(_:)``), its queue, and the hub's position
    /// when it joined (`nil` while the hub has not read yet or cannot reach Redis: the subscriber
    /// then starts from a position of its own and reads up to the live feed itself).
    struct Subscribed: Sendable {
        let id: Int
        let subscription: ChangeSubscription
        let livePosition: ChangePosition?
    }

    /// Registers a subscriber: every change the hub reads from now on that passes `filter` is
    /// offered to it. `nil` once the hub stopped (shutting down).
    func subscribe(filter: ChangeFilter) -> Subscribed? {
        state.withLock { state in
            if state.stopped { return nil }
            let subscription = ChangeSubscription(filter: filter, capacity: configuration.subscriberBuffer)
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = subscription
            return Subscribed(id: id, subscription: subscription, livePosition: state.healthy ? state.position : nil)
        }
    }

    /// Where a subscriber that joined while the hub had no live position starts: the hub's own
    /// position if it has one, else `newest` (read by the subscriber just now), which the hub then
    /// starts from too. Reading its history from there, then the live feed, it misses nothing:
    /// the hub's first read can never start after it.
    func adopt(_ newest: ChangePosition) -> ChangePosition {
        state.withLock { state in
            if state.position == nil { state.position = newest }
            return state.position!
        }
    }

    /// Removes a subscriber (its connection ended).
    func unsubscribe(_ id: Int) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: id) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            let clock = ContinuousClock()
            var lastHeartbeat = clock.now
            var position: ChangePosition?
            var failing = false
            while !Task.isCancelled {
                var full = false
                do {
                    if position == nil {
                        // A subscriber may have fixed where the hub starts (``adopt(_:)``) while it
                        // had not read yet: start there, so that nothing after it is missed.
                        let newest = try await registry.newestChangePosition()
                        position = state.withLock { state in
                            if state.position == nil { state.position = newest }
                            return state.position
                        }
                    }
                    let read = try await registry.readChanges(after: position!, count: configuration.livePage)
                    let changes = read.changes
                    // Encoded once here, not once per subscriber.
                    let batch = ChangeBatch(start: position!, changes: changes, end: read.position)
                    position = batch.end
                    full = read.isPartial
                    let slow = state.withLock { state in
                        state.position = position
                        state.healthy = true
                        state.statistics.reads += 1
                        state.statistics.changes += changes.count
                        if changes.isEmpty { return 0 }
                        var slow = 0
                        for (id, subscriber) in state.subscribers where !subscriber.offer(batch) {
                            state.subscribers[id] = nil
                            slow += 1
                        }
                        state.statistics.slowDisconnects += slow
                        return slow
                    }
                    if slow > 0 { logger.warning("cut off slow change subscribers", metadata: ["count": "\(slow)"]) }
                    if failing {
                        failing = false
                        logger.notice("reading the change stream again")
                    }
                } catch {
                    state.withLock { state in
                        state.healthy = false
                        state.statistics.readFailures += 1
                    }
                    // Once per outage, not once per poll.
                    if !failing { logger.warning("reading the change stream failed; retrying every poll interval", metadata: ["error": "\(error)"]) }
                    failing = true
                }
                if clock.now - lastHeartbeat >= configuration.heartbeatInterval {
                    lastHeartbeat = clock.now
                    state.withLock { state in
                        state.statistics.heartbeats += 1
                        for subscriber in state.subscribers.values { subscriber.heartbeat() }
                    }
                }
                if !full {
                    do { try await Task.sleep(for: min(configuration.pollInterval, configuration.heartbeatInterval)) } catch { break }
                }
            }
        }
        let subscribers = state.withLock { state in
            state.stopped = true
            state.healthy = false
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish(.shutdown) }
        replays.close()
    }
}
