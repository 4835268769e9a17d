import Foundation
import Presence
import PresenceEmbedded

/// A primary, one replica and three sentinels on free loopback ports, for failover tests; all five
/// are processes of one server kind (Redis 7.0 or Valkey 9, whose server runs as a sentinel too).
public final class SentinelCluster: Sendable {
    public static let masterName = "presence-test"
    public let primary: RedisServer
    public let replica: RedisServer
    public let sentinelPorts: [Int]
    private let sentinels: [RedisServerProcess]
    private let directory: URL

    /// `redis-sentinel://` URL listing the three sentinels.
    public var url: String {
        "redis-sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(Self.masterName)"
    }

    public static func start(_ kind: RedisServer.Kind = .redis) async throws -> SentinelCluster {
        let binary = try kind.binary()
        let primary = try await RedisServer.start(server: binary)
        let replica = try await RedisServer.start(["--replicaof", "127.0.0.1", String(primary.port)], server: binary)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("presence-sentinel-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var ports: [Int] = []
        var sentinels: [RedisServerProcess] = []
        for index in 0..<3 {
            // A port found free may be taken before the sentinel binds it (another test's process or
            // an outgoing connection): try another, as RedisServer.start does.
            var attempt = 0
            while true {
                attempt += 1
                let port = try RedisServer.freePort()
                let file = directory.appendingPathComponent("sentinel-\(index).conf")
                try """
                    port \(port)
                    bind 127.0.0.1
                    dir \(directory.path)
                    sentinel monitor \(masterName) 127.0.0.1 \(primary.port) 2
                    sentinel down-after-milliseconds \(masterName) 1000
                    sentinel failover-timeout \(masterName) 4000
                    sentinel parallel-syncs \(masterName) 1

                    """.write(to: file, atomically: true, encoding: .utf8)
                do {
                    sentinels.append(try await RedisServerProcess.launch([file.path, "--sentinel"], readyMarker: "+monitor master", server: binary))
                    ports.append(port)
                    break
                } catch where attempt < 5 {
                    continue
                }
            }
        }
        let cluster = SentinelCluster(primary: primary, replica: replica, sentinelPorts: ports, sentinels: sentinels, directory: directory)
        try await cluster.waitUntilSettled()
        return cluster
    }

    private init(primary: RedisServer, replica: RedisServer, sentinelPorts: [Int], sentinels: [RedisServerProcess], directory: URL) {
        self.primary = primary
        self.replica = replica
        self.sentinelPorts = sentinelPorts
        self.sentinels = sentinels
        self.directory = directory
    }

    /// Waits until every sentinel knows the other two and the replica: only then can they fail over.
    public func waitUntilSettled() async throws {
        for port in sentinelPorts {
            let configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), requirePrimary: false)
            _ = try await withClient(configuration, scripts: []) { (client: RedisClient) async throws in
                try await eventually(timeout: .seconds(30), "sentinel \(port) to see its peers and the replica") {
                    let fields = try await client.send("SENTINEL", "MASTER", Self.masterName).fieldMap
                    return fields["num-other-sentinels"] == "2" && fields["num-slaves"] == "1"
                }
            }
        }
    }

    /// The primary's port as the first sentinel reports it now.
    public func currentPrimaryPort() async throws -> Int? {
        let configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: sentinelPorts[0]), requirePrimary: false)
        return try await withClient(configuration, scripts: []) { (client: RedisClient) async throws in
            try await client.send("SENTINEL", "get-master-addr-by-name", Self.masterName).array?.last?.int
        }
    }

    deinit {
        for sentinel in sentinels { sentinel.stop() }
        try? FileManager.default.removeItem(at: directory)
    }
}
