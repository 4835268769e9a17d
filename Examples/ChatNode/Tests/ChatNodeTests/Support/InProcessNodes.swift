import ArgumentParser
import Hummingbird
import Logging
import Presence
import ServiceLifecycle

@testable import ChatNode

/// Chat nodes run inside the test process, built exactly as `chat-node` builds them: options
/// parsed by ``ChatNodeCommand`` from the same flags, the application from `buildApplication`,
/// run in a `ServiceGroup` and stopped with a graceful shutdown (they leave the registry).
enum InProcessNodes {
    /// A node the test can reach.
    struct Node: Sendable {
        let nodeID: String
        let port: Int
        /// The address it advertises in the registry.
        var address: String { "http://127.0.0.1:\(port)" }
    }

    /// Starts one node per id against `redisURL`, waits until each answers HTTP and reads alive in
    /// `registry`, runs `body`, then shuts them down gracefully.
    static func with<T: Sendable>(
        _ nodeIDs: [String], redisURL: String, registry: PresenceRegistry, _ body: ([Node]) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "chat-node-tests.node")
        logger.logLevel = .warning
        var nodes: [Node] = []
        var applications: [any Service] = []
        for nodeID in nodeIDs {
            let port = try FreePort.next()
            let command = try ChatNodeCommand.parse(
                ["--port", String(port), "--node-id", nodeID, "--redis", redisURL, "--log-level", "warning"] + TestTiming.commandLine)
            applications.append(try buildApplication(try command.options(), logger: logger))
            nodes.append(Node(nodeID: nodeID, port: port))
        }
        let group = ServiceGroup(services: applications, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let outcome: Result<T, any Error>
            do {
                for node in nodes {
                    try await waitUntil("in-process node \(node.nodeID) answering HTTP on port \(node.port)", within: TestTiming.startup) {
                        await SendAnswer.answers(port: node.port)
                    }
                    try await waitUntil("in-process node \(node.nodeID) alive in the registry", within: TestTiming.startup) {
                        try await registry.node(node.nodeID)?.alive == true
                    }
                }
                outcome = .success(try await body(nodes))
            } catch {
                outcome = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try outcome.get()
        }
    }
}
