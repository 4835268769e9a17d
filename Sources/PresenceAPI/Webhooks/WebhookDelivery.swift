import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Presence
import ServiceLifecycle
import Synchronization

/// Delivers the change stream to one webhook (`presence serve --webhook URL`; `docs/changes.md`,
/// "Webhooks"): batches of changes POSTed as signed JSON, at least once, in stream order.
///
/// Every `presence serve` configured with the URL runs one; one at a time delivers, the holder of
/// the webhook's lease (``RedisLease``: 2 heartbeat intervals, renewed every half interval by a
/// task of its own, so a slow receiver does not let it lapse). The holder reads the changes after
/// the webhook's cursor (a position kept in Redis), POSTs up to ``WebhookConfiguration/batchSize``
/// of them that pass its kinds filter, and only after a 2xx moves the cursor past them, by a script
/// that checks the lease and the cursor's old value together (``PresenceScripts/leasedSet``): a
/// former holder, stalled past its lease, cannot move it. A failed POST (non-2xx, connection error,
/// timeout) is retried with the same batch after a capped exponential backoff with jitter, so a
/// receiver that was down gets everything after it comes back, within the retention. A duplicate
/// is possible only across a handover (a holder that POSTed and lost its lease before moving the
/// cursor); every change carries a stable `id` for receivers to drop it.
final class WebhookDelivery: Service, Sendable {
    /// Stream entries per read while filling a batch.
    static let entriesPerRead = 8

    /// Counters, for tests and `/metrics`.
    struct Statistics: Sendable, Equatable {
        /// Whether this instance holds the webhook's lease (delivers).
        var holding = false
        /// Changes acknowledged by the receiver (2xx).
        var delivered = 0
        /// POSTs answered 2xx.
        var batches = 0
        /// POSTs that failed (non-2xx, connection error, timeout).
        var failedAttempts = 0
        /// Changes passed over by the kinds filter (the cursor still moves past them).
        var filtered = 0
        /// Times the cursor was found trimmed (older than the retention): changes were lost to
        /// this webhook, which then resumed at the oldest retained change.
        var gaps = 0
        /// When the receiver last acknowledged a batch.
        var lastSuccess: Date?
        /// The recording time of the oldest change read and not yet acknowledged (`nil` when
        /// caught up): the delivery's lag.
        var oldestPending: Date?
    }

    /// A non-2xx answer, or the POST failing.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// What the holder read and has not moved the cursor past yet.
    private struct Batch {
        /// The changes that pass the filter (may be empty: the cursor just moves).
        var changes: [PresenceChange]
        /// The position after every change read, filtered or not.
        var position: ChangePosition
        /// Whether the receiver acknowledged it (only the cursor is left to move).
        var acknowledged = false
        /// The page read was full: read again at once.
        var full: Bool
    }

    private struct State {
        var holding = false
        /// Counts lease acquisitions: the deliverer re-reads the cursor after each.
        var generation = 0
        var statistics = Statistics()
    }

    let configuration: WebhookConfiguration
    let registry: PresenceRegistry
    let lease: RedisLease
    let cursorKey: String
    /// How often the lease is renewed (half a heartbeat interval; it lasts two).
    let renewal: Duration
    let logger: Logger
    private let state = Mutex(State())

    /// Creates the delivery of one webhook, reading the change stream through `client` with
    /// `presence`'s keys and timings; `instance` names this holder in the lease.
    init(configuration: WebhookConfiguration, client: RedisClient, presence: PresenceConfiguration, instance: String = PresenceID.newIncarnation(), logger: Logger) {
        self.configuration = configuration
        self.registry = PresenceRegistry(client: client, configuration: presence)
        let id = configuration.id
        let keys = PresenceKeys(prefix: presence.keyPrefix)
        self.lease = RedisLease(client: client, key: keys.webhookLease(id), holder: instance, duration: presence.heartbeatInterval * 2)
        self.cursorKey = keys.webhookCursor(id)
        self.renewal = presence.heartbeatInterval / 2
        var logger = logger
        logger[metadataKey: "webhook"] = "\(id)"
        self.logger = logger
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    /// The lease's duration in ms, for ``PresenceScripts/leasedSet``.
    private var leaseArgument: String {
        let (seconds, attoseconds) = lease.duration.components
        return String(max(seconds * 1000 + attoseconds / 1_000_000_000_000_000, 1))
    }

    func run() async throws {
        var http = HTTPClient.Configuration(redirectConfiguration: .disallow)
        http.timeout = .init(connect: Self.timeAmount(configuration.timeout), read: Self.timeAmount(configuration.timeout))
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
        logger.info("webhook configured", metadata: ["url": "\(configuration.redactedURL)", "types": "\(configuration.kinds.map { $0.map(\.rawValue).sorted().joined(separator: ",") } ?? "all")"])
        await cancelWhenGracefulShutdown { [self] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.keepLease() }
                group.addTask { await self.deliver(client) }
                await group.next()
                group.cancelAll()
            }
        }
        // Hand over at once rather than after the lease expires (a rolling restart).
        if state.withLock({ $0.holding }) { _ = try? await lease.release() }
        state.withLock { $0.holding = false; $0.statistics.holding = false }
        try? await client.shutdown()
    }

    /// Takes the lease when free and renews it while held, every ``renewal``.
    private func keepLease() async {
        var holding = false
        while !Task.isCancelled {
            do {
                let held = try await lease.hold(renewing: holding)
                if held != holding { logger.info(held ? "delivering to the webhook" : "another instance delivers to the webhook") }
                holding = held
            } catch {
                // Unknown: the deliverer's cursor script checks the lease anyway.
                logger.warning("renewing the webhook lease failed; trying again", metadata: ["error": "\(error)"])
            }
            state.withLock { state in
                if holding && !state.holding { state.generation += 1 }
                state.holding = holding
                state.statistics.holding = holding
            }
            do { try await Task.sleep(for: renewal) } catch { return }
        }
    }

    /// Runs `work` to its end even when the delivering task is cancelled (a graceful stop): a batch
    /// the receiver got is acknowledged and the cursor moved past it, so that the next holder does
    /// not deliver it again. A stop waits for it, at most the webhook's timeout.
    private static func uncancelled<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Task { try await work() }.value
    }

    /// The holder's loop: read after the cursor, POST, move the cursor; back off on failures.
    private func deliver(_ client: HTTPClient) async {
        var generation = -1
        var cursor: (stored: String, read: ChangePosition)?
        var batch: Batch?
        var failures = 0
        var checkRetention = true
        var redisFailing = false
        while !Task.isCancelled {
            let (holding, current) = state.withLock { ($0.holding, $0.generation) }
            guard holding else {
                (cursor, batch, failures) = (nil, nil, 0)
                state.withLock { $0.statistics.oldestPending = nil }
                if (try? await Task.sleep(for: renewal)) == nil { return }
                continue
            }
            if current != generation {
                (generation, cursor, batch) = (current, nil, nil)
            }
            var pause: Duration?
            do {
                if cursor == nil {
                    guard let loaded = try await loadCursor() else {
                        if (try? await Task.sleep(for: renewal)) == nil { return }
                        continue
                    }
                    cursor = loaded
                    checkRetention = true
                }
                if batch == nil {
                    if checkRetention {
                        cursor!.read = try await retained(cursor!.read)
                        checkRetention = false
                    }
                    batch = try await read(after: cursor!.read)
                }
                if batch!.position == cursor!.read && cursor!.stored == cursor!.read.description {
                    pause = configuration.pollInterval  // nothing new (and no gap to write down)
                    batch = nil
                } else {
                    if !batch!.acknowledged && !batch!.changes.isEmpty {
                        do {
                            let (changes, position) = (batch!.changes, batch!.position)
                            try await Self.uncancelled { try await self.post(changes, position: position, client: client) }
                        } catch {
                            failures += 1
                            checkRetention = true
                            let delay = configuration.backoff(afterFailures: failures)
                            state.withLock { $0.statistics.failedAttempts += 1 }
                            if failures == 1 || failures.isMultiple(of: 10) {
                                logger.warning("webhook delivery failed; retrying the batch", metadata: ["error": "\(error)", "attempts": "\(failures)", "retryIn": "\(delay)"])
                            }
                            if (try? await Task.sleep(for: delay)) == nil { return }
                            continue
                        }
                        if failures > 0 { logger.notice("webhook delivery recovered", metadata: ["attempts": "\(failures + 1)"]) }
                        failures = 0
                        batch!.acknowledged = true
                        state.withLock { state in
                            state.statistics.delivered += batch!.changes.count
                            state.statistics.batches += 1
                            state.statistics.lastSuccess = Date()
                        }
                    }
                    let next = batch!.position.description
                    let move = PresenceScripts.leasedSet.call(keys: [lease.key, cursorKey], arguments: [lease.holder, cursor!.stored, next, leaseArgument])
                    switch try await Self.uncancelled({ try await self.lease.client.send(move) }).int {
                    case 1:
                        cursor = (next, batch!.position)
                        if !batch!.full { pause = configuration.pollInterval }
                        state.withLock { $0.statistics.oldestPending = nil }
                    case 0:
                        logger.info("lost the webhook lease; another instance delivers")
                        state.withLock { $0.holding = false; $0.statistics.holding = false }
                        cursor = nil
                    default:
                        logger.warning("the webhook cursor moved under this holder; reading it again")
                        cursor = nil
                    }
                    batch = nil
                }
                if redisFailing {
                    redisFailing = false
                    logger.notice("webhook delivery reads Redis again")
                }
            } catch {
                // Redis unreachable: keep the batch (and whether it was acknowledged), try again.
                if !redisFailing { logger.warning("webhook delivery cannot read Redis; retrying every poll interval", metadata: ["error": "\(error)"]) }
                redisFailing = true
                pause = configuration.pollInterval
            }
            if let pause, (try? await Task.sleep(for: pause)) == nil { return }
        }
    }

    /// The cursor in Redis; a webhook seen for the first time starts at the newest change (it gets
    /// what is recorded from now on), written there so every instance agrees. `nil` when that
    /// write was refused (another instance holds the lease, or wrote the cursor first): try again.
    private func loadCursor() async throws -> (stored: String, read: ChangePosition)? {
        let text = try await lease.client.send(RedisCommand("GET", cursorKey)).string
        if let text, let position = ChangePosition(text) { return (text, position) }
        if let text { logger.error("the webhook cursor is malformed; starting at the newest change", metadata: ["cursor": "\(text)"]) }
        let newest = try await registry.newestChangePosition()
        let written = try await lease.client.send(PresenceScripts.leasedSet.call(
            keys: [lease.key, cursorKey], arguments: [lease.holder, text ?? "", newest.description, leaseArgument]))
        return written.int == 1 ? (newest.description, newest) : nil
    }

    /// `position`, or where to go on from when changes after it were trimmed (older than the
    /// retention): per stream the later of it and the oldest retained position. Counts the gap.
    private func retained(_ position: ChangePosition) async throws -> ChangePosition {
        do {
            try await registry.checkRetained(position)
            return position
        } catch let error as PresenceError where error.code == .changesTrimmed {
            let oldest = try await registry.oldestChangePosition()
            var resumed = position
            for (stream, id) in oldest.last {
                guard let floor = ChangePosition.Entry(stream: stream, id: id) else { continue }
                if !position.hasPassed(floor) { resumed.last[stream] = id }
            }
            state.withLock { $0.statistics.gaps += 1 }
            logger.error("webhook changes were trimmed before delivery (older than the retention); going on from the oldest retained", metadata: ["cursor": "\(position)", "resumedAt": "\(resumed)"])
            return resumed
        }
    }

    /// The next batch after `position`: up to ``WebhookConfiguration/batchSize`` changes in
    /// stream order, those that pass the filter kept.
    private func read(after position: ChangePosition) async throws -> Batch {
        // An entry holds the changes of one script call: a few entries at a time, until a batch is full.
        var read = try await registry.readChanges(after: position, count: Self.entriesPerRead)
        while read.changes.count < configuration.batchSize && read.isPartial {
            let more = try await registry.readChanges(after: read.position, count: Self.entriesPerRead)
            read.changes += more.changes
            read.position = more.position
            read.isPartial = more.isPartial
        }
        let page = read.changes
        let taken = page.prefix(configuration.batchSize)
        var next = position
        var kept: [PresenceChange] = []
        for change in taken {
            next.advance(past: change.id)
            if configuration.kinds?.contains(change.kind) ?? true { kept.append(change) }
        }
        // All of it taken: past entries it could not decode too (a newer version's kinds).
        if taken.count == page.count { next.advance(to: read.position) }
        state.withLock { state in
            state.statistics.filtered += taken.count - kept.count
            if let first = taken.first, state.statistics.oldestPending == nil { state.statistics.oldestPending = first.at }  // until acknowledged
        }
        return Batch(changes: kept, position: next, full: page.count >= configuration.batchSize || read.isPartial)
    }

    /// POSTs one batch, signed; returns on a 2xx answer.
    /// - Throws: ``Failure`` for another status; the client's error when the request fails or times out.
    private func post(_ changes: [PresenceChange], position: ChangePosition, client: HTTPClient) async throws {
        let body = WebhookPayload.body(changes, position: position)
        var request = HTTPClientRequest(url: configuration.url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "presence-webhooks/1")
        request.headers.add(name: "Presence-Webhook-Id", value: configuration.id)
        request.headers.add(name: WebhookPayload.signatureHeader, value: WebhookPayload.signature(
            secret: configuration.secret, timestamp: Int(Date().timeIntervalSince1970), body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: Self.timeAmount(configuration.timeout))
        // Read (a bounded part of) the answer so that the connection can be used again.
        _ = try? await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw Failure(description: "the receiver answered \(response.status.code)")
        }
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
