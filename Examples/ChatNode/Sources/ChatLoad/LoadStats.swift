import Synchronization

/// Counters shared by every socket task, read once a second by the reporter.
final class LoadStats: Sendable {
    /// Websockets upgraded so far (first connects and reconnects).
    let connects = Atomic<Int>(0)
    /// Websockets that ended, for whatever reason.
    let disconnects = Atomic<Int>(0)
    /// Connect attempts that failed (refused, upgrade denied, timeout).
    let errors = Atomic<Int>(0)
    /// Open websockets that ended without a close handshake (the node died or dropped them).
    let dropped = Atomic<Int>(0)
    /// Messages received after the welcome.
    let messages = Atomic<Int>(0)

    /// A copy of the counters.
    struct Snapshot: Sendable {
        var connects = 0
        var disconnects = 0
        var errors = 0
        var dropped = 0
        var messages = 0

        /// The change since `earlier`.
        func minus(_ earlier: Snapshot) -> Snapshot {
            Snapshot(
                connects: connects - earlier.connects, disconnects: disconnects - earlier.disconnects,
                errors: errors - earlier.errors, dropped: dropped - earlier.dropped, messages: messages - earlier.messages)
        }
    }

    var snapshot: Snapshot {
        Snapshot(
            connects: connects.load(ordering: .relaxed), disconnects: disconnects.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed), dropped: dropped.load(ordering: .relaxed),
            messages: messages.load(ordering: .relaxed))
    }
}
