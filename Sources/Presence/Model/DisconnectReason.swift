/// Why a socket's `socket.disconnected` change happened (`docs/changes.md`).
public enum DisconnectReason: String, Sendable, Hashable, CaseIterable {
    /// Its node reported it gone.
    case disconnected
    /// Its node stopped heartbeating (or was restarted) and the watcher disconnected its sockets.
    case nodeDown = "node_down"
    /// Its node left the registry gracefully.
    case nodeLeft = "node_left"
    /// It connected to another node (or incarnation), which displaced this record.
    case moved
}
