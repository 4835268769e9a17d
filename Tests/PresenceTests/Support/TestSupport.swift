import Foundation
import Logging
import Presence
import PresenceTestSupport
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

