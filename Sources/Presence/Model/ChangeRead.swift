/// One read of the change streams (``PresenceRegistry/readChanges(after:count:)``).
public struct ChangeRead: Sendable {
    /// The changes read, by entry time.
    public var changes: [PresenceChange]
    /// After every entry read, those that could not be decoded included.
    public var position: ChangePosition
    /// Whether some stream held more than the count asked: read again at once.
    public var isPartial: Bool
}
