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
/// whatever the socket count), refreshes socket TTLs a slice at a time, and rewrites everything
/// (resync) whenever Redis lost or diverged from the node's state. While Redis is unreachable
/// nothing is buffered beyond the local truth itself: the node resyncs once Redis is back.
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
    private let state = Mutex(State())
    private let gracefulShutdownRequested = Atomic<Bool>(false)

    struct LocalSocket: Sendable {
        var userID: String?
        var meta: [String: String]
        var connectedAt: Date
    }

    enum Pending: Sendable {
        case connect(LocalSocket)
        case disconnect(userID: String?)
    }

    struct State: ~Copyable {
        var sockets: [String: LocalSocket] = [:]
        var userSocketCounts: [String: Int] = [:]
        var pending: [String: Pending] = [:]
        var needsResync = true
        var heartbeatDue = false
        var redisHealthy = true
        var flushWaiters: [CheckedContinuation<Void, any Error>] = []
        var wake: AsyncStream<Void>.Continuation?
        var refreshQueue: [String] = []
        /// Sockets to refresh per heartbeat: the refresh queue's length when it was built, spread
        /// over one socketTTL.
        var refreshPerHeartbeat = 0
        /// Set when `run()` returns: later flushes fail instead of waiting for a run that never comes.
        var stopped = false

        mutating func add(_ socketID: String, _ socket: LocalSocket) {
            if let previous = sockets.updateValue(socket, forKey: socketID) { release(previous.userID) }
            if let userID = socket.userID { userSocketCounts[userID, default: 0] += 1 }
        }

        mutating func remove(_ socketID: String) -> LocalSocket? {
            guard let previous = sockets.removeValue(forKey: socketID) else { return nil }
            release(previous.userID)
            return previous
        }

        private mutating func release(_ userID: String?) {
            guard let userID else { return }
            let left = (userSocketCounts[userID] ?? 1) - 1
            userSocketCounts[userID] = left > 0 ? left : nil
        }

        /// Records a change for the writer; returns whether the writer must be woken.
        mutating func enqueue(_ socketID: String, _ change: Pending) -> AsyncStream<Void>.Continuation? {
            if needsResync { return nil }  // the coming resync writes the whole local truth
            let wasEmpty = pending.isEmpty
            pending[socketID] = change
            return wasEmpty ? wake : nil
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
        let event = SocketEvent.connect(socketID: socketID, userID: userID, meta: meta, connectedAt: Date())
        try event.validate()
        let socket = LocalSocket(userID: userID, meta: meta, connectedAt: Date())
        state.withLock { state in
            state.add(socketID, socket)
            return state.enqueue(socketID, .connect(socket))
        }?.yield()
    }

    /// Records that a socket of this node is gone. Returns at once; the write is batched and
    /// conditional: if another node holds the socket by now, Redis is left as it is.
    /// - Returns: whether this node held the socket.
    /// - Throws: ``PresenceError`` for a bad id; nothing is recorded then.
    @discardableResult
    public func disconnected(socketID: String) throws -> Bool {
        try PresenceID.validate(socketID, field: "socketId")
        let (held, wake) = state.withLock { state -> (Bool, AsyncStream<Void>.Continuation?) in
            guard let previous = state.remove(socketID) else { return (false, nil) }
            return (true, state.enqueue(socketID, .disconnect(userID: previous.userID)))
        }
        wake?.yield()
        return held
    }

    /// Sockets this node holds now.
    public var socketCount: Int { state.withLock { $0.sockets.count } }

    /// Whether this node holds `socketID` now.
    public func holds(socketID: String) -> Bool { state.withLock { $0.sockets[socketID] != nil } }

    /// Waits until every change recorded before the call is in Redis (registering first if needed).
    /// - Throws: the ``RedisError`` that stopped the write (the node resyncs later by itself), or
    ///   ``PresenceError`` with code ``PresenceError/Code/notRunning`` once ``run()`` has returned.
    ///   Before ``run()`` starts, it waits for it.
    public func flush() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let (wake, stopped) = state.withLock { state in
                if !state.stopped { state.flushWaiters.append(continuation) }
                return (state.wake, state.stopped)
            }
            if stopped {
                continuation.resume(throwing: PresenceError(.notRunning, "node \(nodeID) has stopped"))
            } else {
                wake?.yield()
            }
        }
    }

    // MARK: Service

    /// Registers, then writes changes, heartbeats and resyncs until graceful shutdown (then leaves
    /// the registry) or cancellation (then just stops, like a crash).
    public func run() async throws {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        gracefulShutdownRequested.store(false, ordering: .relaxed)
        state.withLock { state in
            state.wake = wake
            state.stopped = false
            state.needsResync = true
            state.pending = [:]
        }
        wake.yield()
        let interval = configuration.heartbeatInterval
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil {
                        self.state.withLock { $0.heartbeatDue = true }
                        wake.yield()
                    }
                }
                for await _ in wakeups { await cycle() }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.gracefulShutdownRequested.store(true, ordering: .relaxed)
            wake.finish()
        }
        if gracefulShutdownRequested.load(ordering: .relaxed) {
            await cycle()
            await leave()
        }
        let waiters = state.withLock { state in
            state.wake = nil
            state.stopped = true
            defer { state.flushWaiters = [] }
            return state.flushWaiters
        }
        for waiter in waiters { waiter.resume(throwing: PresenceError(.notRunning, "node \(nodeID) stopped")) }
    }

    /// One pass of the writer: resync or write pending changes, then heartbeat when due.
    private func cycle() async {
        let (resync, snapshot, pending, waiters, heartbeatDue) = state.withLock { state in
            let resync = state.needsResync
            state.needsResync = false
            let snapshot = resync ? state.sockets : [:]
            if resync { state.pending = [:] }
            defer {
                state.pending = [:]
                state.flushWaiters = []
                state.heartbeatDue = false
            }
            return (resync, snapshot, state.pending, state.flushWaiters, state.heartbeatDue)
        }
        do {
            if resync {
                try await self.resync(snapshot)
            } else if !pending.isEmpty {
                try await write(pending)
            }
            if heartbeatDue && !resync { try await heartbeat() }
            let recovered = state.withLock { state in
                defer { state.redisHealthy = true }
                return !state.redisHealthy
            }
            if recovered { logger.info("Redis reachable again; node state restored") }
            for waiter in waiters { waiter.resume() }
        } catch {
            let first = state.withLock { state in
                state.needsResync = true
                state.pending = [:]
                defer { state.redisHealthy = false }
                return state.redisHealthy
            }
            if first {
                logger.warning("Redis write failed; serving local sockets and resyncing when Redis is back", metadata: ["error": "\(error)"])
            }
            for waiter in waiters { waiter.resume(throwing: error) }
        }
    }

    private func write(_ pending: [String: Pending]) async throws {
        let events = pending.map { socketID, change -> SocketEvent in
            switch change {
            case .connect(let socket): return .connect(socketID: socketID, userID: socket.userID, meta: socket.meta, connectedAt: socket.connectedAt)
            case .disconnect(let userID): return .disconnect(socketID: socketID, userID: userID)
            }
        }
        try await apply(events)
    }

    /// Applies events in batches, two batches in flight so that building the next one overlaps
    /// Redis executing the previous one. Batches hold distinct sockets, so their order is free.
    /// A heartbeat that falls due meanwhile is sent between batches, so that a long resync never
    /// lets the node expire.
    private func apply(_ events: [SocketEvent]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for chunk in events.chunked(configuration.batchSize) {
                if inFlight == 2 {
                    try await group.next()
                    inFlight -= 1
                }
                if state.withLock({ state in defer { state.heartbeatDue = false }; return state.heartbeatDue }) {
                    _ = try await writer.heartbeat(currentHeartbeat().0)
                }
                group.addTask {
                    for outcome in await self.writer.apply(nodeID: self.nodeID, incarnation: self.incarnation, events: Array(chunk)) {
                        _ = try outcome.get()
                    }
                }
                inFlight += 1
            }
            try await group.waitForAll()
        }
    }

    private func currentHeartbeat() -> (NodeHeartbeat, pendingEmpty: Bool) {
        let (sockets, users, pendingEmpty) = state.withLock { ($0.sockets.count, $0.userSocketCounts.count, $0.pending.isEmpty) }
        let heartbeat = NodeHeartbeat(
            nodeID: nodeID, incarnation: incarnation, address: address, startedAt: startedAt,
            socketCount: sockets, userCount: users, meta: meta)
        return (heartbeat, pendingEmpty)
    }

    private func heartbeat() async throws {
        let (heartbeat, pendingEmpty) = currentHeartbeat()
        let result = try await writer.heartbeat(heartbeat)
        if result.needsResync {
            logger.warning("registry lost this node's state; resyncing", metadata: ["status": "\(result.status.rawValue)"])
            requestResync()
            return
        }
        if pendingEmpty, result.indexedSockets != heartbeat.socketCount ?? 0 {
            logger.warning("registry drifted from the node; resyncing", metadata: [
                "inRedis": "\(result.indexedSockets)", "local": "\(heartbeat.socketCount ?? 0)",
            ])
            requestResync()
            return
        }
        try await refreshSlice()
    }

    private func requestResync() {
        state.withLock { state in
            state.needsResync = true
            state.pending = [:]
            return state.wake
        }?.yield()
    }

    /// Refreshes the TTL of the next slice of sockets so that each is refreshed once per
    /// ``PresenceConfiguration/socketTTL``; sockets found missing are written again.
    private func refreshSlice() async throws {
        let share = Double(configuration.heartbeatInterval.milliseconds) / Double(configuration.socketTTL.milliseconds)
        let slice = state.withLock { state -> [(socketID: String, userID: String?)] in
            if state.sockets.isEmpty { return [] }
            if state.refreshQueue.isEmpty {
                state.refreshQueue = Array(state.sockets.keys)
                state.refreshPerHeartbeat = Int((Double(state.refreshQueue.count) * share).rounded(.up))
            }
            var slice: [(socketID: String, userID: String?)] = []
            while slice.count < state.refreshPerHeartbeat, let id = state.refreshQueue.popLast() {
                if let socket = state.sockets[id] { slice.append((id, socket.userID)) }  // gone ids cost nothing
            }
            return slice
        }
        let missing = try await writer.refresh(nodeID: nodeID, incarnation: incarnation, sockets: slice)
        if missing.isEmpty { return }
        logger.info("socket keys missing from Redis; writing them again", metadata: ["count": "\(missing.count)"])
        state.withLock { state in
            var wake: AsyncStream<Void>.Continuation?
            for id in missing {
                if let socket = state.sockets[id] { wake = state.enqueue(id, .connect(socket)) ?? wake }
            }
            return wake
        }?.yield()
    }

    /// Registers and writes the whole local truth, then removes whatever else Redis lists for
    /// this node (earlier incarnations' sockets, disconnects missed while Redis was away).
    private func resync(_ snapshot: [String: LocalSocket]) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await writer.heartbeat(currentHeartbeat().0)
        let events = snapshot.map { id, socket in
            SocketEvent.connect(socketID: id, userID: socket.userID, meta: socket.meta, connectedAt: socket.connectedAt)
        }
        try await apply(events)
        let pruned = try await writer.prune(nodeID: nodeID) { id in self.holds(socketID: id) }
        logger.info("registered and resynced", metadata: [
            "status": "\(result.status.rawValue)", "sockets": "\(snapshot.count)", "pruned": "\(pruned)",
            "duration": "\(clock.now - start)",
        ])
    }

    /// Leaves the registry and removes this incarnation's keys, best effort. A connectivity failure
    /// (the client backing off right after a Redis outage, say) is retried, with growing pauses,
    /// for up to one node TTL: past that the entry has expired by itself anyway. A closed client or
    /// a cancelled task ends it at once.
    private func leave() async {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.nodeTTL
        var pause = Duration.milliseconds(25)
        while true {
            do {
                _ = try await writer.leave(nodeID: nodeID, incarnation: incarnation)
                let ids = state.withLock { Array($0.sockets.keys) }
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
