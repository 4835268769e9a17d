import Foundation
import Presence

/// Row 6: Redis commands executed per heartbeat cycle of a running PresenceNode holding 0, 10,000
/// and 100,000 sockets (default configuration), over five heartbeats: the heartbeat itself plus
/// the amortized socket-TTL refresh that rides on it. Counted from INFO commandstats (scripts'
/// inner calls included), minus this probe's own commands.
func heartbeatBenchmark(_ arguments: BenchArguments) async throws {
    let logger = benchLogger("bench")
    let redis = try arguments.redis()
    let probe = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await probe.run() }
        for sockets in [0, 10_000, 100_000] {
            _ = try await probe.send("FLUSHALL")
            let client = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
            let node = try PresenceNode(nodeID: "hb-node", client: client, configuration: benchConfiguration(), logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { nodeGroup in
                nodeGroup.addTask { try await client.run() }
                nodeGroup.addTask { try await node.run() }
                for index in 0..<sockets { try node.connected(socketID: randomID(20), userID: "user-\(index % 10_000)") }
                try await node.flush()

                // Align on heartbeats: the node record's lastHeartbeat changes once per heartbeat.
                let record = PresenceKeys(prefix: node.writer.configuration.keyPrefix).node("hb-node")
                var probes = 0
                func nextHeartbeat(after previous: String) async throws -> String {
                    while true {
                        probes += 1
                        let current = try await probe.send("HGET", record, "lastHeartbeat").string ?? ""
                        if current != previous { return current }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                var mark = try await nextHeartbeat(after: try await probe.send("HGET", record, "lastHeartbeat").string ?? "")
                let executedBefore = try await probe.executedCommands()
                let sentBefore = client.metrics.commandCount
                probes = 0
                let beats = 5
                for _ in 0..<beats { mark = try await nextHeartbeat(after: mark) }
                let executed = try await probe.executedCommands() - executedBefore - probes - 1
                let sent = client.metrics.commandCount - sentBefore
                say("\(sockets) sockets: \(executed / beats) commands executed, \(sent / beats) sent per heartbeat")
                result("heartbeat_commands_\(sockets)", Double(executed) / Double(beats))
                result("heartbeat_sent_\(sockets)", Double(sent) / Double(beats))
                nodeGroup.cancelAll()
            }
        }
        group.cancelAll()
    }
}
