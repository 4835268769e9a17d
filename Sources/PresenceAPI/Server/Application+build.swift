import Hummingbird
import Logging
import Presence
import ServiceLifecycle


/// Builds the router: the function the `serve` command and the tests both call. Queries go to
/// `readClient` when given (a replica), reports always to `client` (the primary). `changeHub`
/// serves `GET /v1/changes` (it must run as a service of the application; without one, the
/// endpoint answers 503 `changes_off`).
func buildRouter(client: RedisClient, readClient: RedisClient? = nil, options: ServeOptions, changeHub: ChangeHub? = nil, webhooks: [WebhookDelivery] = []) -> Router<AppRequestContext> {
    let configuration = options.presence
    let registry = PresenceRegistry(client: readClient ?? client, configuration: configuration)
    let writer = PresenceWriter(client: client, configuration: configuration)
    _ = PrometheusMetrics.registry
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: MetricsMiddleware())
    // Outside ErrorMiddleware, so that an allowed origin can read error bodies too.
    if !options.corsOrigins.isEmpty { router.add(middleware: CORSOriginsMiddleware(origins: options.corsOrigins)) }
    router.add(middleware: ErrorMiddleware())
    // Without tokens, every route (the status page and /metrics included) answers only loopback
    // names and the server's own origin; with tokens the tokens protect the data.
    if !options.tokens.isEnabled {
        router.add(middleware: LocalOnlyMiddleware(requireLoopbackHost: options.requiresLoopbackHost, allowedOrigins: options.corsOrigins))
    }
    OperationsController(clients: [client] + (readClient.map { [$0] } ?? []), registry: registry, changeHub: changeHub, webhooks: webhooks).addRoutes(to: router)
    // The status page needs no token: it holds no data and asks for one when the API does.
    router.addRoutes(StatusPageController<AppRequestContext>().endpoints)

    let query = QueryController<AppRequestContext>(registry: registry)
    let reads = router.group("v1")
        .add(middleware: TokenMiddleware(tokens: options.tokens, scope: .read))
        .add(middleware: JSONContentTypeMiddleware())
    reads.addRoutes(query.socketEndpoints, atPath: "sockets")
    reads.addRoutes(query.nodeEndpoints, atPath: "nodes")
    reads.get("users/:userId", use: query.user)
    reads.get("stats", use: query.stats)
    reads.get("changes", use: ChangesController<AppRequestContext>(registry: registry, hub: changeHub).changes)

    // Reports read what they need from the primary, never from a lagging replica.
    let primaryRegistry = PresenceRegistry(client: client, configuration: configuration)
    let reporting = ReportingController<AppRequestContext>(writer: writer, registry: primaryRegistry, heartbeatInterval: configuration.heartbeatInterval)
    let writes = router.group("v1")
        .add(middleware: TokenMiddleware(tokens: options.tokens, scope: .write))
        .add(middleware: JSONContentTypeMiddleware())
    writes.addRoutes(reporting.endpoints, atPath: "nodes")
    return router
}

/// Builds the application; it runs `services` (an embedded Redis, say), then the client, the
/// watcher that announces dead nodes in the change stream (when changes are on; one instance at
/// a time works, by lease), the change feed's hub (`GET /v1/changes`; `changeHub` when the
/// caller wants to observe it, else one built here) and the webhooks' deliveries (`webhooks`, else
/// built from `options`; one instance at a time delivers each, by lease), then the HTTP server,
/// and stops them in reverse order.
func buildApplication(
    client: RedisClient, readClient: RedisClient? = nil, options: ServeOptions, logger: Logger, services: [any Service] = [], changeHub: ChangeHub? = nil,
    webhooks: [WebhookDelivery]? = nil
) -> some ApplicationProtocol {
    let watcher = ChangeWatcher(client: client, configuration: options.presence, logger: Logger(label: "presence.watcher"))
    let hub = options.presence.changes ? changeHub ?? buildChangeHub(client: client, readClient: readClient, options: options) : nil
    let deliveries = options.presence.changes ? webhooks ?? buildWebhookDeliveries(client: client, options: options) : []
    return Application(
        router: buildRouter(client: client, readClient: readClient, options: options, changeHub: hub, webhooks: deliveries),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "presence"),
        services: services + [client] + (readClient.map { [$0] } ?? []) + (options.presence.changes ? [watcher] : []) + (hub.map { [$0] } ?? [])
            + deliveries as [any Service],
        onServerRunning: { channel in
            logger.notice("presence serve is listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "auth": "\(options.tokens.isEnabled ? "tokens" : options.requiresLoopbackHost ? "none (loopback only)" : "none (--insecure-no-auth)")", "cors": "\(options.corsOrigins.isEmpty ? "off" : options.corsOrigins.map(\.description).sorted().joined(separator: " "))"])
        },
        logger: logger)
}

/// The change feed's hub, reading through the client that answers queries.
func buildChangeHub(client: RedisClient, readClient: RedisClient? = nil, options: ServeOptions) -> ChangeHub {
    ChangeHub(
        registry: PresenceRegistry(client: readClient ?? client, configuration: options.presence),
        configuration: options.changeFeed, logger: Logger(label: "presence.changes"))
}

/// One delivery per configured webhook, through the primary's client (they move cursors in Redis).
func buildWebhookDeliveries(client: RedisClient, options: ServeOptions) -> [WebhookDelivery] {
    options.webhooks.map { WebhookDelivery(configuration: $0, client: client, presence: options.presence, logger: Logger(label: "presence.webhooks")) }
}
