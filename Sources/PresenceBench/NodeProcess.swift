import Foundation
import Presence

/// Row 7's victim: one PresenceNode holding SOCKETS sockets (ids `NODE_ID-0`…), heartbeat and node
/// TTL as given. Prints `ready` once everything is in Redis, then runs until killed.
func nodeProcess(_ arguments: BenchArguments) async throws {
    let nodeID = arguments.values[1]
    let sockets = arguments.int(2, 1000)
    let configuration = benchConfiguration(PresenceConfiguration(
        heartbeatInterval: .milliseconds(arguments.int(3, 1000)), nodeTTL: .milliseconds(arguments.int(4, 3000))))
    let logger = benchLogger("bench-node")
    let client = RedisClient(configuration: try arguments.redis(), scripts: PresenceScripts.all, logger: logger)
    let node = try PresenceNode(nodeID: nodeID, client: client, configuration: configuration, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        group.addTask { try await node.run() }
        for index in 0..<sockets { try node.connected(socketID: "\(nodeID)-\(index)", userID: "user-\(index)") }
        try await node.flush()
        say("ready")
        try await group.next()
    }
}
