/// One socket as a lookup with history sees it (``PresenceRegistry/lookup(_:)``): the live socket,
/// or, when it is not alive, how its record last went if the registry still knows.
public struct SocketState: Sendable, Hashable {
    /// The socket when alive, else `nil`.
    public var socket: PresenceSocket?
    /// When and why its record went, for a socket that has no record and went within
    /// ``PresenceConfiguration/socketHistoryRetention``; `nil` otherwise (alive, never seen, a
    /// record whose node is dead but not yet announced, or the history off).
    public var departure: SocketDeparture?

    /// Creates a value.
    public init(socket: PresenceSocket?, departure: SocketDeparture?) {
        self.socket = socket
        self.departure = departure
    }
}
