import Synchronization

/// The node incarnations a writer made leave (the last 64): the removals of their sockets that
/// follow record reason `node_left`. Shared by the copies of that writer.
final class LeftIncarnations: Sendable {
    private let recent = Mutex<[String]>([])
    private static let capacity = 64

    func insert(nodeID: String, incarnation: String) {
        let key = "\(nodeID)\u{1F}\(incarnation)"
        recent.withLock { list in
            if list.contains(key) { return }
            list.append(key)
            if list.count > Self.capacity { list.removeFirst() }
        }
    }

    func contains(nodeID: String, incarnation: String) -> Bool {
        let key = "\(nodeID)\u{1F}\(incarnation)"
        return recent.withLock { $0.contains(key) }
    }
}
