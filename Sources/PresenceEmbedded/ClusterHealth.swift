/// Whether a cluster is settled, judged from what its running nodes report (pure; the I/O lives in
/// ``LocalRedisCluster``). Settled means all of:
///
/// - every asked node reports `cluster_state:ok`;
/// - every asked node knows every other asked node, none of them in handshake, suspected or failed,
///   and its bus link to each is up;
/// - all asked nodes agree on every node's role and on the owner of every slot, all 16384 slots
///   are owned, and every owner is one of the asked nodes (a slot owned by a killed or paused
///   primary is not served, whatever `cluster_state` says before its failure is agreed on);
/// - every asked replica whose primary was asked has `master_link_status:up` to that primary and,
///   when `replicasCaughtUp`, its replication offset equals the primary's.
///
/// The nodes asked are the running ones; a killed or paused node is not asked and not required.
enum ClusterHealth {
    /// Redis Cluster's slot count.
    static let slotCount = 16384

    /// `nil` when settled, else the first thing that is not yet, in words (for timeout errors).
    static func problem(_ observations: [ClusterObservation], replicasCaughtUp: Bool) -> String? {
        guard let first = observations.first else { return "no running node to ask" }
        let asked = Set(observations.map(\.port))
        for observation in observations {
            let state = observation.clusterInfo["cluster_state"] ?? "(none)"
            guard state == "ok" else { return "\(name(observation.port)) reports cluster_state:\(state)" }
            for port in asked.sorted() where port != observation.port {
                guard let entry = observation.nodes.first(where: { $0.port == port }) else {
                    return "\(name(observation.port)) does not know \(name(port)) yet"
                }
                if entry.inHandshake { return "\(name(observation.port)) is still in handshake with \(name(port))" }
                if entry.isFailing { return "\(name(observation.port)) flags \(name(port)) as failing" }
                if !entry.isConnected { return "\(name(observation.port)) has no bus link to \(name(port))" }
            }
        }
        let reference = view(of: first, asked: asked)
        for observation in observations.dropFirst() where view(of: observation, asked: asked) != reference {
            return "\(name(first.port)) and \(name(observation.port)) do not agree yet on roles and slot owners"
        }
        if let slot = reference.owners.firstIndex(of: 0) { return "slot \(slot) has no owner" }
        if let slot = reference.owners.firstIndex(where: { !asked.contains($0) }) {
            return "slot \(slot) is owned by \(name(reference.owners[slot])), which is not running"
        }
        let byPort = Dictionary(uniqueKeysWithValues: observations.map { ($0.port, $0) })
        for observation in observations {
            guard let myself = observation.myself, myself.isReplica,
                  let primary = observation.nodes.first(where: { $0.id == myself.primaryID }),
                  let primaryObservation = byPort[primary.port]
            else { continue }
            let link = observation.replication["master_link_status"] ?? "(none)"
            guard link == "up", observation.replication["master_port"] == String(primary.port) else {
                return "replica \(name(observation.port)) has master_link_status:\(link) to \(name(primary.port))"
            }
            if replicasCaughtUp {
                let offset = observation.replication["slave_repl_offset"] ?? "?"
                let primaryOffset = primaryObservation.replication["master_repl_offset"] ?? "?"
                guard offset == primaryOffset else {
                    return "replica \(name(observation.port)) is at offset \(offset), its primary \(name(primary.port)) at \(primaryOffset)"
                }
            }
        }
        return nil
    }

    /// What must be the same from every node: the asked nodes' roles, and each slot's owner.
    private struct View: Equatable {
        /// Port → 0 for a primary, else its primary's port (-1 when that is unknown).
        var roles: [Int: Int] = [:]
        /// Slot → owner's port; 0 when unowned.
        var owners = [Int](repeating: 0, count: ClusterHealth.slotCount)
    }

    private static func view(of observation: ClusterObservation, asked: Set<Int>) -> View {
        var view = View()
        let portByID = Dictionary(observation.nodes.map { ($0.id, $0.port) }, uniquingKeysWith: { first, _ in first })
        for entry in observation.nodes {
            if asked.contains(entry.port) {
                view.roles[entry.port] = entry.isPrimary ? 0 : entry.primaryID.flatMap { portByID[$0] } ?? -1
            }
            guard entry.isPrimary else { continue }
            for range in entry.slots where range.lowerBound >= 0 && range.upperBound < slotCount {
                for slot in range { view.owners[slot] = entry.port }
            }
        }
        return view
    }

    static func name(_ port: Int) -> String { "127.0.0.1:\(port)" }
}
