import Synchronization

/// Whether the server is a Redis Cluster node, asked once per client (`INFO cluster`) before the
/// first multi-key script call: on a cluster every call must stay within one hash slot.
final class SlotMode: Sendable {
    private enum Mode: UInt8 { case unknown, standalone, cluster }
    private let mode = Atomic<UInt8>(Mode.unknown.rawValue)

    /// The cached answer, or the server's (one round trip, the first time).
    /// - Throws: ``RedisError`` when the server cannot be asked.
    func isCluster(_ client: RedisClient) async throws -> Bool {
        switch Mode(rawValue: mode.load(ordering: .relaxed)) {
        case .standalone: return false
        case .cluster: return true
        default: break
        }
        let info = try await client.send("INFO", "cluster").string ?? ""
        let cluster = info.contains("cluster_enabled:1")
        mode.store((cluster ? Mode.cluster : Mode.standalone).rawValue, ordering: .relaxed)
        return cluster
    }
}
