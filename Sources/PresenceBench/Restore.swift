import Foundation
import Presence

/// Row 8: NODES PresenceNodes (default configuration) hold SOCKETS_PER_NODE sockets each; then
/// FLUSHALL, and the time until every key is back (DBSIZE polled every 5 ms), confirmed by
/// reading every socket alive on its node through the registry.
func restoreBenchmark(_ arguments: BenchArguments) async throws {
    let nodeCount = arguments.int(1, 10)
    let perNode = arguments.int(2, 10_000)
    let logger = benchLogger("bench")
    let redis = try arguments.redis()
    let probe = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
    let clients = (0..<nodeCount).map { _ in RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger) }
    let nodes = try (0..<nodeCount).map { try PresenceNode(nodeID: "restore-\($0)", client: clients[$0], configuration: benchConfiguration(), logger: logger) }
    let registry = PresenceRegistry(client: probe)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for client in clients + [probe] { group.addTask { try await client.run() } }
        _ = try await probe.send("FLUSHALL")
        for node in nodes { group.addTask { try await node.run() } }
        var owner: [String: String] = [:]
        for (index, node) in nodes.enumerated() {
            for socket in 0..<perNode {
                let id = "r\(index)-\(socket)-\(randomID(8))"
                try node.connected(socketID: id, userID: "user-\(socket % 1000)")
                owner[id] = node.nodeID
            }
        }
        for node in nodes { try await node.flush() }
        let keys = try await probe.send("DBSIZE").int ?? 0
        say("loaded \(owner.count) sockets on \(nodeCount) nodes: \(keys) keys")

        let clock = ContinuousClock()
        _ = try await probe.send("FLUSHALL")
        let start = clock.now
        while try await probe.send("DBSIZE").int ?? 0 < keys {
            try await Task.sleep(for: .milliseconds(5))
        }
        let restored = clock.now - start
        let ids = Array(owner.keys)
        var wrong = 0
        for chunk in stride(from: 0, to: ids.count, by: PresenceRegistry.maximumBatch) {
            let slice = Array(ids[chunk..<min(chunk + PresenceRegistry.maximumBatch, ids.count)])
            for (id, socket) in zip(slice, try await registry.sockets(slice)) where socket?.nodeID != owner[id] {
                wrong += 1
            }
        }
        say("restored \(keys) keys in \(restored); sockets not alive on their node afterwards: \(wrong)")
        if wrong > 0 { throw RestoreFailure(wrong: wrong) }
        result("restore_seconds", restored.seconds)
        result("heartbeat_seconds", PresenceConfiguration().heartbeatInterval.seconds)
        group.cancelAll()
    }
}

struct RestoreFailure: Error, CustomStringConvertible {
    let wrong: Int
    var description: String { "\(wrong) sockets were not restored" }
}
