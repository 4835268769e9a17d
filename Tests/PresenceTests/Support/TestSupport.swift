import Foundation
import Logging
import Presence
import ServiceLifecycle

/// Runs `body` with a running client for `configuration`.
func withClient<T: Sendable>(
    _ configuration: RedisConfiguration, scripts: [RedisScript] = PresenceScripts.all,
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let client = RedisClient(configuration: configuration, scripts: scripts, logger: testLogger("redis"))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        do {
            let result = try await body(client)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

func withClient<T: Sendable>(_ server: RedisServer, _ body: (RedisClient) async throws -> T) async throws -> T {
    try await withClient(server.configuration, body)
}

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: "test.\(label)")
    logger.logLevel = ProcessInfo.processInfo.environment["PRESENCE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}

/// Fast timings so that expiry-based tests take about a second.
let fastConfiguration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(1), socketTTL: .seconds(60), nodeRetention: .seconds(60))

/// A node running in its own task: `crash()` cancels it (no goodbye), `stop()` shuts it down
/// gracefully (it leaves the registry).
final class RunningNode: Sendable {
    let node: PresenceNode
    private let task: Task<Void, any Error>
    private let group: ServiceGroup

    init(_ node: PresenceNode) {
        self.node = node
        let group = ServiceGroup(configuration: .init(services: [node], logger: testLogger("group")))
        self.group = group
        task = Task { try await group.run() }
    }

    func crash() async {
        task.cancel()
        _ = await task.result
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

func startNode(_ id: String, client: RedisClient, configuration: PresenceConfiguration = fastConfiguration, address: String = "") async throws -> RunningNode {
    let running = RunningNode(try PresenceNode(nodeID: id, address: address, client: client, configuration: configuration, logger: testLogger("node.\(id)")))
    try await running.node.flush()
    return running
}

/// Keys in the database, by SCAN.
func allKeys(_ client: RedisClient) async throws -> [String] {
    var keys: [String] = []
    var cursor = "0"
    repeat {
        let page = try await client.send("SCAN", cursor, "COUNT", "1000").array!
        cursor = page[0].string!
        keys += page[1].array!.compactMap(\.string)
    } while cursor != "0"
    return keys
}

/// Redis server time in milliseconds.
func redisNow(_ client: RedisClient) async throws -> Int {
    let parts = try await client.send("TIME").array!
    return parts[0].int! * 1000 + parts[1].int! / 1000
}

/// Sleeps until the Redis clock passes `milliseconds` (waiting on a TTL is waiting on time).
func waitUntilRedisTime(_ client: RedisClient, passes milliseconds: Int) async throws {
    while true {
        let now = try await redisNow(client)
        if now > milliseconds { return }
        try await Task.sleep(for: .milliseconds(milliseconds - now + 5))
    }
}

/// Polls `condition` until it holds; fails after `timeout`. For state that converges through
/// background writes the test does not control (resync after Redis came back).
func eventually(timeout: Duration = .seconds(20), _ what: String, _ condition: () async throws -> Bool) async throws -> Duration {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < timeout {
        if (try? await condition()) == true { return clock.now - start }
        try await Task.sleep(for: .milliseconds(20))
    }
    struct Timeout: Error, CustomStringConvertible { let description: String }
    throw Timeout(description: "timed out after \(timeout) waiting for: \(what)")
}
