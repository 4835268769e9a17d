/// One line of `CLUSTER NODES`: a node as the asked node sees it.
///
/// `<id> <ip:port@cport[,hostname]> <flags> <master-id|-> <ping-sent> <pong-recv> <config-epoch>
/// <link-state> <slot>…`, where a slot is `n`, `a-b`, or a migration in progress (`[n->-id]`,
/// `[n-<-id]`), which is not ownership and is skipped.
struct ClusterNodesEntry: Sendable, Hashable {
    /// The node's id (40 hex digits).
    let id: String
    /// The client port; 0 when the address is unknown (`noaddr`, `:0@0`).
    let port: Int
    /// `myself`, `master`, `slave`, `fail?`, `fail`, `handshake`, `noaddr`, `nofailover`, `noflags`.
    let flags: Set<String>
    /// The primary's id, for a replica.
    let primaryID: String?
    /// Whether the asked node's bus link to it is up.
    let isConnected: Bool
    /// The slots it owns, as ranges.
    let slots: [ClosedRange<Int>]

    var isMyself: Bool { flags.contains("myself") }
    var isPrimary: Bool { flags.contains("master") }
    var isReplica: Bool { flags.contains("slave") }
    /// Suspected (`fail?`) or agreed (`fail`) to be down.
    var isFailing: Bool { flags.contains("fail") || flags.contains("fail?") }
    /// Still being introduced: the asked node does not know it yet.
    var inHandshake: Bool { flags.contains("handshake") }

    /// Parses the whole reply; lines that do not parse are skipped.
    static func parse(_ text: String) -> [ClusterNodesEntry] {
        text.split(whereSeparator: \.isNewline).compactMap { ClusterNodesEntry(line: $0) }
    }

    /// Parses one line, or `nil` when it is not one.
    init?(line: Substring) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 8 else { return nil }
        id = String(fields[0])
        // "127.0.0.1:30001@31001" or "127.0.0.1:30001@31001,hostname": the port sits between the
        // last ':' before '@' and the '@'.
        let address = fields[1].split(separator: "@", maxSplits: 1).first ?? ""
        port = address.split(separator: ":").last.flatMap { Int($0) } ?? 0
        flags = Set(fields[2].split(separator: ",").map(String.init))
        primaryID = fields[3] == "-" ? nil : String(fields[3])
        isConnected = fields[7] == "connected"
        slots = fields.dropFirst(8).compactMap { field -> ClosedRange<Int>? in
            guard !field.hasPrefix("[") else { return nil }
            let bounds = field.split(separator: "-", maxSplits: 1).compactMap { Int($0) }
            switch bounds.count {
            case 1: return bounds[0]...bounds[0]
            case 2 where bounds[0] <= bounds[1]: return bounds[0]...bounds[1]
            default: return nil
            }
        }
    }

    /// Whether it owns `slot`.
    func owns(_ slot: Int) -> Bool {
        slots.contains { $0.contains(slot) }
    }
}
