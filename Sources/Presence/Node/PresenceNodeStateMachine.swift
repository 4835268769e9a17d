import Foundation

/// Every decision of a ``PresenceNode``, as a value: fed what happened (a socket change, a
/// heartbeat answer, a batch outcome, an error, a tick of the clock), it answers what to send
/// next. It does no I/O and reads no clock: the node's thin shell runs the actions it returns and
/// reports their outcomes back, and unit tests drive it without Redis or timers.
///
/// What it keeps:
/// - the node's local truth (its live sockets) and, per socket, the change not yet written
///   (`pending`, coalesced: only the socket's latest state matters);
/// - batches in flight (a socket is in at most one, so batches never race);
/// - a **rewrite** queue, for recovery: socket ids whose records Redis may have lost, written again
///   from the local truth in paced batches, then a **reconcile** (the node's set listed and
///   compared with the local truth: members the node no longer holds are removed, sockets
///   missing from it are written again).
///
/// How it recovers:
/// - a failed batch puts back only its failed events (unless a newer change superseded them) and
///   holds writes back for a growing, jittered pause: nothing else is rewritten;
/// - a heartbeat answering `ok` with a socket count that differs from the local count (taken when
///   nothing was being written) starts a reconcile: only what differs is written;
/// - a heartbeat answering `new`, `revived` or `replaced` (Redis lost or dropped this incarnation)
///   rewrites every socket after a random delay of up to a quarter interval, spread over half an
///   interval, one batch in flight, starting small and growing while Redis answers within a latency
///   target (shrinking and pausing when it does not), so a fleet coming back at once neither floods
///   Redis nor takes much more than an interval after it heard the news.
/// Every heartbeat answer is handled; none is dropped.
struct PresenceNodeStateMachine<Waiter> {
    typealias Instant = ContinuousClock.Instant

    /// A socket this node holds.
    struct LocalSocket: Sendable, Hashable {
        var userID: String?
        var meta: [String: String]
        var connectedAt: Date
    }

    /// What the node must send. Each action's outcome goes back through the matching method.
    enum Action {
        /// Send a heartbeat with these counts; answer with ``heartbeatAnswered(_:now:jitter:)`` or ``heartbeatFailed(now:jitter:)``.
        case heartbeat(socketCount: Int, userCount: Int)
        /// Apply these events; answer with ``batchFinished(_:failed:error:now:)``. `written`: for
        /// the disconnects it can name, the socket as the node last wrote it (so that its record
        /// can be deleted by value).
        case write(batch: Int, events: [SocketEvent], written: [String: LocalSocket])
        /// Refresh the TTLs of these sockets; answer with ``refreshFinished(missing:)`` (or `nil` on error).
        case refresh([(socketID: String, userID: String?)])
        /// List the node's socket set; answer with ``reconcile(listed:now:)`` (or `nil` on error).
        case listSet
        /// Remove these sockets, which the node no longer holds, from Redis (conditional deletes);
        /// answer with ``removed(_:)``.
        case remove([String])
    }

    /// What the shell does next.
    enum Next {
        /// Start this action (then ask again).
        case run(Action)
        /// Nothing to start now; ask again when woken, or at this instant if given.
        case wait(until: Instant?)
    }

    struct Settings {
        var heartbeatInterval: Duration
        var batchSize: Int
        /// Sockets whose TTL the amortized refresh renews per heartbeat, as a share of all.
        var refreshShare: Double
        /// Batches of changes in flight at once: while Redis runs one, the next is written behind
        /// it and a third is built or its outcome read (PresenceBench core on Valkey 9.1: 175,000
        /// events/s with two, 205,000 with three, no more with four).
        var changeBatchesInFlight = 3
        /// Rewrite batches in flight at once: one, so a recovering node is paced by Redis itself.
        var rewriteBatchesInFlight = 1
        /// A rewrite's batches are at most this large, so that one never holds Redis for long.
        var rewriteBatchSize = 256
        /// A rewrite's first batch: a fleet that learns of a restart at once starts small, and each
        /// node doubles its batch after one answered within the latency target (halves it after
        /// one that was not), up to ``rewriteBatchSize``.
        var rewriteInitialBatchSize = 16
        /// A rewrite batch answered slower than this means Redis has a queue: the node pauses in
        /// proportion before its next one (see ``congestionPause(roundTrip:)``). A two-hundredth
        /// of the heartbeat interval (10 ms at 2 s), within 5–100 ms: measured at 1 M sockets, it
        /// halved a lookup's p99 during recovery against a fortieth, for about 15 % more time.
        var rewriteLatencyTarget: Duration

        init(configuration: PresenceConfiguration) {
            heartbeatInterval = configuration.heartbeatInterval
            batchSize = configuration.batchSize
            refreshShare = Double(configuration.heartbeatInterval.milliseconds) / Double(configuration.socketTTL.milliseconds)
            rewriteLatencyTarget = min(.milliseconds(100), max(.milliseconds(5), configuration.heartbeatInterval / 200))
        }
    }

    private enum Change: Hashable {
        case connect
        /// `last`: the socket as the node last wrote it, when known.
        case disconnect(userID: String?, last: LocalSocket?)
    }

    private struct Batch {
        var events: [SocketEvent]
        /// Where each event's socket lives in ``sockets``.
        var slots: [Int]
        var rewrite: Bool
        /// The oldest change it carries (`Int.max` for a rewrite, which carries none).
        var lowestSequence: Int
        var startedAt: Instant?
    }

    private struct HeartbeatContext {
        /// The local socket count when it was sent, if nothing was being written then.
        var quiescentCount: Int?
    }

    private struct FlushWaiter {
        var waiter: Waiter
        var sequence: Int
    }

    let settings: Settings

    // Local truth, and the changes not yet written.
    private var sockets = LocalSockets<LocalSocket, Change>()
    private(set) var userSocketCounts: [String: Int] = [:]
    private var sequence = 0
    private var batches: [Int: Batch] = [:]
    private var nextBatch = 0

    // Recovery.
    private var rewriteQueue: [String] = []
    private var rewriteNotBefore: Instant?
    /// The paced rewrite's current batch size, and how many sockets it had to write in all.
    private var rewriteLimit = 0
    private var rewriteTotal = 0
    /// Recovery rewrites are paced (small batches, one in flight, spread out); the first
    /// registration's is not.
    private var rewritePaced = false
    private var reconcileWanted = false
    private var reconciling = false
    private var removing = false

    // Heartbeat, refresh, failures.
    private var heartbeatDue = false
    private var heartbeatInFlight: HeartbeatContext?
    private var refreshDue = false
    private var refreshing = false
    private var refreshQueue: [String] = []
    private var refreshPerHeartbeat = 0
    private var writesBlockedUntil: Instant?
    private var heartbeatRetryAt: Instant?
    private var consecutiveFailures = 0
    /// Batches that failed (whole or in part) since the start, each written again after a pause.
    private(set) var failedBatches = 0
    private var registered = false
    /// Whether Redis answered the last call (false from a failure until the next success).
    private(set) var healthy = true
    private var flushWaiters: [FlushWaiter] = []
    private(set) var running = false
    /// Set when `run()` returns: later flushes fail instead of waiting for a run that never comes.
    private var stopped = false

    init(settings: Settings) {
        self.settings = settings
    }

    // MARK: Local truth

    /// The node accepted a socket (or it changed user or meta).
    mutating func connected(_ socketID: String, _ socket: LocalSocket) {
        sequence += 1
        if let previous = sockets.update(socketID, socket: socket, change: .connect, sequence: sequence) { release(previous.userID) }
        if let userID = socket.userID { userSocketCounts[userID, default: 0] += 1 }
    }

    /// A socket of the node is gone. Returns whether the node held it.
    mutating func disconnected(_ socketID: String) -> Bool {
        guard let slot = sockets.slot(socketID), let previous = sockets[slot: slot].socket else { return false }
        sequence += 1
        sockets.update(slot: slot, socket: nil, change: .disconnect(userID: previous.userID, last: previous), sequence: sequence)
        release(previous.userID)
        return true
    }

    /// The socket `socketID` names, if the node holds it.
    func socket(_ socketID: String) -> LocalSocket? { sockets[socketID] }

    /// How many sockets the node holds.
    var socketCount: Int { sockets.count }

    /// The ids of the sockets the node holds, in no order.
    var socketIDs: [String] { sockets.ids }

    /// Every socket the node holds with its id, in no order.
    var allSockets: [(id: String, socket: LocalSocket)] { sockets.held.map { ($0.id, $0.socket!) } }

    private mutating func release(_ userID: String?) {
        guard let userID else { return }
        let left = (userSocketCounts[userID] ?? 1) - 1
        userSocketCounts[userID] = left > 0 ? left : nil
    }

    private mutating func record(_ slot: Int, _ change: Change) {
        sequence += 1
        sockets.record(slot, change, sequence: sequence)
    }

    // MARK: Lifecycle

    /// `run()` starts: register, write every local socket (no pacing: nothing else is recovering
    /// because of this node), then reconcile, which removes what earlier incarnations left.
    mutating func start() {
        running = true
        stopped = false
        sockets.forgetChanges()
        batches = [:]
        heartbeatInFlight = nil
        refreshing = false
        reconciling = false
        removing = false
        writesBlockedUntil = nil
        heartbeatRetryAt = nil
        consecutiveFailures = 0
        registered = false
        healthy = true
        heartbeatDue = true
        beginRewrite(now: nil, jitter: .zero)
    }

    /// `run()` returned: waiters fail from now on. Returns those still waiting.
    mutating func stop() -> [Waiter] {
        running = false
        stopped = true
        defer { flushWaiters = [] }
        return flushWaiters.map(\.waiter)
    }

    /// For a graceful shutdown: the changes not yet written, to be sent once before leaving.
    mutating func drain() -> [SocketEvent] {
        sockets.takeAll().map(event(for:))
    }

    /// The heartbeat interval passed.
    mutating func heartbeatTick() {
        heartbeatDue = true
    }

    // MARK: Next action

    /// What to start now. Heartbeats first, then changes, then the paced rewrite, then reconcile
    /// and refresh.
    mutating func next(now: Instant) -> Next {
        if let retry = heartbeatRetryAt, now >= retry {
            heartbeatRetryAt = nil
            heartbeatDue = true
        }
        if heartbeatDue && heartbeatInFlight == nil {
            heartbeatDue = false
            heartbeatInFlight = HeartbeatContext(quiescentCount: isQuiescent ? sockets.count : nil)
            return .run(.heartbeat(socketCount: sockets.count, userCount: userSocketCounts.count))
        }
        var wakeAt: Instant? = heartbeatRetryAt
        if let blocked = writesBlockedUntil, now < blocked {
            wakeAt = min(blocked, wakeAt ?? blocked)
        } else if registered {
            writesBlockedUntil = nil
            if let action = nextChangeBatch() { return .run(action) }
            switch nextRewriteBatch(now: now) {
            case .run(let action): return .run(action)
            case .wait(let until): wakeAt = [wakeAt, until].compactMap { $0 }.min()
            }
            if reconcileWanted && rewriteQueue.isEmpty && !batches.values.contains(where: \.rewrite) && !reconciling && !removing {
                reconcileWanted = false
                reconciling = true
                return .run(.listSet)
            }
            if refreshDue && !refreshing, let slice = nextRefreshSlice() {
                refreshDue = false
                refreshing = true
                return .run(.refresh(slice))
            }
            refreshDue = false
        }
        return .wait(until: wakeAt)
    }

    private var isQuiescent: Bool {
        !sockets.hasPending && batches.isEmpty && rewriteQueue.isEmpty && !reconcileWanted && !reconciling && !removing
    }

    private mutating func nextChangeBatch() -> Action? {
        if !sockets.hasPending { return nil }
        if batches.values.count(where: { !$0.rewrite }) >= settings.changeBatchesInFlight { return nil }
        // No lookup: this runs for every event.
        let taken = sockets.take(upTo: settings.batchSize)
        if taken.isEmpty { return nil }
        var events: [SocketEvent] = []
        events.reserveCapacity(taken.count)
        var lowest = Int.max
        var written: [String: LocalSocket] = [:]
        for (_, entry) in taken {
            lowest = min(lowest, entry.sequence)
            let event = event(for: entry)
            if case .disconnect = event, case .disconnect(_, let last?) = entry.change { written[entry.id] = last }
            events.append(event)
        }
        return launch(events, slots: taken.map(\.slot), rewrite: false, lowestSequence: lowest, written: written)
    }

    private mutating func nextRewriteBatch(now: Instant) -> Next {
        if rewriteQueue.isEmpty { return .wait(until: nil) }
        let (size, inFlight) = rewritePaced
            ? (rewriteLimit, settings.rewriteBatchesInFlight) : (settings.batchSize, settings.changeBatchesInFlight)
        if batches.values.count(where: \.rewrite) >= inFlight { return .wait(until: nil) }
        if let notBefore = rewriteNotBefore, now < notBefore { return .wait(until: notBefore) }
        var events: [SocketEvent] = []
        var slots: [Int] = []
        while events.count < size, let id = rewriteQueue.popLast() {
            // A pending change writes it anyway; a batch in flight is writing it; a gone socket
            // had its disconnect recorded.
            guard let slot = sockets.slot(id) else { continue }
            let entry = sockets[slot: slot]
            guard entry.change == nil, !entry.inFlight, entry.socket != nil else { continue }
            events.append(event(for: entry))
            slots.append(slot)
        }
        // Each batch takes its share of half an interval: the whole set is spread over it.
        rewriteNotBefore = rewriteNotBefore.map { max($0, now) + settings.heartbeatInterval / 2 * (Double(events.count) / Double(max(rewriteTotal, 1))) }
        if events.isEmpty { return .wait(until: nil) }
        return .run(launch(events, slots: slots, rewrite: true, lowestSequence: .max, at: now))
    }

    private mutating func launch(
        _ events: [SocketEvent], slots: [Int], rewrite: Bool, lowestSequence: Int, at now: Instant? = nil, written: [String: LocalSocket] = [:]
    ) -> Action {
        let id = nextBatch
        nextBatch += 1
        batches[id] = Batch(events: events, slots: slots, rewrite: rewrite, lowestSequence: lowestSequence, startedAt: now)
        // A change batch took its sockets' changes, which marked them in flight.
        if rewrite { for slot in slots { sockets.markInFlight(slot) } }
        return .write(batch: id, events: events, written: written)
    }

    /// The event that brings Redis to the local truth for a socket, as its slot holds it.
    private func event(for entry: LocalSockets<LocalSocket, Change>.Entry) -> SocketEvent {
        if let socket = entry.socket {
            return .connect(socketID: entry.id, userID: socket.userID, meta: socket.meta, connectedAt: socket.connectedAt)
        }
        if case .disconnect(let userID, _)? = entry.change {
            return .disconnect(socketID: entry.id, userID: userID)
        }
        return .disconnect(socketID: entry.id, userID: nil)
    }

    private mutating func nextRefreshSlice() -> [(socketID: String, userID: String?)]? {
        if sockets.isEmpty { return nil }
        if refreshQueue.isEmpty {
            refreshQueue = sockets.ids
            refreshPerHeartbeat = Int((Double(refreshQueue.count) * settings.refreshShare).rounded(.up))
        }
        var slice: [(socketID: String, userID: String?)] = []
        while slice.count < refreshPerHeartbeat, let id = refreshQueue.popLast() {
            if let socket = sockets[id] { slice.append((id, socket.userID)) }  // gone ids cost nothing
        }
        return slice.isEmpty ? nil : slice
    }

    // MARK: Outcomes

    /// A heartbeat answered; `jitter` is a random number in 0..<1 that spreads a fleet's rewrites.
    /// Returns whether Redis had been failing until now, and whether a rewrite or a reconcile started.
    @discardableResult
    mutating func heartbeatAnswered(_ result: HeartbeatResult, now: Instant, jitter: Double) -> (recovered: Bool, resync: Bool, drift: Bool) {
        let context = heartbeatInFlight
        heartbeatInFlight = nil
        let recovered = succeeded()
        let wasRegistered = registered
        registered = true
        if result.needsResync {
            // Redis lost (or gave away) this incarnation: everything again, paced, unless this is
            // the first registration of the run, which writes everything unpaced anyway.
            if wasRegistered {
                beginRewrite(now: now, jitter: settings.heartbeatInterval / 4 * jitter)
            }
            return (recovered, wasRegistered, false)
        }
        // The set's size was read right after the heartbeat, before anything sent later: it must
        // equal the local count of that moment, if nothing was being written then.
        if let count = context?.quiescentCount, result.indexedSockets != count {
            reconcileWanted = true
            return (recovered, false, true)
        }
        refreshDue = true
        return (recovered, false, false)
    }

    /// Part of Redis failed over (a Redis Cluster shard's replica took over) and may have lost
    /// the last writes it acknowledged: the sockets `affected` selects are written again, paced
    /// like any recovery rewrite (after up to a quarter interval, `jitter` in 0..<1), then the set
    /// is reconciled. Returns how many were queued.
    @discardableResult
    mutating func writesMayBeLost(_ affected: (String, LocalSocket) -> Bool, now: Instant, jitter: Double) -> Int {
        let ids = sockets.held.compactMap { affected($0.id, $0.socket!) ? $0.id : nil }
        if ids.isEmpty { return 0 }
        let queued = Set(rewriteQueue)
        let fresh = ids.filter { !queued.contains($0) }
        if rewriteQueue.isEmpty {
            rewritePaced = true
            rewriteTotal = 0
            rewriteLimit = settings.rewriteInitialBatchSize
            rewriteNotBefore = now + settings.heartbeatInterval / 4 * jitter
        }
        rewriteQueue += fresh
        rewriteTotal += fresh.count
        reconcileWanted = true
        return fresh.count
    }

    /// A heartbeat failed (Redis unreachable, say): another goes after a short, growing, jittered
    /// pause (`jitter` in 0..<1), not a whole interval later, so that a Redis back from a restart
    /// is noticed, and repaired, within about a reconnect.
    /// - Returns: flush waiters to fail.
    mutating func heartbeatFailed(now: Instant, jitter: Double) -> [Waiter] {
        heartbeatInFlight = nil
        consecutiveFailures += 1
        heartbeatRetryAt = now + failurePause(jitter: jitter)
        return failAll()
    }

    /// 50 ms doubling per consecutive failure up to the heartbeat interval, times 0.5–1.
    private func failurePause(jitter: Double) -> Duration {
        min(settings.heartbeatInterval, .milliseconds(50) * (1 << min(max(consecutiveFailures, 1) - 1, 10))) * (0.5 + 0.5 * jitter)
    }

    /// A batch finished. `failed` holds the ids whose events failed (all of them when the whole
    /// batch did). Those, and only those, are written again after a pause, unless a newer change
    /// superseded them.
    /// `jitter` is a random number in 0..<1 that spreads the pause.
    /// - Returns: flush waiters to fail, and whether Redis had been failing until now.
    mutating func batchFinished(_ batch: Int, failed: Set<String>, now: Instant, jitter: Double) -> (fail: [Waiter], recovered: Bool) {
        guard let finished = batches.removeValue(forKey: batch) else { return ([], false) }
        sockets.finished(finished.slots)
        if finished.rewrite, rewritePaced, let startedAt = finished.startedAt {
            let pause = congestionPause(roundTrip: now - startedAt)
            if pause > .zero {
                rewriteNotBefore = max(rewriteNotBefore ?? now, now + pause)
                rewriteLimit = max(settings.rewriteInitialBatchSize, rewriteLimit / 2)
            } else {
                rewriteLimit = min(settings.rewriteBatchSize, rewriteLimit * 2)
            }
        }
        if failed.isEmpty {
            return ([], succeeded())
        }
        for event in finished.events where failed.contains(event.socketID) {
            let id = event.socketID
            guard let slot = sockets.slot(id) else {
                // Gone and forgotten: a disconnect that failed is put back.
                if case .disconnect(_, let userID) = event, !finished.rewrite {
                    sequence += 1
                    sockets.update(id, socket: nil, change: .disconnect(userID: userID, last: nil), sequence: sequence)
                }
                continue
            }
            let entry = sockets[slot: slot]
            if finished.rewrite {
                if entry.socket != nil { rewriteQueue.append(id) }
            } else if entry.change == nil {
                switch event {
                case .connect: if entry.socket != nil { record(slot, .connect) }
                case .disconnect(_, let userID): if entry.socket == nil { record(slot, .disconnect(userID: userID, last: nil)) }
                }
            }
        }
        consecutiveFailures += 1
        failedBatches += 1
        writesBlockedUntil = now + failurePause(jitter: jitter)
        return (failAll(), false)
    }

    /// Redis failed a call: it is unhealthy, and every flush waiter fails (its changes cannot be
    /// confirmed now; the node keeps trying by itself).
    private mutating func failAll() -> [Waiter] {
        healthy = false
        defer { flushWaiters = [] }
        return flushWaiters.map(\.waiter)
    }

    /// The refresh finished: sockets whose key was missing are written again. `nil`: it failed.
    /// - Returns: flush waiters to fail.
    mutating func refreshFinished(missing: [String]?) -> [Waiter] {
        refreshing = false
        guard let missing else { return failAll() }
        for id in missing {
            guard let slot = sockets.slot(id) else { continue }
            let entry = sockets[slot: slot]
            if entry.socket != nil && entry.change == nil && !entry.inFlight { record(slot, .connect) }
        }
        return []
    }

    /// The node's set was listed (`nil`: the listing failed; it is tried again after the next
    /// heartbeat). Sockets missing from it are rewritten; members the node no longer holds (and
    /// has no change pending for) are returned as a ``Action/remove(_:)`` to run.
    mutating func reconcile(listed: Set<String>?) -> (remove: [String], fail: [Waiter]) {
        reconciling = false
        guard let listed else {
            reconcileWanted = true
            return ([], failAll())
        }
        let missing = sockets.held.compactMap { !listed.contains($0.id) && $0.change == nil && !$0.inFlight ? $0.id : nil }
        if !missing.isEmpty {
            rewriteQueue.append(contentsOf: missing)
            rewriteNotBefore = nil
        }
        let extra = listed.filter { id in sockets.slot(id).map { sockets[slot: $0].isIdle } ?? true }
        removing = !extra.isEmpty
        return (Array(extra), [])
    }

    /// The extras of a reconcile were removed (`false`: it failed, and reconciles again).
    /// - Returns: flush waiters to fail.
    mutating func removed(_ succeeded: Bool) -> [Waiter] {
        removing = false
        if succeeded { return [] }
        reconcileWanted = true
        return failAll()
    }

    // MARK: Flush

    /// Someone waits until every change recorded so far is in Redis: resume it now when that
    /// already holds, fail it now when `run()` has returned; otherwise it waits (for `run()` too).
    mutating func flush(_ waiter: Waiter) -> (resumeNow: Bool, failNow: Bool) {
        if stopped { return (false, true) }
        flushWaiters.append(FlushWaiter(waiter: waiter, sequence: sequence))
        if running && registered && isQuiescent {
            flushWaiters.removeLast()
            return (true, false)
        }
        return (false, false)
    }

    /// Waiters whose changes are all in Redis now (none while a recovery is under way): the shell
    /// asks after every outcome.
    mutating func settledWaiters() -> [Waiter] {
        if flushWaiters.isEmpty || !registered || !rewriteQueue.isEmpty || reconcileWanted || reconciling || removing { return [] }
        if batches.values.contains(where: \.rewrite) { return [] }
        // The oldest change not yet written: of the batches in flight, or of the changes that can
        // be taken (one waiting for its socket's batch is newer than that batch's). A waiter waits
        // for every change older than it; once one is found that is not newer than every waiter,
        // none can go, and the scan stops: a long queue is not scanned after each batch.
        let earliestWaiter = flushWaiters.reduce(Int.max) { min($0, $1.sequence) }
        var oldest = Int.max
        for batch in batches.values { oldest = min(oldest, batch.lowestSequence) }
        if oldest <= earliestWaiter { return [] }
        for sequence in sockets.sequences where sequence < oldest {
            oldest = sequence
            if oldest <= earliestWaiter { return [] }
        }
        var ready: [Waiter] = []
        flushWaiters.removeAll { entry in
            guard entry.sequence < oldest else { return false }
            ready.append(entry.waiter)
            return true
        }
        return ready
    }


    private mutating func succeeded() -> Bool {
        consecutiveFailures = 0
        writesBlockedUntil = nil
        heartbeatRetryAt = nil
        defer { healthy = true }
        return !healthy
    }

    // MARK: Recovery

    /// How long a recovering node waits before its next rewrite batch after one took `roundTrip`:
    /// nothing up to the latency target; beyond it, `roundTrip × (roundTrip / target − 1)`. A
    /// batch answered late means a queue in Redis (a fleet rewriting at once): the slower Redis
    /// answers, the smaller each node's share of the time it sends, so the queue, and what every
    /// other client waits behind it, settles near the target while Redis stays busy.
    func congestionPause(roundTrip: Duration) -> Duration {
        let target = settings.rewriteLatencyTarget
        guard roundTrip > target else { return .zero }
        return min(roundTrip * (roundTrip / target - 1), settings.heartbeatInterval * 2)
    }

    /// Every local socket goes into the rewrite queue, written from `now + jitter` on (at once
    /// when `now` is nil), its batches spread over half a heartbeat interval; then a reconcile.
    private mutating func beginRewrite(now: Instant?, jitter: Duration) {
        refreshQueue = []
        rewriteQueue = sockets.ids
        reconcileWanted = true
        rewritePaced = now != nil
        rewriteTotal = rewriteQueue.count
        rewriteLimit = settings.rewriteInitialBatchSize
        guard let now else {
            rewriteNotBefore = nil
            return
        }
        rewriteNotBefore = now + jitter
    }
}

extension PresenceNodeStateMachine {
    /// What the node is doing, for tests and logs.
    var summary: (pending: Int, inFlight: Int, rewriteQueued: Int, registered: Bool, reconciling: Bool) {
        (sockets.pendingCount, batches.count, rewriteQueue.count, registered, reconcileWanted || reconciling || removing)
    }
}
