import Foundation
import Logging
import ServiceLifecycle

/// A Redis client over hiredis 0.14, safe to share between any number of tasks.
///
/// One connection, one dedicated I/O thread: commands from concurrent callers that arrive while a
/// pipeline is on the wire are written together as the next pipeline (auto-pipelining) and each
/// caller receives its own reply, matched by position. When the connection breaks, every command
/// not yet answered fails with ``RedisError/Code/connectionLost``; the hiredis context is dropped
/// and a new one is made for the next command, with exponential backoff between failed attempts.
///
/// With ``RedisConfiguration/cluster`` set it is a Redis Cluster client: every command goes to
/// the node serving its keys' hash slot (``RedisCommand/keys``), a pipeline spanning slots is split
/// per node and sent concurrently with its replies returned in order, `MOVED`/`ASK` are followed,
/// `TRYAGAIN`/`CLUSTERDOWN`/`LOADING`/`MASTERDOWN` and unreachable nodes retried with a bounded
/// backoff, and the topology is learned from `CLUSTER SHARDS` (see `RedisClusterStateMachine`).
///
/// The client is a `Service`: commands are sent while ``run()`` runs (start it in a
/// `ServiceGroup` or a task group). Commands sent before `run()` wait for it; after it returns
/// they fail with ``RedisError/Code/shutdown``.
public final class RedisClient: Service, Sendable {
    /// Where and how the client connects.
    public let configuration: RedisConfiguration
    /// Counters for monitoring.
    public let metrics: RedisClientMetrics
    /// Redis Cluster: the slots whose primary failed over while this client ran (a node writes the
    /// sockets in them again; see ``PresenceNode``). Never changes on a standalone server.
    public let failovers = RedisFailovers()
    private let scripts: [RedisScript]
    private let queue = RedisRequestQueue()

    /// Requests waiting for the I/O thread (for tests).
    var waitingRequests: Int { queue.count }
    /// What the live connection learned of its server (standalone and Sentinel; a cluster asks its
    /// node clients).
    let serverInfoCache = RedisServerInfoCache()
    private let router: RedisClusterRouter?
    private let logger: Logger

    /// Creates a client. Nothing connects until ``run()`` runs and a command is sent.
    /// - Parameters:
    ///   - scripts: Lua scripts to load on every connection, so `EVALSHA` finds them.
    public convenience init(configuration: RedisConfiguration, scripts: [RedisScript] = [], logger: Logger = Logger(label: "presence.redis")) {
        self.init(configuration: configuration, scripts: scripts, metrics: RedisClientMetrics(), logger: logger)
    }

    init(configuration: RedisConfiguration, scripts: [RedisScript], metrics: RedisClientMetrics, logger: Logger) {
        self.configuration = configuration
        self.scripts = scripts
        self.metrics = metrics
        self.logger = logger
        let failovers = self.failovers
        router = configuration.cluster.map {
            RedisClusterRouter(configuration: configuration, cluster: $0, scripts: scripts, metrics: metrics, failovers: failovers, logger: logger)
        }
    }

    /// Whether this is a Redis Cluster client.
    public var isCluster: Bool { router != nil }

    /// Runs the I/O thread until graceful shutdown or cancellation, then answers what is still
    /// queued and stops.
    public func run() async throws {
        if let router { return try await router.run() }
        let loop = RedisIOLoop(configuration: configuration, scripts: scripts, queue: queue, metrics: metrics, serverInfo: serverInfoCache, logger: logger)
        let queue = self.queue
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    loop.run()
                    finished.resume()
                }
                thread.name = "presence-redis"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            queue.close()
        }
    }

    /// Sends one command and returns its reply.
    /// - Throws: ``RedisError``: ``RedisError/Code/server`` for an error reply, or a connection code.
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        try await pipeline([command])[0].get()
    }

    /// Sends one command given as text arguments, e.g. `send("HGET", key, field)`.
    public func send(_ name: String, _ arguments: String...) async throws -> RedisValue {
        try await send(RedisCommand([name] + arguments))
    }

    /// Sends commands back to back in one write and returns one result per command, in order.
    /// Commands of other callers may be written before or after them, never between.
    public func pipeline(_ commands: [RedisCommand]) async -> [Result<RedisValue, RedisError>] {
        if commands.isEmpty { return [] }
        if let refusal = Self.refusal(commands) { return commands.map { _ in .failure(refusal) } }
        if let router { return await router.pipeline(commands, transaction: false) }
        return await withCheckedContinuation { continuation in
            queue.enqueue(.init(commands: commands, transaction: false, continuation: continuation))
        }
    }

    /// Sends commands inside `MULTI`/`EXEC` and returns one result per command. All run, or none
    /// when one is malformed (each then fails) or the connection breaks before `EXEC`.
    public func transaction(_ commands: [RedisCommand]) async -> [Result<RedisValue, RedisError>] {
        if commands.isEmpty { return [] }
        if let refusal = Self.refusal(commands) { return commands.map { _ in .failure(refusal) } }
        if let router { return await router.pipeline(commands, transaction: true) }
        return await withCheckedContinuation { continuation in
            queue.enqueue(.init(commands: commands, transaction: true, continuation: continuation))
        }
    }

    /// Which keys share a node: one group number per key, equal for keys served by the same primary
    /// (all 0 on a standalone server). Work grouped this way can go in one call per node.
    public func nodeGroups(of keys: [String]) async -> [Int] {
        guard let router else { return keys.map { _ in 0 } }
        var numbers: [RedisConfiguration.Endpoint: Int] = [:]
        return await router.primaries(of: keys).map { endpoint in
            guard let endpoint else { return -1 }
            if let number = numbers[endpoint] { return number }
            numbers[endpoint] = numbers.count
            return numbers.count - 1
        }
    }

    /// One client per primary (just this one on a standalone server), for commands that must visit
    /// every node, such as `SCAN`.
    /// - Throws: ``RedisError`` when a cluster's topology cannot be learned.
    public func primaryClients() async throws -> [RedisClient] {
        guard let router else { return [self] }
        return try await router.primaryClients()
    }

    /// Commands that do not answer exactly once would shift every later reply onto the wrong
    /// caller: they are refused before anything is sent.
    static func refusal(_ commands: [RedisCommand]) -> RedisError? {
        for command in commands {
            if command.count == 0 { return RedisError(.invalidConfiguration, "an empty command cannot be sent") }
            // Compared in place: this runs for every command sent.
            guard let refused = unanswered.first(where: command.isNamed) else { continue }
            if refused != "CLIENT" || command.arguments.dropFirst().first?.uppercased() == "REPLY" {
                return RedisError(.invalidConfiguration, "\(command.name) does not answer once per command and cannot be pipelined")
            }
        }
        return nil
    }

    /// Commands that answer more or less than once (`CLIENT` only as `CLIENT REPLY`).
    private static let unanswered = ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SYNC", "PSYNC", "CLIENT"]
}
