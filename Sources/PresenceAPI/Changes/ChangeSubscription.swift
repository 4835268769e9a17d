import Presence
import Synchronization

/// One subscriber's bounded queue between the ``ChangeHub`` (which offers every live change that
/// passes the subscriber's filter) and its connection (which takes everything queued at once).
/// Memory is bounded by `capacity`: a subscriber that falls that far behind is ended with
/// ``End/slow`` and its queue dropped, whatever its connection is doing.
final class ChangeSubscription: Sendable {
    /// Why a subscription ended.
    enum End: Sendable, Equatable {
        /// Its queue overflowed: the connection did not keep up.
        case slow
        /// The server is shutting down (or the hub stopped).
        case shutdown
    }

    /// What the connection takes in one go.
    struct Batch: Sendable {
        var changes: [PresenceChange] = []
        /// A heartbeat interval passed.
        var heartbeat = false
        /// Set once: nothing follows.
        var end: End?
    }

    private struct State {
        var pending = Batch()
        var waiter: CheckedContinuation<Batch, Never>?
        var ended: End?
    }

    let filter: ChangeFilter
    let capacity: Int
    private let state = Mutex(State())

    init(filter: ChangeFilter, capacity: Int) {
        self.filter = filter
        self.capacity = capacity
    }

    /// Queues the changes that pass the filter. Returns `false` when this overflowed the queue:
    /// the subscription is then ended (``End/slow``) and its queue dropped.
    func offer(_ changes: [PresenceChange]) -> Bool {
        let matching = filter.isEverything ? changes : changes.filter(filter.matches)
        if matching.isEmpty { return true }
        return state.withLock { state in
            if state.ended != nil { return true }
            if state.pending.changes.count + matching.count > capacity {
                state.pending.changes = []
                end(.slow, &state)
                return false
            }
            state.pending.changes += matching
            resume(&state)
            return true
        }
    }

    /// Asks the connection to write a keep-alive comment (unless changes are waiting anyway).
    func heartbeat() {
        state.withLock { state in
            if state.ended != nil { return }
            state.pending.heartbeat = true
            resume(&state)
        }
    }

    /// Ends the subscription; the connection sees `end` after what is queued (or at once for
    /// ``End/slow``, whose queue is gone).
    func finish(_ end: End) {
        state.withLock { state in
            if state.ended == nil { self.end(end, &state) }
        }
    }

    /// Whether the subscription ended (its connection may still have to see the end).
    var hasEnded: Bool { state.withLock { $0.ended != nil } }

    /// Everything queued since the last call, waiting until there is something. Cancelling the
    /// task ends the subscription (``End/shutdown``).
    func next() async -> Batch {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock { state in
                    if state.pending.changes.isEmpty && !state.pending.heartbeat && state.pending.end == nil {
                        if let ended = state.ended {
                            continuation.resume(returning: Batch(end: ended))  // asked again after the end
                        } else {
                            state.waiter = continuation
                        }
                    } else {
                        let batch = state.pending
                        state.pending = Batch()
                        continuation.resume(returning: batch)
                    }
                }
            }
        } onCancel: {
            finish(.shutdown)
        }
    }

    private func end(_ end: End, _ state: inout State) {
        state.ended = end
        state.pending.end = end
        resume(&state)
    }

    private func resume(_ state: inout State) {
        guard let waiter = state.waiter else { return }
        state.waiter = nil
        let batch = state.pending
        state.pending = Batch()
        waiter.resume(returning: batch)
    }
}

extension ChangeFilter {
    /// Whether the filter lets every change through.
    var isEverything: Bool { kinds == nil && userIDs == nil && nodeID == nil }
}
