import Foundation
import Glibc
import Presence
import ServiceLifecycle
import PresenceEmbedded
import PresenceTestSupport
import Synchronization
import Testing
@testable import PresenceAPI

/// Webhooks of real `presence serve` processes, and two deliveries of one webhook on one registry.
@Suite("webhooks: one instance delivers each change", .serialized)
struct WebhookProcessesTests {
    /// Runs two deliveries of `webhook` (as two `presence serve` would) on `redis` while `body` runs;
    /// `body` can stop one gracefully by its index.
    func withTwoDeliveries(
        _ redis: RedisConfiguration, keyPrefix: String, webhook: WebhookConfiguration,
        _ body: @escaping @Sendable ([WebhookDelivery], RedisClient, @escaping @Sendable (Int) async -> Void) async throws -> Void
    ) async throws {
        // A lease of 2 s (heartbeat 1 s): renewals every 500 ms stay well within it on a loaded
        // machine, so the steady state has one holder.
        var presence = PresenceConfiguration(heartbeatInterval: .seconds(1), nodeTTL: .seconds(30))
        presence.keyPrefix = keyPrefix
        try await withClient(redis) { (client: RedisClient) async throws in
            let deliveries = (0..<2).map { index in
                WebhookDelivery(configuration: webhook, client: client, presence: presence, instance: "instance-\(index)", logger: quietLogger("webhook.\(index)"))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                let groups = deliveries.map { delivery in ServiceGroup(services: [delivery], gracefulShutdownSignals: [], logger: quietLogger("group")) }
                for serviceGroup in groups { group.addTask { try await serviceGroup.run() } }
                defer { group.cancelAll() }
                try await body(deliveries, client) { index in await groups[index].triggerGracefulShutdown() }
            }
        }
    }

    /// Two deliveries of one webhook: exactly one holds the lease and delivers; every change arrives
    /// once; stopping the holder hands over to the other, which goes on from the cursor.
    func steadyStateThenHandover(_ redis: RedisConfiguration, keyPrefix: String) async throws {
        let receiver = WebhookReceiver(secret: webhookSecret)
        try await receiver.run { hook in
            try await withTwoDeliveries(redis, keyPrefix: keyPrefix, webhook: testWebhook(hook, batchSize: 7)) { deliveries, client, stop in
                var configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(30))
                configuration.keyPrefix = keyPrefix
                let writer = PresenceWriter(client: client, configuration: configuration)
                _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "node-1", incarnation: "i1", startedAt: Date()))
                try await awaitCursors(client, keyPrefix: keyPrefix, [deliveries[0].configuration])
                for index in 0..<40 {
                    _ = await writer.apply(nodeID: "node-1", incarnation: "i1", events: [.connect(socketID: "s\(index)", userID: "u\(index % 5)", meta: [:], connectedAt: Date())])
                }
                // (On a cluster, across streams, s39 may come before s38: wait for all 40.)
                _ = try await eventually("40 connects delivered") { receiver.changes.filter { $0.type == "socket.connected" }.count >= 40 }
                #expect(deliveries.filter { $0.statistics.holding }.count == 1)
                #expect(deliveries.filter { $0.statistics.batches > 0 }.count == 1, "both delivered in steady state")
                let first = receiver.changes
                #expect(first.filter { $0.type == "socket.connected" }.count == 40)
                #expect(Set(first.map(\.id)).count == first.count, "a change was delivered twice in steady state")

                // A graceful stop releases the lease: the other takes over from the cursor.
                let holder = try #require(deliveries.firstIndex { $0.statistics.holding })
                await stop(holder)
                _ = try await eventually("the other delivery holds the lease") { deliveries[1 - holder].statistics.holding }
                for index in 0..<40 {
                    _ = await writer.apply(nodeID: "node-1", incarnation: "i1", events: [.disconnect(socketID: "s\(index)", userID: nil)])
                }
                _ = try await eventually("40 disconnects and 5 offline users delivered") {
                    let changes = receiver.changes
                    return changes.filter { $0.type == "socket.disconnected" }.count >= 40 && changes.filter { $0.type == "user.offline" }.count >= 5
                }
                let all = receiver.changes
                #expect(all.filter { $0.type == "socket.disconnected" }.count == 40)
                #expect(all.filter { $0.type == "user.offline" }.count == 5)
                #expect(Set(all.map(\.id)).count == all.count, "a change was delivered twice across a graceful handover")
                #expect(deliveries[1 - holder].statistics.batches > 0)
                for socket in (0..<40).map({ "s\($0)" }) {
                    #expect(all.filter { $0.socketID == socket }.map(\.type) == ["socket.connected", "socket.disconnected"])
                }
            }
        }
    }

    @Test("two deliveries on one registry: one delivers, each change once; a graceful stop hands over")
    func twoDeliveriesStandalone() async throws {
        let server = try await RedisServer.start()
        try await steadyStateThenHandover(server.configuration, keyPrefix: "presence")
    }

    @Test("two deliveries on a Redis Cluster: one delivers, each change once; a graceful stop hands over")
    func twoDeliveriesCluster() async throws {
        let cluster = try await SharedRedisCluster.get()
        try await steadyStateThenHandover(try RedisConfiguration(url: cluster.seedURL), keyPrefix: "wh2-\(UUID().uuidString.prefix(8))")
    }

    @Test("two presence serve processes with --webhook: one delivers; SIGKILL it and the other goes on; nothing lost")
    func twoServeProcesses() async throws {
        let server = try await RedisServer.start()
        defer { withExtendedLifetime(server) {} }
        let receiver = WebhookReceiver(secret: webhookSecret)
        try await receiver.run { hook in
            let arguments = [
                try presenceBinary(), "serve", "--port", "0", "--redis", server.url, "--node-ttl", "30", "--heartbeat", "1",
                "--webhook", "http://127.0.0.1:\(hook)/hook", "--log-level", "info",
            ]
            let environment = ["PRESENCE_WEBHOOK_SECRET": webhookSecret]
            let first = try ChildProcess(arguments, environment: environment)
            let port = try await first.listeningPort()
            let serves = [first, try ChildProcess(arguments, environment: environment)]
            defer { for serve in serves { serve.signal(SIGKILL) } }
            _ = try await serves[1].listeningPort()
            let webhook = try ServeOptions.webhooks(urls: ["http://127.0.0.1:\(hook)/hook"], types: [], secret: webhookSecret, timeout: nil, changes: true)[0]
            try await withClient(server) { (client: RedisClient) async throws in try await awaitCursors(client, keyPrefix: "presence", [webhook]) }
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            for index in 0..<10 { try await report(port, "PUT", "/v1/nodes/node-1/sockets/s\(index)", "{}") }
            try await awaitChange(receiver, "s9 connected") { $0.socketID == "s9" }
            let holders = serves.indices.filter { serves[$0].output.contains("delivering to the webhook") }
            #expect(holders.count == 1, "\(holders.count) instances delivering")
            let steady = receiver.changes
            #expect(Set(steady.map(\.id)).count == steady.count, "a change was delivered twice in steady state")
            #expect(!serves.contains { $0.output.contains(webhookSecret) }, "the secret was logged")
            let holder = try #require(holders.first)
            serves[holder].signal(SIGKILL)
            _ = await serves[holder].wait()
            let live = serves[1 - holder]
            let livePort = try await live.listeningPort()
            for index in 0..<10 { try await report(livePort, "DELETE", "/v1/nodes/node-1/sockets/s\(index)") }
            // The lease expires (2 heartbeats) and the other instance delivers from the cursor. The
            // killed one may have POSTed a batch without moving the cursor: that batch may come
            // twice (at least once), with the same ids, which a receiver drops.
            try await awaitChange(receiver, "s9 disconnected") { $0.socketID == "s9" && $0.type == "socket.disconnected" }
            #expect(live.output.contains("delivering to the webhook"))
            var seen: Set<String> = []
            let changes = receiver.changes.filter { seen.insert($0.id).inserted }
            for index in 0..<10 {
                #expect(changes.filter { $0.socketID == "s\(index)" }.map(\.type) == ["socket.connected", "socket.disconnected"])
            }
            #expect(receiver.rejected == 0)
        }
    }

    @Test("presence serve refuses a bad webhook URL, a webhook without a secret, and webhooks with --changes off")
    func configurationErrors() async throws {
        func refusal(_ extra: [String], environment: [String: String] = ["PRESENCE_WEBHOOK_SECRET": "s"]) async throws -> String {
            let child = try ChildProcess([try presenceBinary(), "serve", "--port", "0", "--redis", "redis://127.0.0.1:1"] + extra, environment: environment)
            let status = await child.wait()
            #expect(status != 0, "\(extra) was accepted")
            return child.output
        }
        #expect(try await refusal(["--webhook", "ftp://example.com/hook"]).contains("expected an http or https URL"))
        #expect(try await refusal(["--webhook", "http://127.0.0.1:9/hook"], environment: [:]).contains("needs a signing secret"))
        #expect(try await refusal(["--webhook", "http://127.0.0.1:9/hook", "--changes", "off"]).contains("--changes off"))
        #expect(try await refusal(["--webhook", "http://127.0.0.1:9/hook", "--webhook-types", "user.gone"]).contains("unknown kind user.gone"))
        #expect(try await refusal(["--webhook-types", "user.online"]).contains("--webhook-types needs --webhook"))
    }
}
