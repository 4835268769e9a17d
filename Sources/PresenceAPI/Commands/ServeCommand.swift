import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Presence
import PresenceEmbedded
import ServiceLifecycle

/// `presence serve`: the HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (without --redis: on a private embedded redis-server).")

    @OptionGroup var redisOptions: RedisOptions

    @Option(help: "Address to bind (env PRESENCE_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port (env PRESENCE_PORT, default 8080; 0 picks a free one).")
    var port: Int?

    @Option(name: .customLong("node-ttl"), help: "Seconds after its last heartbeat a node reads as dead (env PRESENCE_NODE_TTL, default 6).")
    var nodeTTL: Double?

    @Option(help: "Heartbeat interval advised to HTTP reporters, seconds (env PRESENCE_HEARTBEAT, default 2).")
    var heartbeat: Double?

    @Option(name: .customLong("token-file"), help: "File with lines read:TOKEN / write:TOKEN (env PRESENCE_TOKEN_FILE).")
    var tokenFile: String?

    @Flag(name: .customLong("insecure-no-auth"), help: "Allow a non-loopback --host without any token.")
    var insecureNoAuth = false

    @Option(name: .customLong("cors-origin"), help: ArgumentHelp("Allow browser pages of ORIGIN (scheme://host[:port]) to call the API (CORS); repeatable (env PRESENCE_CORS_ORIGIN, comma-separated). Default: none.", valueName: "origin"))
    var corsOrigins: [String] = []

    @Option(name: .customLong("read-from"), help: "primary or replicas: where queries are answered (env PRESENCE_READ_FROM, default primary; replicas needs a redis-sentinel:// or redis-cluster:// URL and may lag).")
    var readFrom: String?

    @Option(name: .customLong("webhook"), help: ArgumentHelp("POST every change to URL (http or https) in signed JSON batches, at least once; repeatable (env PRESENCE_WEBHOOK, comma-separated).", valueName: "url"))
    var webhooks: [String] = []

    @Option(name: .customLong("webhook-types"), help: ArgumentHelp("Only these change kinds go to the webhooks, comma-separated (env PRESENCE_WEBHOOK_TYPES, default all).", valueName: "kinds"))
    var webhookTypes: String?

    @Option(name: .customLong("webhook-secret"), help: ArgumentHelp("Key of the webhooks' Presence-Signature (HMAC-SHA256); required with --webhook. Prefer env PRESENCE_WEBHOOK_SECRET: arguments show in ps.", valueName: "secret"))
    var webhookSecret: String?

    @Option(name: .customLong("webhook-timeout"), help: "Seconds one webhook POST may take (env PRESENCE_WEBHOOK_TIMEOUT, default 10).")
    var webhookTimeout: Double?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error (env PRESENCE_LOG_LEVEL, default info).")
    var logLevel: String?

    func options() throws -> ServeOptions {
        var options = ServeOptions()
        options.host = host ?? Environment.string("PRESENCE_HOST") ?? options.host
        if options.host.hasPrefix("["), options.host.hasSuffix("]") { options.host = String(options.host.dropFirst().dropLast()) }  // [::1]
        if let port = port ?? Environment.string("PRESENCE_PORT").flatMap(Int.init) {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0–65535") }
            options.port = port
        }
        options.redisURL = redisOptions.url
        let ttl = nodeTTL ?? Environment.string("PRESENCE_NODE_TTL").flatMap(Double.init)
        let interval = heartbeat ?? Environment.string("PRESENCE_HEARTBEAT").flatMap(Double.init)
        options.presence = try redisOptions.presenceConfiguration(nodeTTL: ttl, heartbeat: interval)
        var read = Environment.list("PRESENCE_READ_TOKEN")
        var write = Environment.list("PRESENCE_WRITE_TOKEN")
        if let path = tokenFile ?? Environment.string("PRESENCE_TOKEN_FILE") {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read the token file \(path)") }
            let parsed = try AccessTokens.parse(file: contents)
            read += parsed.read
            write += parsed.write
        }
        options.tokens = AccessTokens(read: read, write: write)
        options.insecureNoAuth = insecureNoAuth
        options.corsOrigins = try ServeOptions.corsOrigins(corsOrigins.isEmpty ? Environment.list("PRESENCE_CORS_ORIGIN") : corsOrigins)
        switch readFrom ?? Environment.string("PRESENCE_READ_FROM") ?? "primary" {
        case "primary": options.readFromReplicas = false
        case "replicas":
            guard let url = options.redisURL, url.hasPrefix("redis-sentinel://") || url.hasPrefix("redis-cluster://") else {
                throw ValidationError("--read-from replicas needs a redis-sentinel:// or redis-cluster:// URL to find the replicas")
            }
            options.readFromReplicas = true
        default: throw ValidationError("--read-from must be primary or replicas")
        }
        options.webhooks = try ServeOptions.webhooks(
            urls: webhooks.isEmpty ? Environment.list("PRESENCE_WEBHOOK") : webhooks,
            types: (webhookTypes ?? Environment.string("PRESENCE_WEBHOOK_TYPES")).map { [$0] } ?? [],
            secret: webhookSecret ?? Environment.string("PRESENCE_WEBHOOK_SECRET"),
            timeout: webhookTimeout ?? Environment.string("PRESENCE_WEBHOOK_TIMEOUT").flatMap(Double.init),
            changes: options.presence.changes)
        try options.checkExposure()
        return options
    }

    func run() async throws {
        let options: ServeOptions
        do { options = try self.options() } catch let error as ConfigurationError { throw ValidationError(error.description) }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: logLevel ?? Environment.string("PRESENCE_LOG_LEVEL") ?? "info") ?? .info
            return handler
        }
        let logger = Logger(label: "presence")
        var services: [any Service] = []
        let redisConfiguration: RedisConfiguration
        if let url = options.redisURL {
            do { redisConfiguration = try RedisConfiguration(url: url) } catch let error as RedisError { throw ValidationError(error.message) }
        } else {
            let embedded: EmbeddedRedis
            do { embedded = try await EmbeddedRedis.start(logger: logger) } catch { throw CommandFailure(error) }
            services.append(embedded)
            redisConfiguration = embedded.configuration
        }
        if !options.tokens.isEnabled {
            logger.warning("no token configured: the API needs no credentials and listens on loopback only", metadata: ["host": "\(options.host)"])
        }
        let client = RedisClient(configuration: redisConfiguration, scripts: PresenceScripts.all, logger: Logger(label: "presence.redis"))
        var readClient: RedisClient?
        if options.readFromReplicas {
            var reads = redisConfiguration
            reads.requirePrimary = false
            reads.sentinel?.preferReplica = true
            reads.cluster?.readFrom = .replicas
            reads.clientName = "presence-read"
            readClient = RedisClient(configuration: reads, scripts: PresenceScripts.all, logger: Logger(label: "presence.redis.read"))
            logger.notice("queries are answered from a replica: they may lag the primary by the replication delay")
        }
        let app = buildApplication(client: client, readClient: readClient, options: options, logger: logger, services: services)
        try await app.runService()
    }
}
