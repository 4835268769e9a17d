import Synchronization

/// Bounds the history replays (`Last-Event-ID`, `since`) that run at once on one server. Each
/// reads pages of up to ``ChangeFeedConfiguration/replayPage`` changes per stream through the
/// registry's one connection: a reconnect storm of many resuming subscribers would hold every
/// other command up behind their pages. Past the bound a replay waits its turn (first come, first
/// served); its subscription queues live changes meanwhile, as usual.
final class ReplayGate: Sendable {
    /// A wait that cannot go on: the task was cancelled, or the server is shutting down.
    struct Closed: Error {}

    private struct State {
        var running = 0
        var waiting: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
        /// Asked, not yet admitted or queued; cancelled meanwhile.
        var arriving: Set<Int> = []
        var cancelled: Set<Int> = []
        var nextID = 0
        var closed = false
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(limit, 1) }

    /// Replays running, and waiting.
    var counts: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiting.count) } }

    /// Waits until fewer than ``limit`` replays run, and counts this one; pair with ``release()``.
    /// - Throws: ``Closed`` when the task is cancelled or the gate closed while waiting.
    func acquire() async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.arriving.insert(state.nextID)
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let admitted: Bool? = state.withLock { state in
                    state.arriving.remove(id)
                    if state.cancelled.remove(id) != nil || state.closed { return false }
                    if state.running < limit {
                        state.running += 1
                        return true
                    }
                    state.waiting.append((id, continuation))
                    return nil
                }
                switch admitted {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: Closed())
                case nil: break
                }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, any Error>? = state.withLock { state in
                if let index = state.waiting.firstIndex(where: { $0.id == id }) { return state.waiting.remove(at: index).continuation }
                if state.arriving.contains(id) { state.cancelled.insert(id) }
                return nil
            }
            waiter?.resume(throwing: Closed())
        }
    }

    /// Ends a replay counted by ``acquire()``: the first waiting one runs.
    func release() {
        let next: CheckedContinuation<Void, any Error>? = state.withLock { state in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }

    /// Fails every waiting replay and every later ``acquire()`` (the server is shutting down).
    func close() {
        let waiting = state.withLock { state in
            state.closed = true
            defer { state.waiting = [] }
            return state.waiting.map(\.continuation)
        }
        for continuation in waiting { continuation.resume(throwing: Closed()) }
    }
}
