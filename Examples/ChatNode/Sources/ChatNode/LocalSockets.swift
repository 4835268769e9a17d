import HummingbirdWebSocket
import Synchronization

/// The websockets this process holds, by socket id: where a message for a local socket is written.
final class LocalSockets: Sendable {
    private let writers = Mutex<[String: WebSocketOutboundWriter]>([:])

    /// Records an accepted socket.
    func add(_ socketID: String, writer: WebSocketOutboundWriter) {
        writers.withLock { $0[socketID] = writer }
    }

    /// Forgets a socket that closed.
    func remove(_ socketID: String) {
        _ = writers.withLock { $0.removeValue(forKey: socketID) }
    }

    /// The writer of a local socket, `nil` when this process does not hold it.
    func writer(for socketID: String) -> WebSocketOutboundWriter? {
        writers.withLock { $0[socketID] }
    }

    /// Sockets held now.
    var count: Int { writers.withLock { $0.count } }

    /// Up to `limit` ids of sockets held now, sorted.
    func ids(limit: Int) -> [String] {
        Array(writers.withLock { Array($0.keys) }.sorted().prefix(limit))
    }
}
