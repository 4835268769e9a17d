import Foundation
import Presence
import PresenceTestSupport
import Testing

@Suite("RedisClient.serverInfo() against real redis-server and valkey-server")
struct RedisClientServerInfoTests {
    @Test("redis-server 7.0: redis 7.0.x with no native conditional command (and they are indeed refused)")
    func redis() async throws {
        try await withRedis(.standalone) { client in
            let server = try await client.serverInfo()
            #expect(server.product == .redis)
            #expect((server.version.major, server.version.minor) == (7, 0))
            #expect(server.capabilities.isEmpty)
            #expect(server.conditionalDelete == nil)
            let key = "caps:\(UUID().uuidString)"
            await #expect(throws: RedisError.self) { try await client.send("SET", key, "a", "IFEQ", "a") }
        }
    }

    @Test("valkey-server 9: valkey 9.x with all four, and each command works as the capability claims")
    func valkey() async throws {
        try await withRedis(.valkey) { client in
            let server = try await client.serverInfo()
            #expect(server.product == .valkey)
            #expect(server.version >= RedisServerInfo.Version(9, 0))
            #expect(server.capabilities == [.setIfEqual, .deleteIfEqual, .hashFieldTTL, .hashSetWithTTL])
            let key = "caps:\(UUID().uuidString)"
            _ = try await client.send("SET", key, "a")
            #expect(try await client.send("SET", key, "b", "IFEQ", "x").isNull)
            #expect(try await client.send("SET", key, "b", "IFEQ", "a").string == "OK")
            let delete = try #require(server.deleteIfEqual(key: key, value: "a"))
            #expect(try await client.send(delete).int == 0)
            #expect(try await client.send(try #require(server.deleteIfEqual(key: key, value: "b"))).int == 1)
            let hash = "caps:\(UUID().uuidString)"
            #expect(try await client.send("HSETEX", hash, "PX", "60000", "FIELDS", "1", "f", "v").int == 1)
            #expect(try await client.send("HPEXPIRE", hash, "60000", "FIELDS", "1", "f").array == [.integer(1)])
            _ = try await client.send("DEL", hash)
        }
    }

    @Test("a connected client answers from what it learned on connect, without a round trip")
    func cached() async throws {
        try await withRedis(.valkey) { client in
            _ = try await client.send("PING")
            let trips = client.metrics.roundTripCount
            #expect(try await client.serverInfo().product == .valkey)
            #expect(try await client.serverInfo().product == .valkey)
            #expect(client.metrics.roundTripCount == trips)
        }
    }

    @Test("a server that refuses INFO is still used; serverInfo() reports the refusal without a round trip")
    func infoRefused() async throws {
        let server = try await RedisServer.start(["--user", "default", "on", "nopass", "~*", "&*", "+@all", "-info"])
        try await withClient(server) { (client: RedisClient) async throws in
            #expect(try await client.send("PING").string == "PONG")
            let trips = client.metrics.roundTripCount
            await #expect { try await client.serverInfo() } throws: { error in
                guard let error = error as? RedisError else { return false }
                return error.code == .server && error.message.hasPrefix("NOPERM")
            }
            #expect(client.metrics.roundTripCount == trips)
        }
    }

    @Test("after a restart into another server on the same port, the reconnect learns the new one")
    func restartIntoAnotherServer() async throws {
        let before = try await RedisServer.start()
        let port = before.port
        try await withClient(before) { (client: RedisClient) async throws in
            #expect(try await client.serverInfo().product == .redis)
            before.stop()
            let after = try await RedisServer.start(port: port, server: try valkeyServer())
            defer { after.stop() }
            // The first command finds the old connection closed and drops it; the next reconnects
            // at once (a broken connection is not a failed connect: no backoff).
            var answered = false
            for _ in 0..<3 where !answered { answered = (try? await client.send("PING")) != nil }
            #expect(answered)
            let server = try await client.serverInfo()
            #expect(server.product == .valkey)
            #expect(server.capabilities.contains(.deleteIfEqual))
        }
    }

    @Test("a cluster mid-upgrade reports what every primary has; an all-Valkey cluster reports all four")
    func cluster() async throws {
        let valkey = try valkeyServer()
        try await withMixedCluster(servers: [nil, valkey]) { client in
            let primaries = try await client.primaryClients()
            let products = try await primaries.asyncMap { try await $0.serverInfo().product }
            #expect(Set(products) == [.redis, .valkey])
            let common = try await client.serverInfo()
            #expect(common.product == .redis)
            #expect((common.version.major, common.version.minor) == (7, 0))
            #expect(common.capabilities.isEmpty)
            #expect(common.conditionalDelete == nil)
        }
        try await withMixedCluster(servers: [valkey, valkey]) { client in
            let common = try await client.serverInfo()
            #expect(common.product == .valkey)
            #expect(common.capabilities == [.setIfEqual, .deleteIfEqual, .hashFieldTTL, .hashSetWithTTL])
            #expect(common.conditionalDelete == .delIfEq)
        }
    }

    @Test("a Redis Cluster of redis-server 7.0 reports redis 7.0 and no capability")
    func redisCluster() async throws {
        try await withRedis(.cluster) { client in
            let common = try await client.serverInfo()
            #expect(common.product == .redis)
            #expect(common.capabilities.isEmpty)
        }
    }
}
