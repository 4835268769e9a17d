import Synchronization

/// What the client's live connection learned of its server on connect (`INFO server`, in the
/// setup round trip): written by the I/O thread on every connect and drop, read by
/// ``RedisClient/serverInfo()`` without a round trip.
final class RedisServerInfoCache: Sendable {
    private struct State {
        /// The live connection's answer; `nil` while disconnected.
        var current: Result<RedisServerInfo, RedisError>?
        /// The last server seen, across reconnects.
        var lastSeen: RedisServerInfo?
    }

    private let state = Mutex(State())

    /// The live connection's server, or why it is not known (`INFO` refused, say); `nil` while
    /// disconnected.
    var current: Result<RedisServerInfo, RedisError>? { state.withLock { $0.current } }

    /// A connection was made and answered `INFO server` with `answer`. Returns the server seen
    /// before when this one differs (a restart into another release), for the log.
    func connected(_ answer: Result<RedisServerInfo, RedisError>) -> RedisServerInfo? {
        state.withLock { state in
            state.current = answer
            guard case .success(let server) = answer else { return nil }
            defer { state.lastSeen = server }
            return state.lastSeen.flatMap { $0 == server ? nil : $0 }
        }
    }

    /// The connection went: the next one may reach another server.
    func disconnected() {
        state.withLock { $0.current = nil }
    }
}
