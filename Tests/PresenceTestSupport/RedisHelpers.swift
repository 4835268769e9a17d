import Foundation
import Logging
import Presence

/// Keys in the database (every primary of a cluster), by SCAN; without `changes`, those of the
/// change stream (its streams, the gone-node marks, last-seen times, tombstones and counters, kept
/// for their retention by design) are left out.
public func allKeys(_ client: RedisClient, changes: Bool = false) async throws -> [String] {
    var keys: [String] = []
    for primary in try await client.primaryClients() {
        var cursor = "0"
        repeat {
            let page = try await primary.send("SCAN", cursor, "COUNT", "1000").array!
            cursor = page[0].string!
            let listed = page[1].array!.compactMap(\.string)
            if changes {
                keys += listed
                continue
            }
            // A record key holding a tombstone (written over the record) is the change stream's too.
            let records = listed.filter { $0.contains(":r:{") }
            let values = try await primary.pipeline(records.map { RedisCommand("GET", $0) }).map { try $0.get() }
            let tombstones = Set(zip(records, values).compactMap { key, value in value.string.map { $0.contains("\u{1F}") } == false ? key : nil })
            keys += listed.filter { !tombstones.contains($0) }
        } while cursor != "0"
    }
    return changes ? keys : keys.filter { !isChangeStreamKey($0) }
}

/// Whether `key` (``PresenceKeys/socket(_:)``) holds a socket's record: not absent, nor a
/// tombstone written over the record when it went.
public func hasRecord(_ client: RedisClient, _ key: String) async throws -> Bool {
    try await client.send("GET", key).string?.contains("\u{1F}") ?? false
}

/// Whether `key` belongs to the change stream (`docs/changes.md`): a stream, the gone hash, the
/// watcher lease, or what its script calls keep beside it for their retention (last-seen times,
/// socket tombstones, users-online counters: `docs/data-model.md`).
public func isChangeStreamKey(_ key: String) -> Bool {
    key.contains(":changes") || key.hasSuffix("{registry}:gone") || key.hasSuffix("{registry}:watcher")
        || key.contains(":ls:{") || key.contains(":g:{") || key.hasSuffix("{registry}:online") || key.contains(":online:{")
}

/// Redis server time in milliseconds: the clock of the node holding the liveness table, which
/// the liveness rule reads.
public func redisNow(_ client: RedisClient) async throws -> Int {
    let parts = try await client.send(RedisCommand("TIME").routed(by: PresenceKeys(prefix: "presence").nodeTable)).array!
    return parts[0].int! * 1000 + parts[1].int! / 1000
}

/// Sleeps until the Redis clock passes `milliseconds` (waiting on a TTL is waiting on time).
public func waitUntilRedisTime(_ client: RedisClient, passes milliseconds: Int) async throws {
    while true {
        let now = try await redisNow(client)
        if now > milliseconds { return }
        try await Task.sleep(for: .milliseconds(milliseconds - now + 5))
    }
}

/// Polls `condition` every `interval` until it holds; fails after `timeout`. For state that
/// converges through background writes the test does not control (resync after Redis came back).
@discardableResult
public func eventually(
    timeout: Duration = .seconds(20), _ what: String, every interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async throws -> Duration {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < timeout {
        if (try? await condition()) == true { return clock.now - start }
        try await Task.sleep(for: interval)
    }
    struct Timeout: Error, CustomStringConvertible { let description: String }
    throw Timeout(description: "timed out after \(timeout) waiting for: \(what)")
}

/// Runs `body` with a running client for `configuration`.
public func withClient<T: Sendable>(
    _ configuration: RedisConfiguration, scripts: [RedisScript] = PresenceScripts.all,
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let client = RedisClient(configuration: configuration, scripts: scripts, logger: quietLogger())
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        do {
            let result = try await body(client)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

public func withClient<T: Sendable>(_ server: RedisServer, _ body: (RedisClient) async throws -> T) async throws -> T {
    try await withClient(server.configuration, body)
}

/// A logger that stays quiet unless PRESENCE_TEST_LOG names a level.
public func quietLogger(_ label: String = "test") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["PRESENCE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}
