import Foundation

/// Removes what dead nodes left behind. Never needed for correct answers (liveness is derived at
/// read time and every key has a TTL); it frees memory sooner and trims the node listing.
///
/// One pass walks the liveness table with `HSCAN` and each dead node's socket set with `SSCAN`,
/// in pages of ``PresenceConfiguration/batchSize``, deleting conditionally: running it twice, or two
/// sweepers at once, is safe, and a node that comes back meanwhile is left alone (it rewrites its
/// sockets itself, as after any absence). On request it also `SCAN`s every primary (each shard of
/// a Redis Cluster) for socket sets of nodes the table no longer lists (pruned, or lost with a
/// failed-over shard) that no heartbeat has refreshed for longer than the node TTL plus the grace:
/// a pass over every key, so not by default.
public struct Sweeper: Sendable {
    /// The client; it must have been created with ``PresenceScripts/all``.
    public let client: RedisClient
    /// Key prefix and page size.
    public let configuration: PresenceConfiguration
    var keys: PresenceKeys { configuration.keys }

    /// What a pass removed, or would remove in a dry run.
    public struct Report: Sendable, Hashable {
        /// One dead node.
        public struct Node: Sendable, Hashable {
            /// The node's id.
            public var nodeID: String
            /// Its incarnation when it died.
            public var incarnation: String
            /// When it expired (Redis clock).
            public var expiredAt: Date
            /// Socket records removed (dry run: members of its socket set).
            public var sockets: Int
            /// Whether its entry and record were removed (`false` when it came back meanwhile, or in a dry run).
            public var forgotten: Bool
        }

        /// Dead nodes found.
        public var nodes: [Node]
        /// Whether nothing was changed.
        public var dryRun: Bool
        /// Socket records removed in total.
        public var sockets: Int { nodes.reduce(0) { $0 + $1.sockets } }
    }

    /// Creates a sweeper.
    public init(client: RedisClient, configuration: PresenceConfiguration = PresenceConfiguration()) {
        self.client = client
        self.configuration = configuration
    }

    /// Runs one pass.
    /// - Parameters:
    ///   - grace: only nodes dead for longer than this are removed.
    ///   - dryRun: report without changing anything.
    ///   - orphans: also sweep socket sets of nodes the table no longer lists (`SCAN` of every key).
    /// - Throws: ``RedisError`` (unreachable, replica…); what was removed before stays removed.
    public func sweep(grace: Duration = .zero, dryRun: Bool = false, orphans sweepOrphans: Bool = false) async throws -> Report {
        let time = NodeTable.milliseconds(try await client.send(RedisCommand("TIME").routed(by: keys.nodeTable)))
        var dead: [(String, NodeTable.Entry)] = []
        var cursor = "0"
        repeat {
            let page = try await client.send(RedisCommand("HSCAN", keys.nodeTable, cursor, "COUNT", String(configuration.batchSize)))
            let (next, fields) = try page.scanPage("HSCAN")
            cursor = next
            for (node, value) in RedisValue.array(fields).fieldMap {
                if let entry = NodeTable.entry(value), entry.expiresAt + grace.milliseconds <= time {
                    dead.append((node, entry))
                }
            }
        } while cursor != "0"

        var report = Report(nodes: [], dryRun: dryRun)
        for (node, entry) in dead.sorted(by: { $0.0 < $1.0 }) {
            var swept = Report.Node(nodeID: node, incarnation: entry.incarnation, expiredAt: Date(milliseconds: entry.expiresAt), sockets: 0, forgotten: false)
            if dryRun {
                swept.sockets = try await client.send(RedisCommand("SCARD", keys.nodeSockets(node))).int ?? 0
            } else {
                (swept.sockets, swept.forgotten) = try await sweep(node: node, entry: entry)
            }
            report.nodes.append(swept)
        }
        guard sweepOrphans else { return report }
        let listed = Set(dead.map(\.0))
        for node in try await orphans(grace: grace) where !listed.contains(node.nodeID) {
            var swept = node
            if !dryRun { (swept.sockets, swept.forgotten) = try await sweepOrphan(node.nodeID, grace: grace) }
            report.nodes.append(swept)
        }
        return report
    }

    /// Socket sets, on every primary, of nodes absent from the table whose last heartbeat (read from
    /// the set's TTL, which every heartbeat resets) is older than the node TTL plus `grace`.
    private func orphans(grace: Duration) async throws -> [Report.Node] {
        let prefix = "\(Self.globEscaped(configuration.keyPrefix)):{"
        let head = "\(configuration.keyPrefix):{"
        let tail = "}:sockets"
        var found: [Report.Node] = []
        for primary in try await client.primaryClients() {
            var cursor = "0"
            repeat {
                let page = try await primary.send(RedisCommand("SCAN", cursor, "MATCH", prefix + "*" + tail, "COUNT", String(configuration.batchSize)))
                let (next, listed) = try page.scanPage("SCAN")
                cursor = next
                let nodes = listed.compactMap(\.string).filter { $0.hasPrefix(head) && $0.hasSuffix(tail) }
                    .map { String($0.dropFirst(head.count).dropLast(tail.count)) }
                for node in nodes {
                    let (orphan, sockets, silent) = try await isOrphan(node, grace: grace)
                    if orphan {
                        // Its expiry, estimated from the set's TTL: no table entry is left to say.
                        let expired = Date(timeIntervalSinceNow: -Double(silent - configuration.nodeTTLMilliseconds) / 1000)
                        found.append(Report.Node(nodeID: node, incarnation: "", expiredAt: expired, sockets: sockets, forgotten: false))
                    }
                }
            } while cursor != "0"
        }
        return found.sorted { $0.nodeID < $1.nodeID }
    }

    /// Whether `node` has no table entry and its set has not been refreshed by a heartbeat for
    /// longer than the node TTL plus `grace`; the set's size; milliseconds since that heartbeat.
    private func isOrphan(_ node: String, grace: Duration) async throws -> (Bool, Int, Int) {
        let replies = await client.pipeline([
            RedisCommand("HEXISTS", keys.nodeTable, node), RedisCommand("PTTL", keys.nodeSockets(node)),
            RedisCommand("SCARD", keys.nodeSockets(node)),
        ])
        let listed = try replies[0].get().int == 1
        let remaining = try replies[1].get().int ?? -2
        let silent = configuration.socketKeyTTLMilliseconds - remaining
        let orphan = !listed && remaining >= 0 && silent > configuration.nodeTTLMilliseconds + grace.milliseconds
        return (orphan, try replies[2].get().int ?? 0, silent)
    }

    /// Removes an orphan set's sockets held by that node (any incarnation: none is registered),
    /// page by page while it stays an orphan, then the set.
    private func sweepOrphan(_ node: String, grace: Duration) async throws -> (Int, Bool) {
        let writer = PresenceWriter(client: client, configuration: configuration)
        let index = keys.nodeSockets(node)
        var removed = 0
        var cursor = "0"
        repeat {
            guard try await isOrphan(node, grace: grace).0 else { return (removed, false) }  // it came back
            let page = try await client.send(RedisCommand("SSCAN", index, cursor, "COUNT", String(configuration.batchSize)))
            let (next, members) = try page.scanPage("SSCAN")
            cursor = next
            removed += try await writer.removeSockets(nodeID: node, incarnation: nil, socketIDs: members.compactMap(\.string), reason: .nodeDown)
        } while cursor != "0"
        // Its last member's SREM removed the set already, unless a member stayed (another
        // incarnation's record, which is dead too: the node has no table entry).
        if try await client.send(RedisCommand("EXISTS", index)).int == 0 { return (removed, true) }
        guard try await isOrphan(node, grace: grace).0 else { return (removed, false) }
        _ = try await client.send(RedisCommand("DEL", index))
        return (removed, true)
    }

    static func globEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }

    private func sweep(node: String, entry: NodeTable.Entry) async throws -> (Int, Bool) {
        let writer = PresenceWriter(client: client, configuration: configuration)
        let index = keys.nodeSockets(node)
        var removed = 0
        var cursor = "0"
        repeat {
            let replies = await client.pipeline([
                RedisCommand("HGET", keys.nodeTable, node),
                RedisCommand("SSCAN", index, cursor, "COUNT", String(configuration.batchSize)),
            ])
            guard try replies[0].get().string == entry.raw else { return (removed, false) }  // it came back
            let page = try replies[1].get()
            let (next, members) = try page.scanPage("SSCAN")
            cursor = next
            // Only the dead incarnation's records: a node restarted meanwhile keeps its new ones.
            removed += try await writer.removeSockets(
                nodeID: node, incarnation: entry.incarnation, socketIDs: members.compactMap(\.string), reason: .nodeDown)
        } while cursor != "0"
        let forgotten = try await client.send(PresenceScripts.forget.call(keys: [keys.nodeTable, keys.node(node)], arguments: [node, entry.raw])).int == 1
        // The set (now only ids of older incarnations, which expire) goes only with the node.
        if forgotten { _ = try await client.send(RedisCommand("DEL", index)) }
        return (removed, forgotten)
    }
}
