import Logging
import Presence
import ServiceLifecycle

/// The test's own view of the registry: a `RedisClient` of its own, so that it reads what any
/// service of the cluster would read, never what a node believes.
enum TestRegistry {
    /// Runs `body` with a registry reader on `redisURL`, its client running until `body` returns.
    static func with<T: Sendable>(redisURL: String, _ body: (PresenceRegistry) async throws -> T) async throws -> T {
        var logger = Logger(label: "chat-node-tests.registry")
        logger.logLevel = .error
        let client = RedisClient(configuration: try RedisConfiguration(url: redisURL), scripts: PresenceScripts.all, logger: logger)
        let registry = PresenceRegistry(
            client: client, configuration: PresenceConfiguration(heartbeatInterval: TestTiming.heartbeat, nodeTTL: TestTiming.nodeTTL))
        let group = ServiceGroup(services: [client], logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body(registry)) } catch { outcome = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try outcome.get()
        }
    }
}
