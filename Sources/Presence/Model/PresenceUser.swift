import Foundation

/// A user as the registry sees it (``PresenceRegistry/user(_:)``).
public struct PresenceUser: Sendable, Hashable {
    /// The user's id.
    public var userID: String
    /// Its live sockets, sorted by id.
    public var sockets: [PresenceSocket]
    /// When its last socket went (the Redis server's clock), while it is offline and that was
    /// within ``PresenceConfiguration/lastSeenRetention``; `nil` while online, unknown, or while
    /// its sockets' node is dead but not yet announced (the registry has not recorded it offline).
    public var lastSeenAt: Date?

    /// Whether any socket of the user is alive.
    public var online: Bool { !sockets.isEmpty }

    /// Creates a value.
    public init(userID: String, sockets: [PresenceSocket], lastSeenAt: Date?) {
        self.userID = userID
        self.sockets = sockets
        self.lastSeenAt = lastSeenAt
    }
}
