import HummingbirdWSClient
import Synchronization

/// The websockets open now, by slot: what churn and shutdown close, and the per-node counts.
final class OpenSockets: Sendable {
    struct Entry: Sendable {
        var writer: WebSocketOutboundWriter
        /// The node id from the welcome message (the URL until it arrives).
        var node: String
        var socketID: String?
    }

    private let entries = Mutex<[Int: Entry]>([:])
    /// Node ids learnt from welcomes, by URL: a socket is counted under its node from the start.
    private let nodeOfURL = Mutex<[String: String]>([:])

    func opened(slot: Int, writer: WebSocketOutboundWriter, url: String) {
        let node = nodeOfURL.withLock { $0[url] } ?? url
        entries.withLock { $0[slot] = Entry(writer: writer, node: node) }
    }

    func welcomed(slot: Int, socketID: String, node: String, url: String) {
        nodeOfURL.withLock { $0[url] = node }
        entries.withLock { entries in
            entries[slot]?.socketID = socketID
            entries[slot]?.node = node
        }
    }

    func closed(slot: Int) {
        _ = entries.withLock { $0.removeValue(forKey: slot) }
    }

    var count: Int { entries.withLock { $0.count } }

    /// Open sockets per node, sorted by node.
    var perNode: [(node: String, sockets: Int)] {
        let counts = entries.withLock { entries in
            entries.values.reduce(into: [String: Int]()) { $0[$1.node, default: 0] += 1 }
        }
        return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Up to `count` random open sockets' writers.
    func randomWriters(_ count: Int) -> [WebSocketOutboundWriter] {
        entries.withLock { entries in
            Array(entries.values.shuffled().prefix(count).map(\.writer))
        }
    }

    /// Every open socket's writer.
    var allWriters: [WebSocketOutboundWriter] { entries.withLock { $0.values.map(\.writer) } }
}
