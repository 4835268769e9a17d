import ArgumentParser
import Foundation
import Logging
import Presence

/// Options shared by every command that talks to Redis.
struct RedisOptions: ParsableArguments {
    @Option(name: .long, help: "Redis URL: redis://[user:password@]host:port/db, unix:///path, redis-sentinel://host:port,…/MASTER or redis-cluster://host:port,… (env PRESENCE_REDIS_URL).")
    var redis: String?

    @Option(name: .long, help: "Key prefix (env PRESENCE_KEY_PREFIX, default presence).")
    var keyPrefix: String?

    @Option(name: .long, help: "How socket events are written: automatic (the server's native conditional commands where it has them: Valkey 9, Redis 8.4; else scripts) or scripts (env PRESENCE_WRITE_COMMANDS, default automatic).")
    var writeCommands: String?

    @Option(name: .long, help: "Record the change stream, on or off (env PRESENCE_CHANGES, default on; with it on, socket events are written by script on every server).")
    var changes: String?

    @Option(name: .customLong("changes-retention"), help: "Seconds changes stay in the stream (env PRESENCE_CHANGES_RETENTION, default 3600).")
    var changesRetention: Double?

    @Option(name: .customLong("last-seen-retention"), help: "Seconds a user's last-seen time stays after its last socket went; 0 keeps none; needs --changes on (env PRESENCE_LAST_SEEN_RETENTION, default 2592000: 30 days).")
    var lastSeenRetention: Double?

    @Option(name: .customLong("socket-history-retention"), help: "Seconds a gone socket's disconnectedAt and reason stay; 0 keeps none; needs --changes on (env PRESENCE_SOCKET_HISTORY_RETENTION, default 86400: 1 day).")
    var socketHistoryRetention: Double?

    var url: String? { redis ?? Environment.string("PRESENCE_REDIS_URL") }

    func presenceConfiguration(nodeTTL: Double? = nil, heartbeat: Double? = nil) throws -> PresenceConfiguration {
        var configuration = PresenceConfiguration()
        configuration.keyPrefix = keyPrefix ?? Environment.string("PRESENCE_KEY_PREFIX") ?? configuration.keyPrefix
        if let name = writeCommands ?? Environment.string("PRESENCE_WRITE_COMMANDS") {
            guard let commands = PresenceConfiguration.WriteCommands(rawValue: name) else {
                throw ValidationError("--write-commands must be automatic or scripts, not \(name)")
            }
            configuration.writeCommands = commands
        }
        switch changes ?? Environment.string("PRESENCE_CHANGES") ?? "on" {
        case "on": configuration.changes = true
        case "off": configuration.changes = false
        case let other: throw ValidationError("--changes must be on or off, not \(other)")
        }
        if let retention = try seconds(changesRetention, "PRESENCE_CHANGES_RETENTION", flag: "--changes-retention") {
            configuration.changesRetention = retention
        }
        if let retention = try seconds(lastSeenRetention, "PRESENCE_LAST_SEEN_RETENTION", flag: "--last-seen-retention") {
            configuration.lastSeenRetention = retention
        }
        if let retention = try seconds(socketHistoryRetention, "PRESENCE_SOCKET_HISTORY_RETENTION", flag: "--socket-history-retention") {
            configuration.socketHistoryRetention = retention
        }
        if let nodeTTL {
            configuration.nodeTTL = try Self.duration(nodeTTL, flag: "--node-ttl")
            configuration.socketTTL = max(configuration.socketTTL, configuration.nodeTTL)
        }
        if let heartbeat { configuration.heartbeatInterval = try Self.duration(heartbeat, flag: "--heartbeat") }
        do { try configuration.validate() } catch { throw ValidationError(error.message) }
        return configuration
    }

    /// A retention in seconds from its option or environment variable: finite and not negative.
    private func seconds(_ option: Double?, _ variable: String, flag: String) throws -> Duration? {
        let text = Environment.string(variable)
        guard let value = option ?? text.flatMap(Double.init) else {
            if let text { throw ValidationError("\(variable) must be a number of seconds, not \(text)") }
            return nil
        }
        return try Self.duration(value, flag: flag)
    }

    /// Seconds as a duration: finite, not negative, at most 100 years (a value `Int` milliseconds
    /// cannot hold would crash the conversion). Ranges beyond that are the configuration's to check.
    static func duration(_ value: Double, flag: String) throws -> Duration {
        guard value.isFinite, value >= 0, value <= 100 * 365 * 86_400 else {
            throw ValidationError("\(flag) must be 0 or more seconds (at most 100 years), not \(value)")
        }
        return .milliseconds(Int(value * 1000))
    }

    /// Runs `body` with a connected client for the URL (required here).
    func withClient<T: Sendable>(_ body: (RedisClient) async throws -> T) async throws -> T {
        guard let url else { throw ValidationError("no Redis given: pass --redis URL or set PRESENCE_REDIS_URL") }
        let configuration: RedisConfiguration
        do { configuration = try RedisConfiguration(url: url) } catch let error as RedisError { throw ValidationError(error.message) }
        var logger = Logger(label: "presence")
        logger.logLevel = .error
        let client = RedisClient(configuration: configuration, scripts: PresenceScripts.all, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// Environment fallbacks for options.
enum Environment {
    static func string(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    static func list(_ name: String) -> [String] {
        string(name)?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } ?? []
    }
}

/// Prints one line to standard error and exits non-zero: the operator commands' failure mode.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ error: any Error) {
        switch error {
        case let error as RedisError: description = error.message
        case let error as PresenceError: description = error.message
        default: description = "\(error)"
        }
    }
}
