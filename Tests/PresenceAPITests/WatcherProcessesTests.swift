import Foundation
import Glibc
import Presence
import PresenceEmbedded
import PresenceTestSupport
import Testing

/// The watcher inside real `presence serve` processes (`docs/changes.md`).
@Suite("presence serve processes announce dead nodes in the change stream")
struct WatcherProcessesTests {
    @Test("two serve processes: one watches; a node that stops heartbeating is announced once; SIGKILL the watcher and the other takes over")
    func twoServesOneKilled() async throws {
        let server = try await RedisServer.start()
        defer { withExtendedLifetime(server) {} }
        let arguments = [try presenceBinary(), "serve", "--port", "0", "--redis", server.url, "--node-ttl", "2", "--heartbeat", "0.25"]
        // One after the other: two debug binaries starting at once weigh on a 2-core machine
        // running the rest of the suite.
        let first = try ChildProcess(arguments)
        _ = try await first.listeningPort()
        let serves = [first, try ChildProcess(arguments)]
        defer { for serve in serves { serve.signal(SIGKILL) } }
        _ = try await serves[1].listeningPort()
        let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(250), nodeTTL: .seconds(2))
        try await withClient(server) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: configuration)
            let registry = PresenceRegistry(client: client, configuration: configuration)

            /// Registers `node` with three sockets (two users), lets it stop heartbeating, and
            /// waits for its user.offline; returns the changes and the node's expiry.
            func crash(_ node: String) async throws -> ([PresenceChange], Int, Duration) {
                _ = try await writer.heartbeat(NodeHeartbeat(nodeID: node, incarnation: "\(node)-1", startedAt: Date()))
                _ = await writer.apply(nodeID: node, incarnation: "\(node)-1", events: (0..<3).map {
                    .connect(socketID: "\(node)-s\($0)", userID: "\(node)-u\($0 % 2)", meta: [:], connectedAt: Date())
                })
                let beat = try await writer.heartbeat(NodeHeartbeat(nodeID: node, incarnation: "\(node)-1", startedAt: Date()))
                let expiresAt = Int(beat.expiresAt.timeIntervalSince1970 * 1000)
                let (_, slack) = try await measuringSchedulingSlack {
                    try await eventually("\(node)'s users offline", every: .milliseconds(100)) {
                        (try? await registry.recordedChanges().filter { $0.kind == .userOffline && $0.userID?.hasPrefix(node) == true }.count) == 2
                    }
                }
                return (try await registry.recordedChanges(), expiresAt, slack)
            }

            let (first, firstExpiry, slack) = try await crash("A")
            let down = first.filter { $0.kind == .nodeDown && $0.nodeID == "A" }
            #expect(down.count == 1)
            #expect(first.filter { $0.kind == .socketDisconnected && $0.nodeID == "A" && $0.reason == .nodeDown }.count == 3)
            // Within one heartbeat of the expiry, plus this machine's scheduling delay.
            #expect((down.first?.id.milliseconds ?? .max) - firstExpiry <= 250 + Int(slack / .milliseconds(1)))

            // Kill the lease holder (its log says it watches); the other takes over.
            let holder = try #require(serves.firstIndex { $0.output.contains("watching for dead nodes") })
            serves[holder].signal(SIGKILL)
            _ = await serves[holder].wait()
            let (second, _, _) = try await crash("B")
            #expect(second.filter { $0.kind == .nodeDown && $0.nodeID == "B" }.count == 1)
            #expect(second.filter { $0.kind == .socketDisconnected && $0.nodeID == "B" }.count == 3)
            #expect(serves[1 - holder].output.contains("watching for dead nodes"))
            // Nothing recorded twice, for either node.
            let ids = second.map(\.id)
            #expect(Set(ids).count == ids.count)
            #expect(second.filter { $0.kind == .nodeDown }.count == 2)
        }
    }
}
