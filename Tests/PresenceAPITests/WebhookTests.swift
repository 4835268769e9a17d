import Foundation
import Glibc
import Hummingbird
import HummingbirdTesting
import Logging
import Presence
@testable import PresenceAPI
import PresenceEmbedded
import PresenceTestSupport
import Synchronization
import Testing

let webhookSecret = "whsec-test"

/// A webhook to `port`'s `/hook` with the test's fast timings: poll 20 ms, backoff 50 ms → 400 ms.
func testWebhook(_ port: Int, secret: String = webhookSecret, kinds: Set<PresenceChange.Kind>? = nil, batchSize: Int = 100) -> WebhookConfiguration {
    WebhookConfiguration(
        url: URL(string: "http://127.0.0.1:\(port)/hook")!, kinds: kinds, secret: secret, timeout: .seconds(5), batchSize: batchSize,
        pollInterval: .milliseconds(20), initialBackoff: .milliseconds(50), maximumBackoff: .milliseconds(400))
}

/// Runs `body` against a live server (heartbeat 200 ms, node TTL `nodeTTL`) that delivers to
/// `webhooks`, with its deliveries (for their counters) and its client.
func withWebhookAPI(
    _ redis: RedisConfiguration, keyPrefix: String = "presence", nodeTTL: Duration = .seconds(2), webhooks: [WebhookConfiguration],
    _ body: @escaping @Sendable (Int, [WebhookDelivery], RedisClient) async throws -> Void
) async throws {
    var options = testOptions(nodeTTL: nodeTTL)
    options.presence.keyPrefix = keyPrefix
    options.changeFeed = ChangeFeedConfiguration(pollInterval: .milliseconds(20))
    options.webhooks = webhooks
    let client = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: testLogger())
    let deliveries = buildWebhookDeliveries(client: client, options: options)
    let app = buildApplication(client: client, options: options, logger: testLogger(), webhooks: deliveries)
    try await app.test(.live) { http in
        try await awaitCursors(client, keyPrefix: keyPrefix, webhooks)
        try await body(try #require(http.port), deliveries, client)
    }
}

/// Waits until every webhook has a cursor in Redis: a new webhook gets the changes recorded after
/// its first delivery wrote its cursor (at the newest change), so a test starts reporting then.
func awaitCursors(_ client: RedisClient, keyPrefix: String, _ webhooks: [WebhookConfiguration]) async throws {
    let keys = PresenceKeys(prefix: keyPrefix)
    for webhook in webhooks {
        _ = try await eventually("webhook \(webhook.id) has a cursor") {
            try await client.send(RedisCommand("EXISTS", keys.webhookCursor(webhook.id))).int == 1
        }
    }
}

/// Nodes a test keeps alive, and the heartbeat rounds done.
final class AliveNodes: Sendable {
    private let state: Mutex<(nodes: Set<String>, rounds: Int)>
    init(_ nodes: Set<String>) { state = Mutex((nodes, 0)) }
    var current: Set<String> { state.withLock { $0.nodes } }
    func roundDone() { state.withLock { $0.rounds += 1 } }

    /// Stops heartbeating `node`, and returns once no round that still had it can be in flight
    /// (two rounds ended since), so that no heartbeat re-registers it after a leave.
    func remove(_ node: String) async throws {
        let rounds = state.withLock { state in
            state.nodes.remove(node)
            return state.rounds
        }
        _ = try await eventually("two heartbeat rounds without \(node)") { state.withLock { $0.rounds } >= rounds + 2 }
    }
}

/// Heartbeats the nodes in `alive` (through the API) every 200 ms while `body` runs.
func keepingNodesAlive<T: Sendable>(_ port: Int, _ alive: AliveNodes, _ body: @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            while !Task.isCancelled {
                for node in alive.current { _ = try? await report(port, "PUT", "/v1/nodes/\(node)", "{}") }
                alive.roundDone()
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { group.cancelAll() }
        return try await body()
    }
}

/// Waits until the receiver accepted a change for which `done` holds; bounded by the test's
/// timings (node TTL 2 s, heartbeat 200 ms, backoff ≤ 400 ms) with a wide margin for a loaded machine.
func awaitChange(_ receiver: WebhookReceiver, _ what: String, timeout: Duration = .seconds(20), _ done: @escaping (WebhookReceiver.Change) -> Bool) async throws {
    _ = try await eventually(timeout: timeout, what) { receiver.changes.contains(where: done) }
}

@Suite("webhooks: the change stream POSTed in signed batches, at least once, by one instance", .serialized)
struct WebhookTests {
    /// The scenario's node TTL: node-2's last heartbeat and its leave are up to two heartbeat
    /// rounds apart (HTTP requests, slow on a loaded machine), which must stay well inside it, or
    /// node-2 is announced down before it leaves (seen in CI with 2 s).
    static let scenarioTTL = Duration.seconds(6)

    /// Connects, a socket moving to another node, a graceful leave and a crash, reported through
    /// the API; returns what the receiver got once the crashed node's user went offline.
    func scenario(_ port: Int, _ receiver: WebhookReceiver) async throws -> [WebhookReceiver.Change] {
        let alive = AliveNodes(["node-1", "node-2"])
        try await report(port, "PUT", "/v1/nodes/node-1", "{}")
        try await report(port, "PUT", "/v1/nodes/node-2", "{}")
        try await keepingNodesAlive(port, alive) {
            try await report(port, "PUT", "/v1/nodes/node-1/sockets/s1", #"{"userId":"u1"}"#)
            try await report(port, "PUT", "/v1/nodes/node-1/sockets/s2", #"{"userId":"u1"}"#)
            try await report(port, "DELETE", "/v1/nodes/node-1/sockets/s1")
            try await report(port, "DELETE", "/v1/nodes/node-1/sockets/s2")
            // s3 moves from node-1 to node-2, then node-2 leaves.
            try await report(port, "PUT", "/v1/nodes/node-1/sockets/s3", #"{"userId":"u2"}"#)
            try await report(port, "PUT", "/v1/nodes/node-2/sockets/s3", #"{"userId":"u2"}"#)
            try await alive.remove("node-2")
            try await report(port, "DELETE", "/v1/nodes/node-2")
            // node-3 takes a socket and stops heartbeating: the watcher announces it down.
            try await report(port, "PUT", "/v1/nodes/node-3", "{}")
            try await report(port, "PUT", "/v1/nodes/node-3/sockets/s4", #"{"userId":"u3"}"#)
            try await awaitChange(receiver, "u3 offline after node-3's crash") { $0.type == "user.offline" && $0.userID == "u3" }
        }
        return receiver.changes
    }

    /// What `scenario` must deliver, per socket and per user (in order), and per node.
    func checkScenario(_ changes: [WebhookReceiver.Change]) {
        func about(_ keep: (WebhookReceiver.Change) -> Bool) -> [String] { changes.filter(keep).map(\.description) }
        #expect(about { $0.socketID == "s1" } == ["socket.connected s1", "socket.disconnected s1 disconnected"])
        #expect(about { $0.userID == "u1" } == [
            "socket.connected s1", "user.online u1", "socket.connected s2", "socket.disconnected s1 disconnected",
            "socket.disconnected s2 disconnected", "user.offline u1",
        ])
        // Moved: disconnected from node-1 (reason moved) and connected on node-2, the user staying online.
        #expect(changes.filter { $0.socketID == "s3" }.map { "\($0.description) \($0.nodeID ?? "")" } == [
            "socket.connected s3 node-1", "socket.disconnected s3 moved node-1", "socket.connected s3 node-2",
            "socket.disconnected s3 node_left node-2",
        ])
        #expect(about { $0.userID == "u2" && $0.socketID == nil } == ["user.online u2", "user.offline u2"])
        #expect(about { $0.userID == "u3" } == ["socket.connected s4", "user.online u3", "socket.disconnected s4 node_down", "user.offline u3"])
        #expect(about { $0.socketID == nil && $0.userID == nil } .filter { !$0.hasSuffix("node-1") } == [
            "node.up node-2", "node.left node-2", "node.up node-3", "node.down node-3",
        ])
        // Steady state: nothing twice.
        #expect(Set(changes.map(\.id)).count == changes.count)
    }

    @Test("a receiver gets connect, disconnect, offline with the last socket, moved, a leave and a crash, in order, signed")
    func scenarioStandalone() async throws {
        let server = try await RedisServer.start()
        let receiver = WebhookReceiver(secret: webhookSecret)
        try await receiver.run { hook in
            try await withWebhookAPI(server.configuration, nodeTTL: Self.scenarioTTL, webhooks: [testWebhook(hook)]) { port, deliveries, _ in
                let changes = try await scenario(port, receiver)
                checkScenario(changes)
                // One server, one stream: the order is exact across subjects too.
                #expect(changes.map(\.description).prefix(3) == ["node.up node-1", "node.up node-2", "socket.connected s1"])
                #expect(receiver.rejected == 0)
                #expect(receiver.userAgents == ["presence-webhooks/1"])
                #expect(receiver.contentTypes == ["application/json"])
                // On one server a position is `0=<entry id>`: each batch's is its last change's id.
                #expect(receiver.positions.allSatisfy { position in changes.contains { $0.id == position } })
                // The delivery counts a batch once its POST answered, after the receiver has it
                // (later changes, node-1's expiry, may be counted too).
                try await eventually("the last batch counted") { deliveries[0].statistics.delivered >= changes.count }
                let statistics = deliveries[0].statistics
                #expect(statistics.holding && statistics.failedAttempts == 0)
            }
        }
    }

    @Test("on a Redis Cluster: the same scenario, in order per socket and per user")
    func scenarioCluster() async throws {
        let cluster = try await SharedRedisCluster.get()
        let receiver = WebhookReceiver(secret: webhookSecret)
        try await receiver.run { hook in
            try await withWebhookAPI(
                try RedisConfiguration(url: cluster.seedURL), keyPrefix: "wh-\(UUID().uuidString.prefix(8))", nodeTTL: Self.scenarioTTL,
                webhooks: [testWebhook(hook)]
            ) { port, _, _ in
                checkScenario(try await scenario(port, receiver))
                #expect(receiver.rejected == 0)
            }
        }
    }

    @Test("a receiver answering 503 gets the same batch again after a backoff, then everything in order")
    func retriesAfter503() async throws {
        let server = try await RedisServer.start()
        let receiver = WebhookReceiver(secret: webhookSecret, failFirst: 4)
        try await receiver.run { hook in
            try await withWebhookAPI(server.configuration, nodeTTL: .seconds(60), webhooks: [testWebhook(hook, batchSize: 5)]) { port, deliveries, _ in
                try await report(port, "PUT", "/v1/nodes/node-1", "{}")
                for index in 0..<12 { try await report(port, "PUT", "/v1/nodes/node-1/sockets/s\(index)", "{}") }
                try await awaitChange(receiver, "s11 connected") { $0.socketID == "s11" }
                #expect(receiver.changes.map(\.description) == ["node.up node-1"] + (0..<12).map { "socket.connected s\($0)" })
                #expect(receiver.batchSizes.allSatisfy { $0 <= 5 })
                #expect(deliveries[0].statistics.failedAttempts == 4)
            }
        }
    }

    @Test("a receiver that is down for a while gets everything after it comes back, nothing lost")
    func receiverDown() async throws {
        let server = try await RedisServer.start()
        // A port below the ephemeral range, bound but not listening: connections are refused
        // (and no outgoing connection can take it) until the receiver comes.
        let reservation = try RedisServer.reservePort()
        let hook = reservation.port
        let receiver = WebhookReceiver(secret: webhookSecret)
        // A POST to a closed port fails only at its timeout (the HTTP client retries connecting
        // until then): 1 s here.
        var webhook = testWebhook(hook)
        webhook.timeout = .seconds(1)
        try await withWebhookAPI(server.configuration, nodeTTL: .seconds(60), webhooks: [webhook]) { port, deliveries, _ in
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            for index in 0..<5 { try await report(port, "PUT", "/v1/nodes/node-1/sockets/s\(index)", "{}") }
            // Attempts fail (connection refused) and back off.
            _ = try await eventually("failed attempts") { deliveries[0].statistics.failedAttempts >= 3 }
            for index in 5..<10 { try await report(port, "PUT", "/v1/nodes/node-1/sockets/s\(index)", "{}") }
            reservation.release()
            try await receiver.run(port: hook) { _ in
                try await awaitChange(receiver, "s9 connected (\(receiver.requests) requests)") { $0.socketID == "s9" }
            }
            #expect(receiver.changes.map(\.description) == ["node.up node-1"] + (0..<10).map { "socket.connected s\($0)" })
            #expect(deliveries[0].statistics.delivered == 11)
        }
    }

    @Test("a receiver checking with another secret rejects every batch; the delivery keeps the batch and retries")
    func wrongSecret() async throws {
        let server = try await RedisServer.start()
        let receiver = WebhookReceiver(secret: "another-secret")
        try await receiver.run { hook in
            try await withWebhookAPI(server.configuration, webhooks: [testWebhook(hook)]) { port, deliveries, _ in
                try await report(port, "PUT", "/v1/nodes/node-1", "{}")
                _ = try await eventually("three failed attempts") { deliveries[0].statistics.failedAttempts >= 3 }
                #expect(receiver.rejected >= 3)
                #expect(receiver.changes.isEmpty)
                #expect(deliveries[0].statistics.delivered == 0)
            }
        }
    }

    @Test("the receivers' verification recipe accepts the server's signature and refuses a changed body, time or secret")
    func signatureRecipe() throws {
        let body = Array(#"{"position":"0=1-0","changes":[]}"#.utf8)
        let now = Date()
        let timestamp = Int(now.timeIntervalSince1970)
        let header = WebhookPayload.signature(secret: "s3cret", timestamp: timestamp, body: body)
        #expect(header.hasPrefix("t=\(timestamp),v1=") && header.count == "t=\(timestamp),v1=".count + 64)
        #expect(WebhookReceiver.verify(signature: header, body: body, secret: "s3cret", now: now))
        #expect(!WebhookReceiver.verify(signature: header, body: body + [0x20], secret: "s3cret", now: now))
        #expect(!WebhookReceiver.verify(signature: header, body: body, secret: "s3cret!", now: now))
        #expect(!WebhookReceiver.verify(signature: header, body: body, secret: "s3cret", now: now.addingTimeInterval(301)))
        let otherTime = header.replacingOccurrences(of: "t=\(timestamp)", with: "t=\(timestamp + 1)")
        #expect(!WebhookReceiver.verify(signature: otherTime, body: body, secret: "s3cret", now: now))
        // The body is the SSE data of each change plus its id and type.
        let change = PresenceChange(
            kind: .socketDisconnected, id: try #require(ChangePosition.Entry(stream: 3, id: "1700000000000-2")),
            at: Date(timeIntervalSince1970: 1_700_000_000), socketID: "s\"1", nodeID: "n", userID: "u", reason: .moved)
        var position = ChangePosition()
        position.advance(past: change.id)
        #expect(String(decoding: WebhookPayload.body([change], position: position), as: UTF8.self)
            == #"{"position":"3=1700000000000-2","changes":[{"id":"3=1700000000000-2","type":"socket.disconnected","socketId":"s\"1","nodeId":"n","userId":"u","reason":"moved","at":"2023-11-14T22:13:20.000Z"}]}"#)
    }

    @Test("--webhook-types sends only those kinds; the cursor still passes the others; /metrics counts")
    func kindsAndMetrics() async throws {
        let server = try await RedisServer.start()
        let receiver = WebhookReceiver(secret: webhookSecret)
        try await receiver.run { hook in
            let webhook = testWebhook(hook, kinds: [.userOnline, .userOffline])
            try await withWebhookAPI(server.configuration, webhooks: [webhook]) { port, deliveries, client in
                try await report(port, "PUT", "/v1/nodes/node-1", "{}")
                try await keepingNodesAlive(port, AliveNodes(["node-1"])) {
                    try await report(port, "PUT", "/v1/nodes/node-1/sockets/s1", #"{"userId":"u1"}"#)
                    try await report(port, "DELETE", "/v1/nodes/node-1/sockets/s1")
                    try await awaitChange(receiver, "u1 offline") { $0.type == "user.offline" }
                    #expect(receiver.changes.map(\.description) == ["user.online u1", "user.offline u1"])
                    // The cursor passes every change read, those filtered out too.
                    let registry = PresenceRegistry(client: client, configuration: PresenceConfiguration())
                    let newest = try await registry.newestChangePosition()
                    _ = try await eventually("cursor at the newest change") {
                        try await client.send(RedisCommand("GET", PresenceKeys(prefix: "presence").webhookCursor(webhook.id))).string == newest.description
                    }
                    #expect(deliveries[0].statistics.filtered == 3)
                    let metrics = try await RawHTTPResponse.send(port: port, "GET", "/metrics", headers: [("Host", "127.0.0.1")])
                    #expect(metrics.body.contains("presence_webhook_delivered_total{webhook=\"\(webhook.id)\"} 2"))
                    #expect(metrics.body.contains("presence_webhook_filtered_total{webhook=\"\(webhook.id)\"} 3"))
                    #expect(metrics.body.contains("presence_webhook_delivering{webhook=\"\(webhook.id)\"} 1"))
                    #expect(metrics.body.contains("presence_webhook_lag_seconds{webhook=\"\(webhook.id)\"} 0.000"))
                    #expect(!metrics.body.contains(webhookSecret))
                }
            }
        }
    }

    @Test("a cursor older than the retention resumes at the oldest retained change and counts the gap")
    func trimmedCursor() async throws {
        let server = try await RedisServer.start()
        let receiver = WebhookReceiver(secret: webhookSecret)
        try await receiver.run { hook in
            let webhook = testWebhook(hook)
            try await withClient(server.configuration) { (client: RedisClient) async throws in
                let writer = PresenceWriter(client: client, configuration: PresenceConfiguration())
                _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "node-1", incarnation: "i1", startedAt: Date()))
                _ = await writer.apply(nodeID: "node-1", incarnation: "i1", events: [.connect(socketID: "s1", userID: nil, meta: [:], connectedAt: Date())])
                // A position before every retained entry, as if the webhook had been away too long.
                _ = try await client.send(RedisCommand("SET", PresenceKeys(prefix: "presence").webhookCursor(webhook.id), "0=1-0"))
            }
            try await withWebhookAPI(server.configuration, webhooks: [webhook]) { _, deliveries, client in
                try await awaitChange(receiver, "s1 connected") { $0.socketID == "s1" }
                // (node-1 expires after its TTL: its node.down may follow.)
                #expect(receiver.changes.map(\.description).prefix(2) == ["node.up node-1", "socket.connected s1"])
                #expect(deliveries[0].statistics.gaps == 1)
                // The cursor moved on from the trimmed position (another instance will not count the gap again).
                _ = try await eventually("the cursor moved on") {
                    try await client.send(RedisCommand("GET", PresenceKeys(prefix: "presence").webhookCursor(webhook.id))).string != "0=1-0"
                }
            }
        }
    }
}
