import Foundation
import Metrics
import Presence
import Prometheus

/// The process-wide Prometheus registry behind `/metrics`; swift-metrics is bootstrapped with it
/// once (Hummingbird's MetricsMiddleware records requests and latency by route and status into it).
enum PrometheusMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1),
        ]
        factory.nameAndLabelSanitizer = { name, labels in
            (sanitize(name), labels.map { (sanitize($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    static func sanitize(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") ? $0 : "_" })
    }

    /// Prometheus text: request metrics, the Redis client's counters, the change feed's (when it
    /// runs) and registry gauges (omitted when Redis cannot be read).
    static func render(
        client: RedisClient, stats: PresenceStats?, changes: ChangeHub.Statistics? = nil, webhooks: [(id: String, statistics: WebhookDelivery.Statistics)] = []
    ) -> String {
        var text = registry.emitToString()
        func metric(_ name: String, _ type: String, _ help: String, _ value: Int) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        metric("presence_redis_round_trips_total", "counter", "Pipelines written to Redis.", client.metrics.roundTripCount)
        metric("presence_redis_commands_total", "counter", "Commands written to Redis.", client.metrics.commandCount)
        metric("presence_redis_errors_total", "counter", "Failed connects and broken or timed-out connections.", client.metrics.errorCount)
        metric("presence_redis_connected", "gauge", "1 while a connection to Redis is up.", client.metrics.isConnected ? 1 : 0)
        if let changes {
            metric("presence_changes_subscribers", "gauge", "Subscribers of GET /v1/changes now.", changes.subscribers)
            metric("presence_changes_reads_total", "counter", "Reads of the change streams by the hub (one pipeline each, whatever the subscribers).", changes.reads)
            metric("presence_changes_read_total", "counter", "Changes read by the hub.", changes.changes)
            metric("presence_changes_slow_disconnects_total", "counter", "Subscribers cut off because their queue overflowed.", changes.slowDisconnects)
            metric("presence_changes_replays_running", "gauge", "History replays (Last-Event-ID) reading now.", changes.replaysRunning)
            metric("presence_changes_replays_waiting", "gauge", "History replays waiting for their turn.", changes.replaysWaiting)
        }
        if !webhooks.isEmpty {
            let now = Date()
            func perWebhook(_ name: String, _ type: String, _ help: String, _ value: (WebhookDelivery.Statistics) -> String) {
                text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                for webhook in webhooks { text += "\(name){webhook=\"\(webhook.id)\"} \(value(webhook.statistics))\n" }
            }
            perWebhook("presence_webhook_delivering", "gauge", "1 while this instance holds the webhook's lease (delivers to it).") { $0.holding ? "1" : "0" }
            perWebhook("presence_webhook_delivered_total", "counter", "Changes the webhook acknowledged (2xx).") { "\($0.delivered)" }
            perWebhook("presence_webhook_batches_total", "counter", "Webhook POSTs answered 2xx.") { "\($0.batches)" }
            perWebhook("presence_webhook_failed_attempts_total", "counter", "Webhook POSTs that failed (non-2xx, connection error, timeout); each is retried.") { "\($0.failedAttempts)" }
            perWebhook("presence_webhook_filtered_total", "counter", "Changes not sent because of --webhook-types.") { "\($0.filtered)" }
            perWebhook("presence_webhook_gaps_total", "counter", "Times changes were trimmed (older than the retention) before the webhook got them.") { "\($0.gaps)" }
            perWebhook("presence_webhook_last_success_timestamp_seconds", "gauge", "Unix time of the webhook's last 2xx (0: none yet by this instance).") {
                "\($0.lastSuccess.map { Int($0.timeIntervalSince1970) } ?? 0)"
            }
            perWebhook("presence_webhook_lag_seconds", "gauge", "Age of the oldest change read and not yet acknowledged (0 when caught up).") {
                String(format: "%.3f", $0.oldestPending.map { max(0, now.timeIntervalSince($0)) } ?? 0)
            }
        }
        if let stats {
            metric("presence_nodes_alive", "gauge", "Nodes whose heartbeat is within their TTL.", stats.aliveNodes)
            metric("presence_nodes_dead", "gauge", "Dead nodes still listed.", stats.deadNodes)
            metric("presence_sockets_alive", "gauge", "Sockets held by alive nodes.", stats.aliveSockets)
            metric("presence_users_online", "gauge", "Users online: each user once with the change stream on, else per-node distinct users summed.", stats.onlineUsers)
        }
        return text
    }
}
