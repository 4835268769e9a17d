import Foundation
import Presence

/// Row 5: Redis `used_memory` per live socket. NODES nodes hold SOCKETS sockets in all (20-char
/// socket ids, 20-char user ids over USERS distinct users), written by PresenceNodes; the reference
/// is the bare minimum loaded through the same client: one 3-field hash and one node-set member
/// per socket. Each is measured as the used_memory delta over an empty database (emptied with
/// `FLUSHALL SYNC`: Valkey frees a plain `FLUSHALL` in the background, which skews the base).
func memoryBenchmark(_ arguments: BenchArguments) async throws {
    let nodeCount = arguments.int(1, 100)
    let socketCount = arguments.int(2, 100_000)
    let userCount = arguments.int(3, 50_000)
    let logger = benchLogger("bench")
    let client = RedisClient(configuration: try arguments.redis(), scripts: PresenceScripts.all, logger: logger)
    let socketIDs = (0..<socketCount).map { _ in randomID(20) }
    let userIDs = (0..<userCount).map { _ in randomID(20) }
    let nodeIDs = (0..<nodeCount).map { "node-\($0)" }

    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }

        _ = try await client.send("FLUSHALL", "SYNC")
        var base = try await client.usedMemory()
        let connectedAt = String(Int(Date().timeIntervalSince1970 * 1_000_000))
        for chunk in stride(from: 0, to: socketCount, by: 1000) {
            var commands: [RedisCommand] = []
            for index in chunk..<min(chunk + 1000, socketCount) {
                let node = nodeIDs[index % nodeCount]
                commands.append(RedisCommand("HSET", "s:\(socketIDs[index])", "n", node, "u", userIDs[index % userCount], "t", connectedAt))
                commands.append(RedisCommand("SADD", "n:\(node)", socketIDs[index]))
            }
            for reply in await client.pipeline(commands) { _ = try reply.get() }
        }
        let reference = Double(try await client.usedMemory() - base) / Double(socketCount)
        say(String(format: "reference (3-field hash + set member): %.1f bytes per socket", reference))

        _ = try await client.send("FLUSHALL", "SYNC")
        base = try await client.usedMemory()
        let nodes = try nodeIDs.map { try PresenceNode(nodeID: $0, client: client, configuration: benchConfiguration(), logger: logger) }
        try await withThrowingTaskGroup(of: Void.self) { nodeGroup in
            for node in nodes { nodeGroup.addTask { try await node.run() } }
            for index in 0..<socketCount {
                try nodes[index % nodeCount].connected(socketID: socketIDs[index], userID: userIDs[index % userCount])
            }
            for node in nodes { try await node.flush() }
            let ours = Double(try await client.usedMemory() - base) / Double(socketCount)
            let keys = try await client.send("DBSIZE").int ?? 0
            say(String(format: "presence: %.1f bytes per socket (%d keys for %d sockets, %d users, %d nodes)", ours, keys, socketCount, userCount, nodeCount))
            result("memory_ours", ours)
            result("memory_reference", reference)
            nodeGroup.cancelAll()
        }
        group.cancelAll()
    }
}
