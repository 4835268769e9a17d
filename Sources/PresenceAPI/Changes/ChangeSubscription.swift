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

    /// The changes of one hub read that pass the filter.
    struct Part: Sendable {
        let batch: ChangeBatch
        /// Indices in `batch.changes`; `nil`: all of them.
        let indices: [Int]?

        var changes: [PresenceChange] { indices.map { $0.map { batch.changes[$0] } } ?? batch.changes }
        var count: Int { indices?.count ?? batch.changes.count }
    }

    /// What the connection takes in one go.
    struct Batch: Sendable {
        var parts: [Part] = []
        /// Changes in `parts`.
        var count = 0
        /// The last hub read offered, whether any of it passed the filter or not: the subscriber
        /// has every change it wants up to its end.
        var through: ChangeBatch?
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

    /// Queues the changes of `batch` that pass the filter. Returns `false` when this overflowed the
    /// queue: the subscription is then ended (``End/slow``) and its queue dropped.
    func offer(_ batch: ChangeBatch) -> Bool {
        let part: Part
        if filter.isEverything {
            part = Part(batch: batch, indices: nil)
        } else {
            part = Part(batch: batch, indices: batch.changes.indices.filter { filter.matches(batch.changes[$0]) })
        }
        return state.withLock { state in
            if state.ended != nil { return true }
            state.pending.through = batch
            // Nothing for it: its position moves on with the next batch it takes (no wake-up).
            if part.count == 0 { return true }
            if state.pending.count + part.count > capacity {
                state.pending.parts = []
                state.pending.count = 0
                end(.slow, &state)
                return false
            }
            state.pending.parts.append(part)
            state.pending.count += part.count
            resume(&state)
            return true
        }
    }

    /// Asks the connection to write a keep-alive comment (with `id:`, the position it reached).
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
                    if state.pending.parts.isEmpty && !state.pending.heartbeat && state.pending.end == nil {
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
