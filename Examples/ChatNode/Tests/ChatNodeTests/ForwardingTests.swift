import Foundation
import Glibc
import Presence
import Testing

@testable import ChatLoad

/// `POST /send/{socketId}` against real processes: a private redis-server, chat nodes built and run
/// in-process exactly as `chat-node` runs them, a `chat-node` process where a crash is needed, and
/// real websocket clients. Every bound derives from the configured heartbeat (1 s), node TTL (3 s)
/// and the Redis client's timeouts (``TestTiming``); the tests wait for events, never a fixed time.
/// Serialized: each starts its own Redis and nodes, and timing bounds hold better one at a time on
/// a shared 2-core machine.
@Suite(.serialized) struct ForwardingTests {
    @Test func sendThroughAnotherNodeIsForwardedToTheOwnersWebSocket() async throws {
        try await TestCluster.with(nodes: ["chat-a", "chat-b"]) { cluster in
            let (a, b) = (cluster.nodes[0], cluster.nodes[1])
            let socketID = try await TestWebSocket.with(port: a.port) { socket in
                let socketID = socket.welcome.socketId
                #expect(socket.welcome.nodeId == "chat-a")
                try await cluster.waitUntilRegistered(socketID, on: "chat-a")

                let forwarded = try await SendAnswer.send("hello through chat-b", to: socketID, via: b.port)
                #expect(forwarded.status == 200, "send through chat-b: \(forwarded)")
                #expect(forwarded.route == "forwarded", "\(forwarded)")
                #expect(forwarded.ownerNodeId == "chat-a", "\(forwarded)")
                #expect(forwarded.acceptedBy == "chat-b", "\(forwarded)")
                #expect(forwarded.ownerAddress == a.address, "\(forwarded)")
                // 200 means the owner wrote it to the socket: it is on its way already.
                try await socket.waitForMessage("hello through chat-b", within: TestTiming.request)

                let local = try await SendAnswer.send("hello from chat-a itself", to: socketID, via: a.port)
                #expect(local.status == 200 && local.route == "local" && local.ownerNodeId == "chat-a", "send through the owner: \(local)")
                try await socket.waitForMessage("hello from chat-a itself", within: TestTiming.request)
                #expect(socket.messages == ["hello through chat-b", "hello from chat-a itself"])
                return socketID
            }
            // Closed by the client: the owner reports the disconnect and a send answers 404.
            try await cluster.waitUntilGone(socketID)
            let after = try await SendAnswer.send("anyone?", to: socketID, via: b.port)
            #expect(after.status == 404 && after.errorCode == "socket_not_connected", "send to a closed socket: \(after)")
        }
    }

    @Test func unknownSocketIs404SocketNotConnected() async throws {
        try await TestCluster.with(nodes: ["chat-a", "chat-b"]) { cluster in
            for node in cluster.nodes {
                let answer = try await SendAnswer.send("anyone?", to: "no-such-socket", via: node.port)
                #expect(answer.status == 404, "send to an unknown socket through \(node.nodeID): \(answer)")
                #expect(answer.errorCode == "socket_not_connected", "\(answer)")
            }
        }
    }

    @Test func crashedOwnerIs502WithinItsTTLThen404() async throws {
        try await TestCluster.with(nodes: ["chat-b"]) { cluster in
            let b = cluster.nodes[0]
            let registry = cluster.registry
            try await SpawnedNode.with(
                "chat-owner", redisURL: cluster.redis.url, in: cluster.directory, isAlive: { try await registry.node($0)?.alive == true }
            ) { owner in
                try await TestWebSocket.with(port: owner.port) { socket in
                    let socketID = socket.welcome.socketId
                    try await cluster.waitUntilRegistered(socketID, on: "chat-owner")
                    let before = try await SendAnswer.send("before the crash", to: socketID, via: b.port)
                    #expect(before.status == 200 && before.route == "forwarded", "send before the crash: \(before)")
                    try await socket.waitForMessage("before the crash", within: TestTiming.request)

                    // Kill right after a heartbeat, so that the registry goes on naming the owner for
                    // (almost) a whole TTL: the window in which a send must answer 502.
                    let previous = try #require(try await registry.node("chat-owner")).lastHeartbeatAt
                    try await waitUntil("a heartbeat of chat-owner", within: TestTiming.heartbeat + TestTiming.nodeTTL) {
                        try await registry.node("chat-owner").map { $0.lastHeartbeatAt > previous } ?? false
                    }
                    #expect(owner.process.signal(SIGKILL), "SIGKILL to chat-owner")
                    let killedAt = Date()
                    #expect(await owner.process.waitForExit(within: .seconds(10)), "chat-owner did not die of SIGKILL")

                    let crashed = try await SendAnswer.send("after the crash", to: socketID, via: b.port)
                    let answeredAfter = Date().timeIntervalSince(killedAt)
                    let owned = try #require(try await registry.node("chat-owner"))
                    let namedFor = owned.expiresAt.timeIntervalSince(killedAt)
                    #expect(crashed.status == 502 && crashed.errorCode == "owner_unreachable", """
                        a send to the killed owner's socket within its TTL: \(crashed); answered \(answeredAfter) s after the kill, \
                        while the registry names chat-owner until \(namedFor) s after it
                        """)
                    #expect(answeredAfter < namedFor, "the 502 check ran outside the TTL window: the machine is too slow for this bound")

                    // Once its TTL has run out the socket reads dead: 404, by kill + TTL + one heartbeat.
                    var last = crashed
                    try await waitUntil(
                        "a send to the killed owner's socket answering 404", within: TestTiming.nodeTTL + TestTiming.heartbeat,
                        interval: .milliseconds(50), state: { "\(last)" }
                    ) {
                        last = try await SendAnswer.send("after the TTL", to: socketID, via: b.port)
                        return last.status != 502
                    }
                    let deadAfter = Date().timeIntervalSince(killedAt)
                    #expect(last.status == 404 && last.errorCode == "socket_not_connected", "after the TTL: \(last)")
                    // Never dead before the node's entry expired (50 ms for millisecond rounding).
                    #expect(deadAfter >= namedFor - 0.05, "read dead \(deadAfter) s after the kill, before its entry expired (\(namedFor) s)")
                }
            }
        }
    }

    @Test func pausedRedisIs503NeverA404() async throws {
        try await TestCluster.with(nodes: ["chat-a", "chat-b"]) { cluster in
            let (a, b) = (cluster.nodes[0], cluster.nodes[1])
            try await TestWebSocket.with(port: a.port) { socket in
                let socketID = socket.welcome.socketId
                try await cluster.waitUntilRegistered(socketID, on: "chat-a")

                cluster.redis.pause()
                defer { cluster.redis.resume() }
                let known = try await SendAnswer.send("while Redis sleeps", to: socketID, via: b.port)
                #expect(known.status == 503 && known.errorCode == "redis_unavailable", "a live socket of chat-a, through chat-b, Redis paused: \(known)")
                let unknown = try await SendAnswer.send("anyone?", to: "no-such-socket", via: b.port)
                #expect(unknown.status == 503 && unknown.errorCode == "redis_unavailable", "an unknown socket, Redis paused: \(unknown)")
                // The owner writes to a socket it holds without asking Redis.
                let local = try await SendAnswer.send("local, Redis paused", to: socketID, via: a.port)
                #expect(local.status == 200 && local.route == "local", "through the owner, Redis paused: \(local)")
                try await socket.waitForMessage("local, Redis paused", within: TestTiming.request)

                cluster.redis.resume()
                // Back once the clients reconnect (backoff, connect) and chat-a's entry, which may
                // have expired during the pause, is renewed by its next heartbeat.
                let redis = TestTiming.redis
                var last = known
                try await waitUntil(
                    "forwarding through chat-b working again after Redis resumed",
                    within: redis.maximumBackoff + redis.connectTimeout + redis.commandTimeout + TestTiming.heartbeat * 2,
                    interval: .milliseconds(100), state: { "\(last)" }
                ) {
                    last = try await SendAnswer.send("Redis is back", to: socketID, via: b.port)
                    return last.status == 200
                }
                #expect(last.route == "forwarded", "\(last)")
                try await socket.waitForMessage("Redis is back", within: TestTiming.request)
            }
        }
    }
}
