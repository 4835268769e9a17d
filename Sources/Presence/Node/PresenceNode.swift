import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What a websocket server embeds: it keeps the node's local truth (its live sockets) and mirrors
/// it into Redis.
///
/// ``connected(socketID:userID:meta:)`` and ``disconnected(socketID:)`` only update memory and
/// return at once; ``run()`` writes what changed in batches (coalesced per socket, one pipeline
/// per batch), heartbeats every ``PresenceConfiguration/heartbeatInterval`` (three commands
/// whatever the socket count) and refreshes socket TTLs a slice at a time. When Redis fails or
/// loses state it repairs only what it can tell is missing: a failed batch is retried after a
/// jittered pause, a count drift reconciles the node's set with its local truth, and a registry
/// that lost the node is rewritten in paced batches after a random delay, so a fleet recovering at
/// once does not flood Redis. While Redis is unreachable nothing is buffered beyond the local truth
/// itself. The decisions live in a pure state machine (`PresenceNodeStateMachine`); this type
/// runs its actions.
///
/// Run it in a `ServiceGroup` after its ``RedisClient``. On graceful shutdown it leaves the
/// registry (all its sockets read dead at once) and removes its keys; on cancellation it stops
/// without a word, as a crash would.
public final class PresenceNode: Service, Sendable {
    /// The node's id, stable across restarts (e.g. the pod name).
    public let nodeID: String
    /// A fresh random id for this process: sockets reported by earlier processes never revive.
    public let incarnation: String
    /// Where other nodes reach this one (`host:port` or a URL); `""` for none.
    public let address: String
    /// When this incarnation started.
    public let startedAt: Date
    /// The node's meta map.
    public let meta: [String: String]
    /// The writer used for Redis.
    public let writer: PresenceWriter
    private let logger: Logger
    private let state: Mutex<State>
    private let gracefulShutdownRequested = Atomic<Bool>(false)

    typealias Machine = PresenceNodeStateMachine<CheckedContinuation<Void, any Error>>

    struct State: ~Copyable {
        var machine: Machine
        var wake: AsyncStream<Void>.Continuation?
        /// A local change has woken the loop, which has not started looking at the state since:
        /// further changes need not wake it again (one wake-up per pass, not per socket).
        var changeWakeQueued = false
        /// The instant a timer child will wake the loop at, if one is scheduled.
        var timer: ContinuousClock.Instant?
        /// The client's failover generation this node has repaired up to.
        var failoverGeneration: Int
        /// On a Redis Cluster: what was disconnected lately, deleted again after a failover.
        var recentDisconnects = RecentDisconnects()

        /// The continuation to wake the loop with after a local change, or nil when a wake-up
        /// is already on its way.
        mutating func wakeForChange() -> AsyncStream<Void>.Continuation? {
            if changeWakeQueued { return nil }
            changeWakeQueued = true
            return wake
        }
    }

    /// Creates a node.
    /// - Parameters:
    ///   - nodeID: the node's stable id (1–256 bytes, printable).
    ///   - address: where other nodes reach it, for routing messages.
    ///   - client: a client created with ``PresenceScripts/all`` and run in the same service group.
    /// - Throws: ``PresenceError`` for a bad id, address, meta or configuration.
    public init(
        nodeID: String, address: String = "", meta: [String: String] = [:],
        client: RedisClient, configuration: PresenceConfiguration = PresenceConfiguration(),
        logger: Logger = Logger(label: "presence.node")
    ) throws {
        try PresenceID.validate(nodeID, field: "nodeId")
        if !address.isEmpty { try PresenceID.validate(address, field: "address") }
        try PresenceMeta.validate(meta)
        try configuration.validate()
        self.nodeID = nodeID
        self.address = address
        self.meta = meta
        self.incarnation = PresenceID.newIncarnation()
        self.startedAt = Date()
        self.writer = PresenceWriter(client: client, configuration: configuration)
        self.state = Mutex(State(machine: Machine(settings: .init(configuration: configuration)), failoverGeneration: client.failovers.generation))
        var logger = logger
        logger[metadataKey: "nodeId"] = "\(nodeID)"
        self.logger = logger
    }

    var configuration: PresenceConfiguration { writer.configuration }

    // MARK: Local truth

    /// Records that this node accepted a socket (or that an existing one changed user or meta).
    /// Returns at once; the write is batched.
    /// - Throws: ``PresenceError`` for a bad id or meta; nothing is recorded then.
    public func connected(socketID: String, userID: String? = nil, meta: [String: String] = [:]) throws {
        let now = Date()
        try SocketEvent.connect(socketID: socketID, userID: userID, meta: meta, connectedAt: now).validate()
        let socket = Machine.LocalSocket(userID: userID, meta: meta, connectedAt: now)
        state.withLock { state in
            state.machine.connected(socketID, socket)
            return state.wakeForChange()
        }?.yield()
    }

    /// Records that a socket of this node is gone. Returns at once; the write is batched and
    /// conditional: if another node holds the socket by now, Redis is left as it is.
    /// - Returns: whether this node held the socket.
    /// - Throws: ``PresenceError`` for a bad id; nothing is recorded then.
    @discardableResult
    public func disconnected(socketID: String) throws -> Bool {
        try PresenceID.validate(socketID, field: "socketId")
        let cluster = writer.client.isCluster
        let (held, wake) = state.withLock { state in
            let userID = cluster ? state.machine.socket(socketID)?.userID : nil
            let held = state.machine.disconnected(socketID)
            if held && cluster { state.recentDisconnects.append(socketID, userID: userID, at: .now) }
            return (held, held ? state.wakeForChange() : nil)
        }
        wake?.yield()
        return held
    }

    /// Sockets this node holds now.
    public var socketCount: Int { state.withLock { $0.machine.socketCount } }

    /// Batches of writes that failed (whole or in part) since the node started; each failure
    /// holds writes back for a pause of 50 ms doubling per consecutive failure, at most one
    /// heartbeat interval, before the failed events go again.
    public var failedBatches: Int { state.withLock { $0.machine.failedBatches } }

    /// Whether this node holds `socketID` now.
    public func holds(socketID: String) -> Bool { state.withLock { $0.machine.socket(socketID) != nil } }

    /// Waits until every change recorded before the call is in Redis (registering first, and
    /// finishing a recovery under way, if needed).
    /// - Throws: the ``RedisError`` of a call that failed meanwhile (the node repairs by itself
    ///   later), or ``PresenceError`` with code ``PresenceError/Code/notRunning`` once ``run()``
    ///   has returned. Before ``run()`` starts, it waits for it.
    public func flush() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let (answer, wake) = state.withLock { state in (state.machine.flush(continuation), state.wake) }
            if answer.resumeNow {
                continuation.resume()
            } else if answer.failNow {
                continuation.resume(throwing: PresenceError(.notRunning, "node \(nodeID) is not running"))
            } else {
                wake?.yield()
            }
        }
    }

    // MARK: Service

    /// Registers, then writes changes, heartbeats and repairs until graceful shutdown (then leaves
    /// the registry) or cancellation (then just stops, like a crash).
    public func run() async throws {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        gracefulShutdownRequested.store(false, ordering: .relaxed)
        state.withLock { state in
            state.wake = wake
            state.changeWakeQueued = false
            state.timer = nil
            state.machine.start()
        }
        wake.yield()
        let interval = configuration.heartbeatInterval
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil {
                        self.state.withLock { $0.machine.heartbeatTick() }
                        wake.yield()
                    }
                }
                if writer.client.isCluster {
                    // A failover is repaired as soon as the client sees it, not at the next heartbeat.
                    let failovers = writer.client.failovers.changes()
                    group.addTask {
                        for await _ in failovers {
                            await self.repairFailovers(rewritingAll: false)
                            wake.yield()
                        }
                    }
                }
                for await _ in wakeups {
                    state.withLock { $0.changeWakeQueued = false }
                    startActions(in: &group, wake: wake)
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.gracefulShutdownRequested.store(true, ordering: .relaxed)
            wake.finish()
        }
        if gracefulShutdownRequested.load(ordering: .relaxed) {
            await leave()
        }
        let waiters = state.withLock { state in
            state.wake = nil
            return state.machine.stop()
        }
        for waiter in waiters { waiter.resume(throwing: PresenceError(.notRunning, "node \(nodeID) stopped")) }
    }

    /// Starts every action the state machine wants now, each in a child task that reports its
    /// outcome and wakes the loop; schedules a wake-up for a paced action that is not due yet.
    private func startActions(in group: inout DiscardingTaskGroup, wake: AsyncStream<Void>.Continuation) {
        while true {
            let next = state.withLock { state -> Machine.Next in
                let next = state.machine.next(now: .now)
                if case .wait(let until?) = next {
                    if let timer = state.timer, timer > .now, timer <= until { return .wait(until: nil) }
                    state.timer = until
                }
                return next
            }
            switch next {
            case .run(let action):
                group.addTask {
                    await self.perform(action)
                    wake.yield()
                }
            case .wait(let until):
                if let until {
                    group.addTask {
                        try? await Task.sleep(until: until)
                        wake.yield()
                    }
                }
                return
            }
        }
    }

    private func perform(_ action: Machine.Action) async {
        switch action {
        case .heartbeat(let socketCount, let userCount):
            await sendHeartbeat(socketCount: socketCount, userCount: userCount)
        case .write(let batch, let events, let written):
            // The record values are built (meta encoded) only if the native path asks for them.
            let outcomes = await writer.apply(nodeID: nodeID, incarnation: incarnation, events: events) {
                written.mapValues {
                    SocketRecord(nodeID: nodeID, incarnation: incarnation, userID: $0.userID, meta: $0.meta, connectedAt: $0.connectedAt).encoded
                }
            }
            var failed = Set<String>()
            var firstError: RedisError?
            for (event, outcome) in zip(events, outcomes) {
                if case .failure(let error) = outcome {
                    failed.insert(event.socketID)
                    firstError = firstError ?? error
                }
            }
            let (fail, recovered) = state.withLock { state in
                state.machine.batchFinished(batch, failed: failed, now: .now, jitter: .random(in: 0..<1))
            }
            if let firstError {
                logger.warning("Redis write failed; retrying that batch after a pause", metadata: [
                    "events": "\(failed.count)", "error": "\(firstError)",
                ])
            }
            settle(failing: fail, with: firstError, recovered: recovered)
        case .refresh(let slice):
            do {
                let missing = try await writer.refresh(nodeID: nodeID, incarnation: incarnation, sockets: slice)
                if !missing.isEmpty {
                    logger.info("socket keys missing from Redis; writing them again", metadata: ["count": "\(missing.count)"])
                }
                settle(failing: state.withLock { $0.machine.refreshFinished(missing: missing) })
            } catch {
                settle(failing: state.withLock { $0.machine.refreshFinished(missing: nil) }, with: error)
            }
        case .listSet:
            do {
                let listed = try await writer.members(nodeID: nodeID)
                let (remove, fail) = state.withLock { $0.machine.reconcile(listed: listed) }
                settle(failing: fail)
                if !remove.isEmpty { await removeExtras(remove) }
            } catch {
                settle(failing: state.withLock { $0.machine.reconcile(listed: nil).fail }, with: error)
            }
        case .remove(let ids):
            await removeExtras(ids)
        }
    }

    private func removeExtras(_ ids: [String]) async {
        do {
            var removed = 0
            for chunk in ids.chunked(configuration.batchSize) {
                removed += try await writer.removeSockets(nodeID: nodeID, incarnation: nil, socketIDs: Array(chunk))
            }
            logger.info("removed sockets the node no longer holds", metadata: ["count": "\(removed)"])
            settle(failing: state.withLock { $0.machine.removed(true) })
        } catch {
            settle(failing: state.withLock { $0.machine.removed(false) }, with: error)
        }
    }

    private func sendHeartbeat(socketCount: Int, userCount: Int) async {
        let heartbeat = NodeHeartbeat(
            nodeID: nodeID, incarnation: incarnation, address: address, startedAt: startedAt,
            socketCount: socketCount, userCount: userCount, meta: meta)
        do {
            let result = try await writer.heartbeat(heartbeat)
            let answer = state.withLock { $0.machine.heartbeatAnswered(result, now: .now, jitter: .random(in: 0..<1)) }
            if answer.resync {
                logger.warning("registry lost this node's state; rewriting it, paced", metadata: ["status": "\(result.status.rawValue)", "sockets": "\(socketCount)"])
            } else if answer.drift {
                logger.warning("registry drifted from the node; reconciling", metadata: [
                    "inRedis": "\(result.indexedSockets)", "local": "\(socketCount)",
                ])
            }
            await repairFailovers(rewritingAll: answer.resync)
            settle(failing: [], recovered: answer.recovered)
        } catch {
            settle(failing: state.withLock { $0.machine.heartbeatFailed(now: .now, jitter: .random(in: 0..<1)) }, with: error)
        }
    }

    /// After a Redis Cluster failover, writes again, paced, the sockets whose keys live in the
    /// slots that failed over (their records, user entries or set members may be missing on the
    /// promoted replica), unless `rewritingAll` (a resync rewrites every socket anyway); and deletes
    /// again, conditionally, the sockets disconnected lately whose keys lived there (a lost deletion
    /// would leave a record alive outside the node's set). The work is computed outside the lock.
    private func repairFailovers(rewritingAll: Bool) async {
        let failovers = writer.client.failovers
        // Claimed under the lock: the heartbeat and the failover listener may both get here.
        let claimed = state.withLock { state -> (Set<Int>, [String: String?], [RecentDisconnects.Entry])? in
            let (generation, slots) = failovers.slots(since: state.failoverGeneration)
            guard generation != state.failoverGeneration else { return nil }
            state.failoverGeneration = generation
            if slots.isEmpty { return nil }
            return (slots, Dictionary(uniqueKeysWithValues: state.machine.allSockets.map { ($0.id, $0.socket.userID) }), Array(state.recentDisconnects.current(now: .now)))
        }
        guard let (slots, local, recent) = claimed else { return }
        let keys = configuration.keys
        func inFailedSlots(_ socketID: String, _ userID: String?) -> Bool {
            slots.contains(RedisKeySlot.slot(keys.socket(socketID))) || userID.map { slots.contains(RedisKeySlot.slot(keys.user($0))) } == true
        }
        var queued = 0
        if !rewritingAll {
            let setLost = slots.contains(RedisKeySlot.slot(keys.nodeSockets(nodeID)))
            let affected = Set(local.compactMap { setLost || inFailedSlots($0.key, $0.value) ? $0.key : nil })
            let wake: AsyncStream<Void>.Continuation?
            (queued, wake) = state.withLock { state in
                (state.machine.writesMayBeLost({ id, _ in affected.contains(id) }, now: .now, jitter: .random(in: 0..<1)), state.wake)
            }
            wake?.yield()  // the rewrite starts now, not after the deletions below
        }
        let gone = Array(Set(recent.compactMap { local[$0.socketID] == nil && inFailedSlots($0.socketID, $0.userID) ? $0.socketID : nil }))
        logger.warning("Redis Cluster failed over; writing again what its new primaries may lack", metadata: [
            "slots": "\(slots.count)", "rewrite": "\(queued)", "deleteAgain": "\(gone.count)",
        ])
        if gone.isEmpty { return }
        do {
            _ = try await writer.removeSockets(nodeID: nodeID, incarnation: incarnation, socketIDs: gone)
            // One that came back meanwhile may have lost its new record to this: write it again.
            let back = Set(gone)
            state.withLock { _ = $0.machine.writesMayBeLost({ id, _ in back.contains(id) }, now: .now, jitter: 0) }
        } catch {
            logger.warning("deleting again what a failover may have restored failed; its keys expire by their TTL", metadata: ["error": "\(error)"])
        }
    }

    /// Fails and resumes flush waiters after an outcome; logs a recovery.
    private func settle(failing: [CheckedContinuation<Void, any Error>], with error: (any Error)? = nil, recovered: Bool = false) {
        if recovered { logger.info("Redis reachable again") }
        let failure = error ?? RedisError(.unavailable, "Redis failed a call of node \(nodeID)")
        for waiter in failing { waiter.resume(throwing: failure) }
        for waiter in state.withLock({ $0.machine.settledWaiters() }) { waiter.resume() }
    }

    /// Leaves the registry and removes this incarnation's keys, best effort, after sending the
    /// changes not yet written once. A connectivity failure (the client backing off right after a
    /// Redis outage, say) is retried, with growing pauses, for up to one node TTL: past that the
    /// entry has expired by itself anyway. A closed client or a cancelled task ends it at once.
    private func leave() async {
        let unwritten = state.withLock { $0.machine.drain() }
        if !unwritten.isEmpty { _ = await writer.apply(nodeID: nodeID, incarnation: incarnation, events: unwritten) }
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.nodeTTL
        var pause = Duration.milliseconds(25)
        while true {
            do {
                _ = try await writer.leave(nodeID: nodeID, incarnation: incarnation)
                let ids = state.withLock { $0.machine.socketIDs }
                for chunk in ids.chunked(configuration.batchSize) {
                    _ = try await writer.removeSockets(nodeID: nodeID, incarnation: incarnation, socketIDs: Array(chunk))
                }
                logger.info("left the registry", metadata: ["sockets": "\(ids.count)"])
                return
            } catch let error as RedisError
                where error.isConnectivity && error.code != .shutdown && !Task.isCancelled && clock.now + pause < deadline {
                logger.debug("leaving: Redis not reachable yet; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(500))
            } catch {
                logger.warning("could not leave the registry cleanly; its entry expires within the node TTL", metadata: ["error": "\(error)"])
                return
            }
        }
    }
}
