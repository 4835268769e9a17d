import Hummingbird
import Presence

/// Unauthenticated operations endpoints: liveness, readiness, metrics.
struct OperationsController<Context: RequestContext>: Sendable {
    /// The primary's client first, then the replica reader's when reads go to replicas.
    let clients: [RedisClient]
    let registry: PresenceRegistry
    /// The change feed's hub, for its counters in `/metrics` (`nil` with changes off).
    var changeHub: ChangeHub? = nil
    /// The webhooks' deliveries, for their counters in `/metrics`.
    var webhooks: [WebhookDelivery] = []

    func addRoutes(to router: Router<Context>) {
        router.get("healthz") { _, _ in Status(status: "ok") }
        router.get("readyz", use: ready)
        router.get("metrics", use: metrics)
    }

    /// 200 when Redis answers and is a primary (the client refuses replicas), else 503.
    @Sendable func ready(_ request: Request, context: Context) async throws -> Status {
        for client in clients { _ = try await client.send("PING") }
        return Status(status: "ready")
    }

    @Sendable func metrics(_ request: Request, context: Context) async throws -> Response {
        let stats = try? await registry.stats()
        let text = PrometheusMetrics.render(client: clients[0], stats: stats, changes: changeHub?.statistics,
            webhooks: webhooks.map { ($0.configuration.id, $0.statistics) })
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    struct Status: ResponseEncodable { let status: String }
}
