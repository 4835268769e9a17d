import Foundation
import Logging
import Presence
import ServiceLifecycle

/// Socket events per second from one PresenceNode into Redis, and Redis commands per heartbeat
/// with 0 and 10,000 sockets. Arguments: REDIS_URL [EVENTS] [USERS] (USERS 0: no user ids).
func coreBenchmark(_ arguments: [String]) async throws {
    let redis = try RedisConfiguration(url: arguments[0])
    let eventCount = arguments.count > 1 ? Int(arguments[1]) ?? 200_000 : 200_000
    let userCount = arguments.count > 2 ? Int(arguments[2]) ?? 10_000 : 10_000
    var logger = Logger(label: "bench")
    logger.logLevel = .warning
    let client = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
    let configuration = PresenceConfiguration(heartbeatInterval: .seconds(2), nodeTTL: .seconds(6))

    func totalCalls() async throws -> Int {
        let info = try await client.send("INFO", "commandstats").string ?? ""
        return info.split(separator: "\r\n").reduce(0) { sum, line in
            guard let range = line.range(of: "calls=") else { return sum }
            return sum + (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
        }
    }

    func commandsPerHeartbeat(sockets: Int) async throws -> Int {
        let writer = PresenceWriter(client: client, configuration: configuration)
        let node = "hb-\(sockets)"
        let heartbeat = NodeHeartbeat(nodeID: node, incarnation: "bench", startedAt: Date(), socketCount: sockets, userCount: 0)
        _ = try await writer.heartbeat(heartbeat)
        let events = (0..<sockets).map { SocketEvent.connect(socketID: "\(node)-\($0)", userID: nil, meta: [:], connectedAt: Date()) }
        for start in stride(from: 0, to: events.count, by: 1000) {
            _ = await writer.apply(nodeID: node, incarnation: "bench", events: Array(events[start..<min(start + 1000, events.count)]))
        }
        let before = try await totalCalls()
        _ = try await writer.heartbeat(heartbeat)
        return try await totalCalls() - before - 1
    }

    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        _ = try await client.send("FLUSHALL")
        let node = try PresenceNode(nodeID: "bench-node", client: client, configuration: configuration, logger: logger)
        group.addTask { try await node.run() }
        try await node.flush()

        let ids = (0..<eventCount).map { "socket-\($0)-\(UInt32.random(in: 0 ... .max))" }
        let clock = ContinuousClock()
        var start = clock.now
        for (index, id) in ids.enumerated() { try node.connected(socketID: id, userID: userCount > 0 ? "user-\(index % userCount)" : nil) }
        say("recording \(eventCount) connects locally took \(clock.now - start)")
        try await node.flush()
        let connectTime = clock.now - start
        start = clock.now
        for id in ids { try node.disconnected(socketID: id) }
        try await node.flush()
        let disconnectTime = clock.now - start
        func rate(_ duration: Duration) -> Int { Int(Double(eventCount) / (Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)) }
        say("connect events/s (\(userCount) distinct users): \(rate(connectTime))")
        say("disconnect events/s: \(rate(disconnectTime))")
        say("connect+disconnect events/s: \(Int(Double(2 * eventCount) / ((connectTime + disconnectTime) / .seconds(1)))))")
        say("Redis round trips: \(client.metrics.roundTripCount), commands: \(client.metrics.commandCount)")
        say("commands per heartbeat, 0 sockets: \(try await commandsPerHeartbeat(sockets: 0))")
        say("commands per heartbeat, 10000 sockets: \(try await commandsPerHeartbeat(sockets: 10_000))")
        group.cancelAll()
    }
}
