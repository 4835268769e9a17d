import Foundation
import Glibc
@testable import Presence
import PresenceTestSupport
import Synchronization
import Testing

@Suite("Redis client against a real redis-server")
struct RedisClientTests {
    @Test("concurrent callers are auto-pipelined and each gets its own reply")
    func concurrentCallers() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<200 {
                    group.addTask { () async throws in
                        for step in 0..<25 {
                            let key = "k:\(caller):\(step)"
                            let value = "v-\(caller)-\(step)-\(UUID().uuidString)"
                            let results = await client.pipeline([RedisCommand("SET", key, value), RedisCommand("GET", key), RedisCommand("INCR", "counter:\(caller)")])
                            #expect(try results[1].get().string == value)
                            #expect(try results[2].get().int == step + 1)
                            #expect(try await client.send("GET", key).string == value)
                        }
                    }
                }
                try await group.waitForAll()
            }
            // 200 callers × 25 steps × 2 requests went out in far fewer writes than requests.
            #expect(client.metrics.commandCount >= 200 * 25 * 4)
            #expect(client.metrics.roundTripCount < 200 * 25 * 2)
        }
    }

    @Test("a connection killed mid-pipeline fails the unanswered commands, never mixes replies, then reconnects")
    func killedMidPipeline() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (admin: RedisClient) async throws in
            try await withClient(server) { (client: RedisClient) async throws in
                _ = try await client.send("SET", "a", "1")
                async let blocked = client.pipeline([RedisCommand("GET", "a"), RedisCommand("BLPOP", "never", "0"), RedisCommand("GET", "a")])
                // Wait until Redis shows the BLPOP blocking on our connection, then kill it.
                var id: String?
                _ = try await eventually("BLPOP to block") {
                    let list = try await admin.send("CLIENT", "LIST").string ?? ""
                    id = list.split(separator: "\n").first { $0.contains("cmd=blpop") }
                        .flatMap { $0.split(separator: " ").first { $0.hasPrefix("id=") } }
                        .map { String($0.dropFirst(3)) }
                    return id != nil
                }
                #expect(try await admin.send("CLIENT", "KILL", "ID", id!).int == 1)
                let results = await blocked
                #expect(try results[0].get().string == "1")
                for result in results[1...] {
                    #expect(throws: RedisError.self) { try result.get() }
                    if case .failure(let error) = result { #expect(error.code == .connectionLost) }
                }
                // A fresh context is made for the next command.
                #expect(try await client.send("GET", "a").string == "1")
            }
        }
    }

    @Test("connections killed under load: every caller gets its own reply or an error")
    func killedUnderLoad() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (admin: RedisClient) async throws in
            try await withClient(server) { (client: RedisClient) async throws in
                // The callers keep going until the killer is done, so every kill lands under load
                // however the two are scheduled (the callers alone can finish in a few milliseconds).
                let killing = KillSwitch()
                let (errors, killed) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                    for caller in 0..<40 {
                        group.addTask {
                            var errors = 0
                            var step = 0
                            while step < 150 || killing.running {
                                defer { step += 1 }
                                let value = "\(caller):\(step)"
                                switch await client.pipeline([RedisCommand("SET", "load:\(caller)", value), RedisCommand("GET", "load:\(caller)")])[1] {
                                case .success(let reply): #expect(reply.string == value)
                                case .failure(let error):
                                    #expect(error.isConnectivity)
                                    errors += 1
                                }
                            }
                            return (errors, 0)
                        }
                    }
                    group.addTask {
                        defer { killing.stop() }
                        var killed = 0
                        for _ in 0..<20 {
                            killed += try await admin.send("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").int ?? 0
                            try await Task.sleep(for: .milliseconds(5))
                        }
                        return (0, killed)
                    }
                    return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
                }
                // The scenario happened: connections were killed under load and callers saw it.
                #expect(killed > 0)
                #expect(errors > 0)
                #expect(try await client.send("PING").string == "PONG")
            }
        }
    }

    @Test("a command that outlives the command timeout fails with timeout and the client recovers")
    func commandTimeout() async throws {
        let server = try await RedisServer.start()
        var configuration = server.configuration
        configuration.commandTimeout = .milliseconds(200)
        try await withClient(configuration) { (client: RedisClient) async throws in
            await #expect { try await client.send("BLPOP", "never", "5") } throws: { ($0 as? RedisError)?.code == .timeout }
            #expect(try await client.send("PING").string == "PONG")
        }
    }

    @Test("a replica is refused with an error naming its primary")
    func replicaRefused() async throws {
        let primary = try await RedisServer.start()
        let replica = try await RedisServer.start(["--replicaof", "127.0.0.1", String(primary.port)])
        try await withClient(replica) { (client: RedisClient) async throws in
            await #expect {
                try await client.send("SET", "k", "v")
            } throws: { error in
                guard let error = error as? RedisError else { return false }
                return error.code == .replica && error.primary == "127.0.0.1:\(primary.port)" && error.message.contains("replica")
            }
        }
    }

    @Test("a primary demoted to a replica: READONLY becomes a replica error and the client reconnects to check")
    func demotedPrimary() async throws {
        let other = try await RedisServer.start()
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            _ = try await client.send("SET", "k", "v")
            _ = try await withClient(server) { admin in try await admin.send("REPLICAOF", "127.0.0.1", String(other.port)) }
            await #expect { try await client.send("SET", "k", "w") } throws: { ($0 as? RedisError)?.code == .replica }
            // The next command reconnects, sees ROLE slave and refuses.
            await #expect { try await client.send("GET", "k") } throws: { ($0 as? RedisError)?.code == .replica }
        }
    }

    @Test("AUTH and SELECT from the URL; a wrong password is an authentication error")
    func authAndSelect() async throws {
        let server = try await RedisServer.start(["--requirepass", "pw"])
        try await withClient(try RedisConfiguration(url: "redis://:pw@127.0.0.1:\(server.port)/3")) { (client: RedisClient) async throws in
            _ = try await client.send("SET", "in3", "yes")
            #expect(try await client.send("DBSIZE").int == 1)
        }
        try await withClient(try RedisConfiguration(url: "redis://:pw@127.0.0.1:\(server.port)/0")) { (client: RedisClient) async throws in
            #expect(try await client.send("GET", "in3").isNull)
        }
        try await withClient(try RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(server.port)")) { (client: RedisClient) async throws in
            await #expect { try await client.send("PING") } throws: { ($0 as? RedisError)?.code == .authenticationFailed }
        }
        try await withClient(try RedisConfiguration(url: "redis://127.0.0.1:\(server.port)")) { (client: RedisClient) async throws in
            await #expect { try await client.send("PING") } throws: { ($0 as? RedisError)?.code == .authenticationFailed }
        }
    }

    @Test("unix socket URL")
    func unixSocket() async throws {
        let server = try await RedisServer.start()
        try await withClient(try RedisConfiguration(url: "unix://\(server.socketPath)")) { (client: RedisClient) async throws in
            #expect(try await client.send("PING").string == "PONG")
        }
    }

    @Test("binary-safe arguments and replies")
    func binarySafe() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            var set = RedisCommand("SET", "bin")
            let bytes: [UInt8] = [0, 1, 2, 0, 255, 13, 10, 36]
            set.append(bytes: bytes)
            _ = try await client.send(set)
            #expect(try await client.send("GET", "bin") == .bulkString(bytes))
        }
    }

    @Test("scripts are called by SHA and reloaded after SCRIPT FLUSH")
    func scriptReload() async throws {
        let server = try await RedisServer.start()
        let script = RedisScript(name: "echo", source: "return ARGV[1]")
        try await withClient(server.configuration, scripts: [script]) { (client: RedisClient) async throws in
            #expect(try await client.send(script.call(keys: [], arguments: ["hi"])).string == "hi")
            #expect(try await client.send("SCRIPT", "LOAD", script.source).string == script.sha1)
            _ = try await client.send("SCRIPT", "FLUSH")
            let results = await client.pipeline([script.call(keys: [], arguments: ["a"]), RedisCommand("PING"), script.call(keys: [], arguments: ["b"])])
            #expect(try results.map { try $0.get().string } == ["a", "PONG", "b"])
        }
    }

    @Test("pipelines written ahead of the replies before them: each caller gets its own, after NOSCRIPT too")
    func pipelinesAhead() async throws {
        let server = try await RedisServer.start()
        let script = RedisScript(name: "push", source: "redis.call('RPUSH', KEYS[1], ARGV[1]) return ARGV[1]")
        var configuration = server.configuration
        configuration.maximumPipelineLength = 1  // one request per pipeline
        try await withClient(server) { (admin: RedisClient) async throws in
            try await withClient(configuration, scripts: [script]) { (client: RedisClient) async throws in
                _ = try await client.send("SCRIPT", "FLUSH")
                // A pop blocks the connection until the admin pushes; meanwhile the callers queue.
                let gate = Task { try await client.send("BLPOP", "gate", "30") }
                while try await !admin.send("CLIENT", "LIST").string!.contains("cmd=blpop") { await Task.yield() }
                let callers = 40
                try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                    for caller in 0..<callers {
                        group.addTask { (caller, try await client.send(script.call(keys: ["log"], arguments: ["\(caller)"])).string) }
                    }
                    while client.waitingRequests < callers { await Task.yield() }
                    _ = try await admin.send("RPUSH", "gate", "open")
                    let opened = try await gate.value
                    #expect(opened.array?.last?.string == "open")
                    // Each pipeline went out before the one ahead of it was answered, every one met
                    // NOSCRIPT, and each caller still got its own reply, its script run once.
                    for try await (caller, reply) in group { #expect(reply == "\(caller)") }
                }
                let log = try await admin.send("LRANGE", "log", "0", "-1").array?.compactMap(\.string) ?? []
                #expect(log.sorted() == (0..<callers).map { "\($0)" }.sorted())
            }
        }
    }

    @Test("transactions run all or nothing and report each command")
    func transaction() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            let ok = await client.transaction([RedisCommand("SET", "t", "1"), RedisCommand("INCR", "t"), RedisCommand("GET", "t")])
            #expect(try ok.map { try $0.get().string } == ["OK", "2", "2"])
            let failing = await client.transaction([RedisCommand("SET", "t", "x"), RedisCommand("INCR", "t")])
            #expect(try failing[0].get().string == "OK")
            #expect(throws: RedisError.self) { try failing[1].get() }
            let aborted = await client.transaction([RedisCommand("SET", "t", "y"), RedisCommand("NOSUCHCOMMAND")])
            #expect(aborted.allSatisfy { if case .failure = $0 { true } else { false } })
            #expect(try await client.send("GET", "t").string == "x")
        }
    }

    @Test("Redis down: a clear connection error, then fast failures during backoff, then recovery")
    func redisDown() async throws {
        // Held (bound, not listening: refused) until the server starts, so that no server another
        // test starts meanwhile answers on it.
        let reservation = try RedisServer.reservePort()
        let port = reservation.port
        var configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
        // The second PING must come within the backoff to fail fast: 3 s, so that no stall of a
        // loaded machine between two lines of this test can outlast it.
        configuration.minimumBackoff = .seconds(3)
        configuration.maximumBackoff = .seconds(3)
        try await withClient(configuration) { (client: RedisClient) async throws in
            await #expect { try await client.send("PING") } throws: { ($0 as? RedisError)?.code == .connectionFailed }
            await #expect { try await client.send("PING") } throws: { ($0 as? RedisError)?.code == .unavailable }
            reservation.release()
            let server = try await RedisServer.start(port: port)
            _ = try await eventually("client to reconnect") { try await client.send("PING").string == "PONG" }
            server.stop()
        }
    }

    @Test("commands that would not answer once are refused before anything is sent")
    func refusesUnmatchable() async throws {
        let server = try await RedisServer.start()
        try await withClient(server) { (client: RedisClient) async throws in
            for command in [RedisCommand([]), RedisCommand("SUBSCRIBE", "c"), RedisCommand("CLIENT", "REPLY", "OFF")] {
                let results = await client.pipeline([RedisCommand("SET", "x", "1"), command])
                #expect(results.allSatisfy { if case .failure(let error) = $0 { error.code == .invalidConfiguration } else { false } })
            }
            #expect(try await client.send("EXISTS", "x").int == 0)
            #expect(try await client.send("PING").string == "PONG")
        }
    }
}

/// Tells the callers of `killedUnderLoad` that the killer is still at work.
private final class KillSwitch: Sendable {
    private let state = Mutex(true)
    var running: Bool { state.withLock { $0 } }
    func stop() { state.withLock { $0 = false } }
}
