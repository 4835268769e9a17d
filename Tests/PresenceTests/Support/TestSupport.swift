import Foundation
import Logging
import Presence
import PresenceTestSupport
import ServiceLifecycle

func testLogger(_ label: String) -> Logger { quietLogger("test.\(label)") }

/// Fast timings so that expiry-based tests take about two seconds; the TTL leaves ten heartbeats of
/// slack, so a loaded CI machine does not expire nodes that are alive.
let fastConfiguration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(2), socketTTL: .seconds(60), nodeRetention: .seconds(60))

/// A connect event without meta.
func connectEvent(_ socketID: String, _ userID: String?, at: Date = Date()) -> SocketEvent {
    .connect(socketID: socketID, userID: userID, meta: [:], connectedAt: at)
}

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

