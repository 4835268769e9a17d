import Foundation
import Presence

/// Row 1: connect+disconnect events/s from one PresenceNode into Redis. EVENTS connects (20-char
/// ids, user ids over USERS distinct users; 0: none), then as many disconnects, each phase timed
/// from the first call until `flush()` returns.
func coreBenchmark(_ arguments: BenchArguments) async throws {
    let eventCount = arguments.int(1, 200_000)
    let userCount = arguments.int(2, 10_000)
    let logger = benchLogger("bench")
    let client = RedisClient(configuration: try arguments.redis(), scripts: PresenceScripts.all, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        _ = try await client.send("FLUSHALL")
        // PRESENCE_CHANGES=off measures ingestion without the change stream (docs/changes.md).
        let node = try PresenceNode(nodeID: "bench-node", client: client, configuration: benchConfiguration(), logger: logger)
        group.addTask { try await node.run() }
        try await node.flush()

        var generator = SplitMix64()
        let ids = (0..<eventCount).map { _ in randomID(20, using: &generator) }
        let cpuBefore = processCPUSeconds()
        let commandsBefore = client.metrics.commandCount
        let roundTripsBefore = client.metrics.roundTripCount
        let clock = ContinuousClock()
        var start = clock.now
        for (index, id) in ids.enumerated() { try node.connected(socketID: id, userID: userCount > 0 ? "user-\(index % userCount)" : nil) }
        try await node.flush()
        let connectTime = clock.now - start
        start = clock.now
        for id in ids { try node.disconnected(socketID: id) }
        try await node.flush()
        let disconnectTime = clock.now - start
        let total = connectTime + disconnectTime
        let clientCPU = processCPUSeconds() - cpuBefore
        say("connects/s (\(userCount) distinct users): \(Int(Double(eventCount) / connectTime.seconds))")
        say("disconnects/s: \(Int(Double(eventCount) / disconnectTime.seconds))")
        say("Redis round trips \(client.metrics.roundTripCount - roundTripsBefore), commands sent \(client.metrics.commandCount - commandsBefore)")
        say("client CPU \(String(format: "%.2f", clientCPU * 1e6 / Double(2 * eventCount))) µs/event")
        result("events_per_second", Double(2 * eventCount) / total.seconds)
        result("client_cpu_us_per_event", clientCPU * 1e6 / Double(2 * eventCount))
        result("connects_per_second", Double(eventCount) / connectTime.seconds)
        result("disconnects_per_second", Double(eventCount) / disconnectTime.seconds)
        group.cancelAll()
    }
}
