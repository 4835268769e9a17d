import Presence

/// One read of the ``ChangeHub``, shared by every subscriber it is offered to: the changes, where
/// the hub stood before and after them, and each change's event text encoded once for all (its
/// `id:` is the hub's position after it). A subscriber at ``start`` writes the texts as they are
/// and moves to ``end``: the fan-out costs no encoding per subscriber.
final class ChangeBatch: Sendable {
    /// The hub's position before the changes.
    let start: ChangePosition
    /// The hub's position after them.
    let end: ChangePosition
    let changes: [PresenceChange]
    /// `text/event-stream` text of each change, `id:` the position after it.
    let events: [String]

    /// - Parameter end: where the read got to, past entries it could not decode too (`nil`: after
    ///   the last change).
    init(start: ChangePosition, changes: [PresenceChange], end: ChangePosition? = nil) {
        var position = start
        var events: [String] = []
        events.reserveCapacity(changes.count)
        for change in changes {
            position.advance(past: change.id)
            events.append(ServerSentEvent.change(change, position: position))
        }
        self.start = start
        self.end = end ?? position
        self.changes = changes
        self.events = events
    }
}
