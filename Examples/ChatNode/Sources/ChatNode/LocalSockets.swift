import HummingbirdWebSocket
import Synchronization

/// The websockets this process holds, by socket id: where a message for a local socket is written,
/// and which of them follow which contacts (users whose online/offline they are told).
final class LocalSockets: Sendable {
    private struct State {
        var writers: [String: WebSocketOutboundWriter] = [:]
        var contacts: [String: Set<String>] = [:]
        /// user id → the sockets that follow it.
        var followers: [String: Set<String>] = [:]
    }

    private let state = Mutex(State())

    /// Records an accepted socket and the contacts its user follows.
    func add(_ socketID: String, writer: WebSocketOutboundWriter, contacts: Set<String> = []) {
        state.withLock { state in
            state.writers[socketID] = writer
            state.contacts[socketID] = contacts
            for contact in contacts { state.followers[contact, default: []].insert(socketID) }
        }
    }

    /// Forgets a socket that closed.
    func remove(_ socketID: String) {
        state.withLock { state in
            state.writers[socketID] = nil
            for contact in state.contacts.removeValue(forKey: socketID) ?? [] {
                state.followers[contact]?.remove(socketID)
                if state.followers[contact]?.isEmpty == true { state.followers[contact] = nil }
            }
        }
    }

    /// The writer of a local socket, `nil` when this process does not hold it.
    func writer(for socketID: String) -> WebSocketOutboundWriter? {
        state.withLock { $0.writers[socketID] }
    }

    /// The writers of the local sockets that follow `userID`.
    func followers(of userID: String) -> [WebSocketOutboundWriter] {
        state.withLock { state in (state.followers[userID] ?? []).compactMap { state.writers[$0] } }
    }

    /// Sockets held now.
    var count: Int { state.withLock { $0.writers.count } }

    /// Up to `limit` ids of sockets held now, sorted.
    func ids(limit: Int) -> [String] {
        Array(state.withLock { Array($0.writers.keys) }.sorted().prefix(limit))
    }
}
