import Foundation
import Logging
import ServiceLifecycle

/// Announces dead nodes in the change stream (`docs/changes.md`): `node.down` once a node's
/// heartbeat expired, then its sockets' `socket.disconnected` (reason `node_down`) and the
/// `user.offline` changes they cause; for a node that left (or a replaced incarnation), the same
/// disconnects with their reason. Within half a heartbeat interval of the expiry, plus the time to
/// walk the node's sockets.
///
/// Every `presence serve` runs one; one at a time works, the holder of a lease in Redis
/// (`SET … NX PX` of 2 heartbeat intervals, renewed every half interval by compare); another takes
/// over once it expires. Two watchers working at once (a stalled former holder) record nothing
/// twice: a node is announced by a compare-and-record script, and every disconnect is a
/// conditional deletion that records only what it deleted. A watcher stopped midway leaves the
/// node marked `p` in the gone hash, and the next one finishes it.
public struct ChangeWatcher: Service {
    /// The client; it must have been created with ``PresenceScripts/all``.
    public let client: RedisClient
    /// Key prefix, timings and the changes' retention.
    public let configuration: PresenceConfiguration
    /// This watcher's id in the lease.
    public let id: String
    let logger: Logger
    var keys: PresenceKeys { configuration.keys }

    /// Creates a watcher.
    public init(client: RedisClient, configuration: PresenceConfiguration, id: String = PresenceID.newIncarnation(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.id = id
        self.logger = logger
    }

    var leaseMilliseconds: Int { 2 * configuration.heartbeatInterval.milliseconds }

    /// Watches until graceful shutdown or cancellation. The lease is not released: another watcher
    /// takes over within one lease (2 heartbeat intervals). Does nothing with changes off.
    public func run() async throws {
        guard configuration.changes else { return }
        let period = configuration.heartbeatInterval / 2
        try? await cancelWhenGracefulShutdown {
            var holding = false
            var renewedAt = ContinuousClock.now
            var pause = period
            while !Task.isCancelled {
                pause = period
                do {
                    if !holding || ContinuousClock.now - renewedAt >= period {
                        let held = try await holdLease(holding)
                        if held != holding { logger.info(held ? "watching for dead nodes" : "another instance watches for dead nodes") }
                        holding = held
                        renewedAt = ContinuousClock.now
                    }
                    // Woken at the next expiry rather than up to a period after it.
                    if holding {
                        var lease = Lease(renewedAt: renewedAt, period: period)
                        defer { renewedAt = lease.renewedAt }
                        pause = min(period, try await pass(lease: &lease).nextExpiry ?? period)
                        holding = !lease.lost
                    }
                } catch {
                    logger.warning("watching for dead nodes failed; trying again", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: max(pause, .milliseconds(5)))
            }
        }
    }

    /// Takes the lease when free, or renews it when held. Returns whether this watcher holds it.
    func holdLease(_ holding: Bool) async throws -> Bool {
        try await RedisLease(client: client, key: keys.watcherLease, holder: id, duration: .milliseconds(leaseMilliseconds)).hold(renewing: holding)
    }

    /// A node in the gone hash: `p|d␟incarnation␟reason`.
    struct Gone: Sendable, Hashable {
        var pending: Bool
        var incarnation: String
        var reason: DisconnectReason
        var raw: String

        init?(_ raw: String) {
            let parts = raw.split(separator: "\u{1F}", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "p" || parts[0] == "d", let reason = DisconnectReason(rawValue: String(parts[2])) else { return nil }
            pending = parts[0] == "p"
            incarnation = String(parts[1])
            self.reason = reason
            self.raw = raw
        }
    }

    /// The lease as a pass keeps it: renewed between pages of a long walk, so that another
    /// instance does not take it (and walk the same node) meanwhile.
    struct Lease {
        var renewedAt: ContinuousClock.Instant
        /// How often it is renewed; `nil`: never (a pass not run by ``run()``).
        let period: Duration?
        /// Another instance holds it now: the pass stops.
        var lost = false
    }

    /// Renews the lease when due. Returns `false` once it is lost.
    func keep(_ lease: inout Lease) async throws -> Bool {
        if !lease.lost, let period = lease.period, ContinuousClock.now - lease.renewedAt >= period {
            lease.lost = try await !holdLease(true)
            lease.renewedAt = ContinuousClock.now
            if lease.lost { logger.info("another instance watches for dead nodes") }
        }
        return !lease.lost
    }

    /// One pass: announces the nodes expired since the last, disconnects the sockets of every node
    /// marked pending, and forgets the marks nothing needs any more. Safe to run concurrently. A
    /// node that fails (its Redis Cluster shard down, say) does not stop the others: the pass goes
    /// on and throws the first failure at the end.
    /// - Parameter lease: renewed between walk pages when it has a period (see ``Lease``).
    /// - Returns: how many nodes it announced down, and how long until the next live entry expires
    ///   (by the Redis clock; `nil` when none is alive).
    @discardableResult
    func pass(lease: inout Lease) async throws -> (announced: Int, nextExpiry: Duration?) {
        let replies = await client.pipeline([
            RedisCommand("TIME").routed(by: keys.nodeTable), RedisCommand("HGETALL", keys.nodeTable), RedisCommand("HGETALL", keys.goneNodes),
        ])
        let table = NodeTable(time: try replies[0].get(), fields: try replies[1].get())
        var gone: [String: Gone] = [:]
        for (node, value) in try replies[2].get().fieldMap { gone[node] = Gone(value) }
        var announced = 0
        var failure: (any Error)?
        for (node, entry) in table.entries.sorted(by: { $0.key < $1.key }) where entry.expiresAt <= table.now {
            if let mark = gone[node], mark.incarnation == entry.incarnation { continue }
            do {
                switch try await announceDown(node: node, entry: entry) {
                case 1:
                    announced += 1
                    gone[node] = Gone("p\u{1F}\(entry.incarnation)\u{1F}\(DisconnectReason.nodeDown.rawValue)")
                case 2:
                    if let mark = try await client.send(RedisCommand("HGET", keys.goneNodes, node)).string.flatMap(Gone.init) { gone[node] = mark }
                default: break
                }
            } catch {
                failure = failure ?? error
            }
        }
        for (node, mark) in gone.sorted(by: { $0.key < $1.key }) {
            guard try await keep(&lease) else { break }
            do {
                if mark.pending {
                    try await disconnectSockets(node: node, mark: mark, lease: &lease)
                } else if table.entries[node]?.incarnation != mark.incarnation {
                    _ = try await client.send(PresenceScripts.goneUpdate.call(keys: [keys.goneNodes, keys.nodeTable], arguments: [node, mark.raw, "forget"]))
                }
            } catch {
                logger.warning("disconnecting a gone node's sockets failed; the next pass tries again", metadata: ["node": "\(node)", "error": "\(error)"])
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
        let next = table.entries.values.map(\.expiresAt).filter { $0 > table.now }.min()
        return (announced, next.map { .milliseconds($0 - table.now + 1) })
    }

    /// ``pass(lease:)`` without a lease to keep (tests, and one-off passes).
    @discardableResult
    func pass() async throws -> (announced: Int, nextExpiry: Duration?) {
        var none = Lease(renewedAt: .now, period: nil)
        return try await pass(lease: &none)
    }

    /// Records `node.down` for an entry seen expired and marks the node pending, unless it changed
    /// or was announced already. Returns the script's answer (1 recorded, 2 announced already, 0 changed).
    func announceDown(node: String, entry: NodeTable.Entry) async throws -> Int {
        let reply = try await client.send(PresenceScripts.nodeDown.call(
            keys: [keys.nodeTable, keys.goneNodes, keys.changeStream(0), keys.node(node)], arguments: [node, entry.raw, String(configuration.changesRetention.milliseconds)]))
        if reply.int == 1 { logger.info("node down", metadata: ["node": "\(node)", "incarnation": "\(entry.incarnation)"]) }
        return reply.int ?? 0
    }

    /// Deletes the records of the marked incarnation (conditionally: each records its own
    /// disconnect), page by page while the mark stays, then marks the node done.
    private func disconnectSockets(node: String, mark: Gone, lease: inout Lease) async throws {
        let writer = PresenceWriter(client: client, configuration: configuration)
        var cursor = "0"
        var removed = 0
        repeat {
            guard try await keep(&lease) else { return }  // another instance goes on from the mark
            let replies = await client.pipeline([
                RedisCommand("HGET", keys.goneNodes, node),
                RedisCommand("SSCAN", keys.nodeSockets(node), cursor, "COUNT", String(configuration.batchSize)),
            ])
            guard try replies[0].get().string == mark.raw else { return }  // it came back, or another watcher finished
            let (next, members) = try replies[1].get().scanPage("SSCAN")
            cursor = next
            removed += try await writer.removeSockets(
                nodeID: node, incarnation: mark.incarnation, socketIDs: members.compactMap(\.string), reason: mark.reason)
        } while cursor != "0"
        _ = try await client.send(PresenceScripts.goneUpdate.call(keys: [keys.goneNodes, keys.nodeTable], arguments: [node, mark.raw, "done"]))
        logger.info("disconnected a gone node's sockets", metadata: ["node": "\(node)", "sockets": "\(removed)", "reason": "\(mark.reason.rawValue)"])
    }
}
