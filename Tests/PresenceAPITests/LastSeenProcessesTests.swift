import Foundation
import Glibc
import Presence
import PresenceEmbedded
import PresenceTestSupport
import Testing

/// `lastSeenAt`, a gone socket's `disconnectedAt` and `reason`, and the exact users-online count,
/// through a real `presence serve` process whose nodes report over HTTP.
@Suite("Last seen and users online through presence serve")
struct LastSeenProcessesTests {
    @Test("HTTP reporters: a user on two nodes counts once; disconnect, crash (watcher) and leave give lastSeenAt, disconnectedAt and reason", arguments: [Topology.standalone, .cluster])
    func reporters(_ topology: Topology) async throws {
        if topology == .cluster {
            try await withLocalCluster(replicasPerPrimary: 0) { cluster in try await scenario(url: cluster.seedURL) }
        } else {
            let server = try await RedisServer.start()
            defer { withExtendedLifetime(server) {} }
            try await scenario(url: server.url)
        }
    }

    /// An HTTP exchange with the serve process: status and JSON object.
    struct API: Sendable {
        let port: Int

        @discardableResult
        func call(_ method: String, _ path: String, _ body: String? = nil, token: String = writeToken) async throws -> (Int, [String: Any]) {
            var headers = [("Host", "127.0.0.1:\(port)"), ("Authorization", "Bearer \(token)")]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let answer = try await RawHTTPResponse.send(port: port, method, path, headers: headers, body: body)
            let object = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any] ?? [:]
            return (answer.status, object)
        }

        func usersOnline() async throws -> (Int, Bool) {
            let users = try await call("GET", "/v1/stats", token: readToken).1["users"] as? [String: Any] ?? [:]
            return (users["online"] as? Int ?? -1, users["exact"] as? Bool ?? false)
        }

        func socket(_ id: String) async throws -> (Int, [String: Any]) { try await call("GET", "/v1/sockets/\(id)", token: readToken) }
        func user(_ id: String) async throws -> [String: Any] { try await call("GET", "/v1/users/\(id)", token: readToken).1 }
    }

    func scenario(url: String) async throws {
        let serve = try ChildProcess(
            [try presenceBinary(), "serve", "--port", "0", "--redis", url, "--node-ttl", "2", "--heartbeat", "0.25", "--socket-history-retention", "600"],
            environment: ["PRESENCE_WRITE_TOKEN": writeToken, "PRESENCE_READ_TOKEN": readToken])
        defer { serve.signal(SIGTERM) }
        let api = API(port: try await serve.listeningPort())
        for node in ["A", "B"] { try await api.call("PUT", "/v1/nodes/\(node)", #"{"incarnation":"\#(node)-1"}"#) }
        let (status, _) = try await api.call("POST", "/v1/nodes/A/events", #"{"events":[{"type":"connect","socketId":"a1","userId":"u1"},{"type":"connect","socketId":"a2","userId":"u2"}]}"#)
        #expect(status == 200)
        try await api.call("POST", "/v1/nodes/B/events", #"{"events":[{"type":"connect","socketId":"b1","userId":"u1"}]}"#)

        try await withThrowingTaskGroup(of: Void.self) { group in
            // A and B heartbeat as HTTP reporters do, B until it "crashes".
            group.addTask { while !Task.isCancelled { _ = try? await api.call("PUT", "/v1/nodes/A", "{}"); try await Task.sleep(for: .milliseconds(250)) } }
            group.addTask {
                let stop = ContinuousClock.now + .seconds(1)
                while ContinuousClock.now < stop { _ = try? await api.call("PUT", "/v1/nodes/B", "{}"); try await Task.sleep(for: .milliseconds(250)) }
            }
            defer { group.cancelAll() }
            let online = try await api.usersOnline()
            #expect(online.0 == 2 && online.1, "u1 on two nodes counts once")

            // An explicit disconnect of u2's only socket.
            try await api.call("POST", "/v1/nodes/A/events", #"{"events":[{"type":"disconnect","socketId":"a2","userId":"u2"}]}"#)
            let u2 = try await api.user("u2")
            #expect(u2["online"] as? Bool == false)
            #expect((u2["lastSeenAt"] as? String)?.hasSuffix("Z") == true, "\(u2)")
            let (gone, a2) = try await api.socket("a2")
            #expect(gone == 404 && a2["alive"] as? Bool == false && a2["reason"] as? String == "disconnected")
            #expect(a2["disconnectedAt"] as? String != nil)
            #expect(try await api.usersOnline().0 == 1)
            let lookup = try await api.call("POST", "/v1/sockets/lookup", #"{"socketIds":["a1","a2","never"]}"#, token: readToken).1
            let sockets = lookup["sockets"] as? [[String: Any]] ?? []
            #expect(sockets.map { $0["reason"] as? String } == [nil, "disconnected", nil])
            #expect(sockets.map { $0["disconnectedAt"] != nil } == [false, true, false])
            #expect(try await api.user("u1")["lastSeenAt"] == nil, "online")

            // B stops heartbeating: the watcher announces it; b1 went node_down; u1 stays online on A.
            try await eventually("the watcher to remove B's socket") { try await api.socket("b1").1["reason"] as? String == "node_down" }
            let u1 = try await api.user("u1")
            #expect(u1["online"] as? Bool == true && u1["lastSeenAt"] == nil)
            #expect(try await api.usersOnline().0 == 1)
        }

        // A leaves gracefully (its heartbeats stopped first): node_left, and u1's last seen.
        #expect(try await api.call("DELETE", "/v1/nodes/A").0 == 204)
        #expect(try await api.socket("a1").1["reason"] as? String == "node_left")
        #expect(try await api.user("u1")["lastSeenAt"] as? String != nil)
        #expect(try await api.usersOnline().0 == 0)
    }
}
