import Hummingbird
import Logging
import Presence
import ServiceLifecycle

typealias AppRequestContext = BasicRequestContext

/// Builds the router: the function the `serve` command and the tests both call.
func buildRouter(client: RedisClient, options: ServeOptions) -> Router<AppRequestContext> {
    let configuration = options.presence
    let registry = PresenceRegistry(client: client, configuration: configuration)
    let writer = PresenceWriter(client: client, configuration: configuration)
    _ = PrometheusMetrics.registry
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: ErrorMiddleware())
    OperationsController(client: client, registry: registry).addRoutes(to: router)

    let query = QueryController<AppRequestContext>(registry: registry)
    let reads = router.group("v1").add(middleware: TokenMiddleware(tokens: options.tokens, scope: .read))
    reads.addRoutes(query.socketEndpoints, atPath: "sockets")
    reads.addRoutes(query.nodeEndpoints, atPath: "nodes")
    reads.get("users/:userId", use: query.user)
    reads.get("stats", use: query.stats)

    let reporting = ReportingController<AppRequestContext>(writer: writer, registry: registry, heartbeatInterval: configuration.heartbeatInterval)
    let writes = router.group("v1").add(middleware: TokenMiddleware(tokens: options.tokens, scope: .write))
    writes.addRoutes(reporting.endpoints, atPath: "nodes")
    return router
}

/// Builds the application; it runs `services` (an embedded Redis, say), then the client, then
/// the HTTP server, and stops them in reverse order.
func buildApplication(client: RedisClient, options: ServeOptions, logger: Logger, services: [any Service] = []) -> some ApplicationProtocol {
    Application(
        router: buildRouter(client: client, options: options),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "presence"),
        services: services + [client],
        onServerRunning: { channel in
            logger.notice("presence serve is listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "auth": "\(options.tokens.isEnabled ? "tokens" : "none (loopback only)")"])
        },
        logger: logger)
}
