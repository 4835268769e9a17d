import Foundation
import Hummingbird
import Presence

/// A node as the API shows it; a heartbeat's answer adds what the reporter must do.
struct NodeResponse: ResponseEncodable, Sendable {
    let node: PresenceNodeInfo
    var heartbeat: HeartbeatResult?
    var heartbeatInterval: Duration?

    enum CodingKeys: String, CodingKey {
        case nodeId, incarnation, address, alive, startedAt, lastHeartbeatAt, expiresAt, socketCount, meta
        case status, resyncRequired, heartbeatIntervalMs
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(node.nodeID, forKey: .nodeId)
        try container.encode(node.incarnation, forKey: .incarnation)
        try container.encode(node.address, forKey: .address)
        try container.encode(node.alive, forKey: .alive)
        try container.encode(Timestamp.string(node.startedAt), forKey: .startedAt)
        try container.encode(Timestamp.string(node.lastHeartbeatAt), forKey: .lastHeartbeatAt)
        try container.encode(Timestamp.string(node.expiresAt), forKey: .expiresAt)
        try container.encode(node.socketCount, forKey: .socketCount)
        try container.encode(node.meta, forKey: .meta)
        if let heartbeat {
            try container.encode(heartbeat.status.rawValue, forKey: .status)
            try container.encode(heartbeat.needsResync, forKey: .resyncRequired)
        }
        if let heartbeatInterval {
            let (seconds, attoseconds) = heartbeatInterval.components
            try container.encode(Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000), forKey: .heartbeatIntervalMs)
        }
    }
}
