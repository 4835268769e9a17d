import Foundation
import Glibc
import Presence
@testable import PresenceAPI
import PresenceTestSupport
import Testing

@Suite("The presence command, run as a process")
struct CLITests {
    @Test("serve without --redis starts a private redis-server, serves, and stops it on SIGTERM")
    func embeddedDefault() async throws {
        // Port 0: the server picks a free port and logs it, so no other process can take it first.
        let serve = try ChildProcess([try presenceBinary(), "serve", "--port", "0"])
        let port = try await serve.listeningPort()
        let socketPath = serve.embeddedSocketPath
        #expect(serve.output.contains("embedded redis-server"))
        #expect(FileManager.default.fileExists(atPath: socketPath))
        try await withClient(RedisConfiguration(endpoint: .unix(path: socketPath))) { (client: RedisClient) async throws in
            #expect(try await client.send("PING").string == "PONG")
        }
        let health = try await RawHTTPResponse.send(port: port, "GET", "/readyz", headers: [("Host", "127.0.0.1:\(port)")])
        #expect(health.status == 200, "\(health.body.prefix(200))")
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)
        #expect(serve.output.contains("embedded redis-server stopped"))
        #expect(!FileManager.default.fileExists(atPath: socketPath))
    }

    @Test("serve refuses a non-loopback host without tokens, in one line")
    func refusesExposure() async throws {
        let serve = try ChildProcess([try presenceBinary(), "serve", "--host", "0.0.0.0", "--port", "0", "--redis", "redis://127.0.0.1:1"])
        #expect(await serve.wait() != 0)
        #expect(serve.output.contains("--insecure-no-auth"))
    }

    @Test("serve and sweep refuse a negative, infinite or non-numeric duration, naming it (no crash)", arguments: [
        ["serve", "--last-seen-retention", "-1"], ["serve", "--socket-history-retention", "inf"], ["serve", "--last-seen-retention", "nan"],
        ["serve", "--changes-retention", "inf"], ["serve", "--node-ttl", "nan"], ["serve", "--heartbeat", "1e300"], ["sweep", "--grace", "nan"],
    ])
    func refusesDuration(_ arguments: [String]) async throws {
        let port = arguments[0] == "serve" ? ["--port", "0"] : []
        let process = try ChildProcess([try presenceBinary()] + arguments + port + ["--redis", "redis://127.0.0.1:1"])
        #expect(await process.wait() == 64, "a usage error, not a crash: \(process.output)")
        #expect(process.output.contains(arguments[1]), "\(process.output)")
    }

    @Test("sweep from the CLI: dry run, then removal, then nothing; non-zero with a reason when Redis is a replica or away")
    func sweepCommand() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(1))
            let writer = PresenceWriter(client: client, configuration: configuration)
            let result = try await writer.heartbeat(NodeHeartbeat(nodeID: "cli-dead", incarnation: "i1", startedAt: Date()))
            let outcomes = await writer.apply(nodeID: "cli-dead", incarnation: "i1", events: (0..<7).map { .connect(socketID: "c\($0)", userID: "u", meta: [:], connectedAt: Date()) })
            #expect(try outcomes.map { try $0.get() } == Array(repeating: .created, count: 7))
            try await waitUntilRedisTime(client, passes: Int(result.expiresAt.timeIntervalSince1970 * 1000))

            let dry = try ChildProcess([try presenceBinary(), "sweep", "--redis", server.url, "--dry-run"])
            #expect(await dry.wait() == 0)
            #expect(dry.output.contains("would remove node cli-dead"), "\(dry.output)")
            #expect(try await client.send("EXISTS", PresenceKeys(prefix: "presence").socket("c1")).int == 1)

            let sweep = try ChildProcess([try presenceBinary(), "sweep", "--redis", server.url])
            #expect(await sweep.wait() == 0)
            #expect(sweep.output.contains("removed 1 nodes, 7 sockets"), "\(sweep.output)")
            #expect(try await allKeys(client).isEmpty)

            let again = try ChildProcess([try presenceBinary(), "sweep", "--json"], environment: ["PRESENCE_REDIS_URL": server.url])
            #expect(await again.wait() == 0)
            #expect(again.output.contains("\"sockets\":0"), "\(again.output)")
        }
        let replica = try await RedisServer.start(["--replicaof", "127.0.0.1", String(server.port)])
        let refused = try ChildProcess([try presenceBinary(), "sweep", "--redis", replica.url])
        #expect(await refused.wait() != 0)
        #expect(refused.output.contains("replica"), "\(refused.output)")
        let away = try ChildProcess([try presenceBinary(), "sweep", "--redis", "redis://127.0.0.1:\(try RedisServer.freePort())"])
        #expect(await away.wait() != 0)
        #expect(away.output.contains("cannot connect"), "\(away.output)")
        #expect(away.output.split(separator: "\n").count <= 2)
    }

    @Test("nodes and lookup print tables, or JSON for scripts; lookup says when and why a socket went")
    func operatorCommands() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let writer = PresenceWriter(client: client, configuration: PresenceConfiguration())
            _ = try await writer.heartbeat(NodeHeartbeat(nodeID: "table-node", incarnation: "i", address: "h:1", startedAt: Date(), socketCount: 1))
            let outcomes = await writer.apply(nodeID: "table-node", incarnation: "i", events: [.connect(socketID: "t1", userID: "ann", meta: [:], connectedAt: Date())])
            #expect(try outcomes.map { try $0.get() } == [.created])
            let nodes = try ChildProcess([try presenceBinary(), "nodes", "--redis", server.url])
            #expect(await nodes.wait() == 0)
            #expect(nodes.output.contains("NODE") && nodes.output.contains("table-node") && nodes.output.contains("alive"))
            let lookup = try ChildProcess([try presenceBinary(), "lookup", "t1", "--json", "--redis", server.url])
            #expect(await lookup.wait() == 0)
            let object = try JSONSerialization.jsonObject(with: Data(lookup.output.utf8)) as? [String: Any]
            #expect(object?["nodeId"] as? String == "table-node" && object?["alive"] as? Bool == true)
            let unknown = try ChildProcess([try presenceBinary(), "lookup", "nope", "--redis", server.url])
            #expect(await unknown.wait() == 1)
            #expect(unknown.output.contains("not alive") && !unknown.output.contains("went at"))

            _ = await writer.apply(nodeID: "table-node", incarnation: "i", events: [.disconnect(socketID: "t1", userID: "ann")])
            let gone = try ChildProcess([try presenceBinary(), "lookup", "t1", "--redis", server.url])
            #expect(await gone.wait() == 1)
            #expect(gone.output.contains("not alive: it went at") && gone.output.contains("(disconnected)"), "\(gone.output)")
            let goneJSON = try ChildProcess([try presenceBinary(), "lookup", "t1", "--json", "--redis", server.url])
            #expect(await goneJSON.wait() == 1)
            let departure = try JSONSerialization.jsonObject(with: Data(goneJSON.output.utf8)) as? [String: Any]
            #expect(departure?["alive"] as? Bool == false && departure?["reason"] as? String == "disconnected")
            #expect((departure?["disconnectedAt"] as? String).flatMap(Timestamp.parse) != nil)
        }
    }
}
