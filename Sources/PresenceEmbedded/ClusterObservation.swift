import Foundation

/// What one node of a cluster reports at one moment: `CLUSTER INFO`, `CLUSTER NODES` and
/// `INFO replication`. ``ClusterHealth`` judges a set of them.
struct ClusterObservation: Sendable {
    /// The port of the node asked.
    let port: Int
    /// `CLUSTER INFO`, as fields (`cluster_state` → `ok`).
    let clusterInfo: [String: String]
    /// `CLUSTER NODES`: the cluster as this node sees it.
    let nodes: [ClusterNodesEntry]
    /// `INFO replication`, as fields (`role`, `master_link_status`, offsets).
    let replication: [String: String]

    /// The asked node's own line.
    var myself: ClusterNodesEntry? { nodes.first(where: \.isMyself) }

    /// `key:value` lines (CRLF or LF), skipping `# Section` headers and blank lines.
    static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        return fields
    }
}
