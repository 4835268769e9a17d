import Foundation
import Glibc
import Presence
import PresenceEmbedded
import PresenceTestSupport
import Testing

/// A node written in another language: registers, reports its sockets in one batch, heartbeats.
private let reporterScript = #"""
import json, sys, time, urllib.request
base, node, count, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def call(method, path, body=None):
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request).read() or b"{}")
call("PUT", f"/v1/nodes/{node}", {"address": f"127.0.0.1:{4000 + len(node)}", "incarnation": f"{node}-{time.time()}"})
call("POST", f"/v1/nodes/{node}/events", {"events": [{"type": "connect", "socketId": f"{node}-s{i}", "userId": f"u{i}"} for i in range(count)]})
print("reported", flush=True)
while True:
    time.sleep(0.25)
    call("PUT", f"/v1/nodes/{node}")
"""#

@Suite("Nodes in another language reporting over HTTP")
struct ReporterProcessesTests {
    @Test("three reporters, one killed: its sockets read dead within TTL + one heartbeat, the rest stay; sweep leaves no key of it")
    func killedReporter() async throws {
        let serve = try ChildProcess([try presenceBinary(), "serve", "--port", "0", "--node-ttl", "2", "--heartbeat", "0.25"],
                                     environment: ["PRESENCE_WRITE_TOKEN": writeToken, "PRESENCE_READ_TOKEN": readToken])
        defer { serve.signal(SIGTERM) }
        let port = try await serve.listeningPort()
        let socketPath = serve.embeddedSocketPath
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("reporter-\(UUID().uuidString.prefix(8)).py")
        try reporterScript.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let python = try RedisServerProcess.executable("python3")
        let reporters = try ["alpha", "beta", "gamma"].map {
            try ChildProcess([python, script.path, "http://127.0.0.1:\(port)", $0, "50", writeToken])
        }
        defer { for reporter in reporters { reporter.signal(SIGKILL) } }
        try await eventually("every reporter to report") { reporters.allSatisfy { $0.output.contains("reported") } }

        try await withClient(RedisConfiguration(endpoint: .unix(path: socketPath))) { (client: RedisClient) async throws in
            let registry = PresenceRegistry(client: client, configuration: PresenceConfiguration(heartbeatInterval: .milliseconds(250), nodeTTL: .seconds(2)))
            for node in ["alpha", "beta", "gamma"] {
                #expect(try await registry.sockets((0..<50).map { "\(node)-s\($0)" }).allSatisfy { $0?.nodeID == node })
            }
            reporters[1].signal(SIGKILL)
            _ = await reporters[1].wait()
            let killedAt = try await redisNow(client)
            let beta = try #require(try await registry.node("beta"))
            // Dead by its last heartbeat + TTL, which is within TTL + one heartbeat of the kill.
            let deadline = Int(beta.expiresAt.timeIntervalSince1970 * 1000)
            #expect(deadline <= killedAt + 2_000 + 250)
            try await waitUntilRedisTime(client, passes: deadline)
            let answer = try await RawHTTPResponse.send(
                port: port, "GET", "/v1/sockets/beta-s7", headers: [("Host", "127.0.0.1:\(port)"), ("Authorization", "Bearer \(readToken)")])
            #expect(answer.status == 404, "\(answer.body.prefix(200))")
            #expect(try await registry.sockets((0..<50).map { "beta-s\($0)" }).allSatisfy { $0 == nil })
            for node in ["alpha", "gamma"] {
                #expect(try await registry.sockets((0..<50).map { "\(node)-s\($0)" }).allSatisfy { $0?.nodeID == node })
            }

            let sweep = try ChildProcess([try presenceBinary(), "sweep", "--redis", "unix://\(socketPath)"])
            #expect(await sweep.wait() == 0)
            #expect(sweep.output.contains("removed node beta"), "\(sweep.output)")
            let left = try await allKeys(client)
            #expect(!left.contains { $0.contains("beta") }, "\(left.filter { $0.contains("beta") })")
            #expect(try await client.send("HEXISTS", "presence:{registry}:nodes", "beta").int == 0)
            for i in 0..<50 {
                let fields = try await client.send("HKEYS", "presence:u:{u\(i)}").array?.compactMap(\.string) ?? []
                #expect(!fields.contains { $0.hasPrefix("beta-s\(i)\u{1F}") }, "u\(i) still has beta's entry")
                #expect(fields.count == 2, "u\(i) lost alpha's or gamma's entry: \(fields)")
            }
            #expect(try await registry.nodes().map(\.nodeID) == ["alpha", "gamma"])
        }
    }
}
