import Foundation
import Presence

/// Redis CPU per heartbeat with few and with many registered nodes: NODES nodes (10, then 2,000 by
/// default) heartbeat through the writer, ROUNDS times each, pipelined as a fleet would; Redis's
/// own CPU (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`) over the heartbeats sent gives µs per
/// heartbeat. Both sizes run in the same process against the same server, interleaved RUNS times.
/// Arguments: REDIS_URL [ROUNDS=20] [RUNS=3] [FEW=10] [MANY=2000].
func fleetHeartbeatBenchmark(_ arguments: BenchArguments) async throws {
    let rounds = arguments.int(1, 20)
    let runs = arguments.int(2, 3)
    let sizes = [arguments.int(3, 10), arguments.int(4, 2_000)]
    let logger = benchLogger("bench")
    let redis = try arguments.redis()
    let client = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
    let writer = PresenceWriter(client: client, configuration: benchConfiguration())
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        var perSize: [Int: [Double]] = [:]
        for _ in 0..<runs {
            for size in sizes {
                _ = try await client.send("FLUSHALL")
                let nodes = (0..<size).map { NodeHeartbeat(nodeID: "fleet-\($0)", incarnation: "i\($0)", address: "10.0.0.1:80", startedAt: Date(), socketCount: 1000, userCount: 500) }
                try await beat(nodes, writer)  // register
                let before = try await client.redisCPU()
                for _ in 0..<rounds { try await beat(nodes, writer) }
                let spent = try await client.redisCPU() - before
                perSize[size, default: []].append(spent / Double(size * rounds) * 1_000_000)
            }
        }
        let medians = sizes.map { size in perSize[size]!.sorted()[perSize[size]!.count / 2] }
        for (size, median) in zip(sizes, medians) {
            say(String(format: "%d nodes: Redis CPU per heartbeat %.1f µs (median of %d runs of %d heartbeats per node)", size, median, runs, rounds))
            result("heartbeat_cpu_us_\(size)", median)
        }
        result("heartbeat_cpu_ratio", medians[1] / medians[0])
        group.cancelAll()
    }
}

/// One heartbeat of every node, 200 at a time in flight.
private func beat(_ nodes: [NodeHeartbeat], _ writer: PresenceWriter) async throws {
    for start in stride(from: 0, to: nodes.count, by: 200) {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in nodes[start..<min(start + 200, nodes.count)] {
                group.addTask { _ = try await writer.heartbeat(node) }
            }
            try await group.waitForAll()
        }
    }
}

extension RedisClient {
    /// Redis's CPU time so far (user + system), seconds.
    func redisCPU() async throws -> Double {
        let info = try await send("INFO", "cpu").string ?? ""
        var total = 0.0
        for line in info.split(separator: "\r\n") where line.hasPrefix("used_cpu_user:") || line.hasPrefix("used_cpu_sys:") {
            total += Double(line.split(separator: ":")[1]) ?? 0
        }
        return total
    }
}
