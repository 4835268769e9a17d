import Synchronization

/// Whether the server is a Redis Cluster node, learned from its first `CROSSSLOT` refusal: then
/// script calls are split per hash slot.
final class SlotMode: Sendable {
    private let cluster = Atomic<Bool>(false)

    var isCluster: Bool { cluster.load(ordering: .relaxed) }

    func learnCluster() { cluster.store(true, ordering: .relaxed) }
}
