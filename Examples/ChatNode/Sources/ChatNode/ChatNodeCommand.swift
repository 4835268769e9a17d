import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Presence

/// `chat-node`: a websocket server that embeds Presence.
@main
struct ChatNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-node",
        abstract: "A Hummingbird websocket node that reports its sockets to the presence registry and routes messages to any socket of the cluster.",
        discussion: """
            GET  /ws?user=ID           websocket; first message {"type":"welcome",...}
                 &contact=ID           (repeatable) told {"type":"presence","userId":ID,"online":true|false}
            POST /send/{socketId}      body = text, written to that socket on any node
            POST /deliver/{socketId}   internal: what other nodes forward to
            GET  /local?limit=N        this process's own sockets
            """)

    @Option(help: "Port to listen on (127.0.0.1 only).")
    var port: Int = 8081

    @Option(name: .customLong("node-id"), help: "The node's id in the registry (default chat-PORT).")
    var nodeID: String?

    @Option(help: "Redis URL, as presence serve --redis: redis://[user:password@]host:port/db, unix:///path or redis-sentinel://… (env PRESENCE_REDIS_URL, default redis://127.0.0.1:6379).")
    var redis: String?

    @Option(help: "Advertised address other nodes forward to (default http://127.0.0.1:PORT).")
    var address: String?

    @Option(help: "Heartbeat interval in seconds.")
    var heartbeat: Double = 2

    @Option(name: .customLong("node-ttl"), help: "Seconds after its last heartbeat this node and its sockets read as dead.")
    var nodeTTL: Double = 6

    @Option(name: .customLong("key-prefix"), help: "Registry key prefix.")
    var keyPrefix: String = "presence"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func options() throws -> ChatNodeOptions {
        var options = ChatNodeOptions()
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1–65535") }
        options.port = port
        options.nodeID = nodeID ?? "chat-\(port)"
        options.redisURL = redis ?? ProcessInfo.processInfo.environment["PRESENCE_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? options.redisURL
        do { _ = try RedisConfiguration(url: options.redisURL) } catch let error as RedisError { throw ValidationError(error.message) }
        options.address = address ?? "http://127.0.0.1:\(port)"
        guard NodeAddress(options.address) != nil else { throw ValidationError("--address must be http://host:port or host:port") }
        options.presence.keyPrefix = keyPrefix
        options.presence.heartbeatInterval = .milliseconds(Int(heartbeat * 1000))
        options.presence.nodeTTL = .milliseconds(Int(nodeTTL * 1000))
        do { try options.presence.validate() } catch { throw ValidationError(error.message) }
        do { try PresenceID.validate(options.nodeID, field: "--node-id") } catch { throw ValidationError(error.message) }
        return options
    }

    func run() async throws {
        let options = try self.options()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let app = try buildApplication(options, logger: Logger(label: "chat-node"))
        try await app.runService()
    }
}
