/// Timing and naming shared by nodes, the registry and the sweeper. See `docs/data-model.md`.
public struct PresenceConfiguration: Sendable, Hashable {
    /// Prefix of every key (`presence` gives `presence:r:{socket}`). No `{` or `}`.
    public var keyPrefix: String
    /// How often a node heartbeats (2 s by default).
    public var heartbeatInterval: Duration
    /// How long after its last heartbeat a node, and every socket it holds, reads as dead
    /// (6 s by default, at least 1 s, longer than ``heartbeatInterval``).
    public var nodeTTL: Duration
    /// Each socket's keys are refreshed once per this period, spread over heartbeats, and written
    /// with a TTL of 2.5 times it (10 min by default): a socket that connects just after a refresh
    /// round began waits at most two periods for its refresh, and half a period is the margin.
    /// It bounds how long a dead node's socket keys stay.
    public var socketTTL: Duration
    /// How long a dead node stays listed (with `alive: false`) before its record expires
    /// (10 min by default); the sweeper may remove it sooner.
    public var nodeRetention: Duration
    /// Most sockets written in one pipeline (resync, bursts).
    public var batchSize: Int
    /// How socket events are written: with the server's native conditional commands where it has
    /// them (``WriteCommands/automatic``), or always by script.
    public var writeCommands: WriteCommands
    /// Whether writes record the change stream (`docs/changes.md`; on by default). With changes on,
    /// socket events are written by script on every server: the native commands cannot decide and
    /// record in one atomic step.
    public var changes: Bool
    /// How long changes stay in the streams (1 h by default): each `XADD` trims entries older than
    /// this (`MINID ~`, so a few more may stay).
    public var changesRetention: Duration
    /// How long a user's last-seen time stays after its last socket went (30 days by default;
    /// zero keeps none). Written by the script calls that record the change stream, so kept
    /// only with ``changes`` on (`docs/data-model.md`, "Last seen").
    public var lastSeenRetention: Duration
    /// How long a gone socket's tombstone (when and why it went) stays (1 day by default; zero
    /// keeps none). Kept only with ``changes`` on, like ``lastSeenRetention``.
    public var socketHistoryRetention: Duration

    /// How a writer writes socket events. Both produce the same layout, so nodes of either kind
    /// work against one server together.
    public enum WriteCommands: String, Sendable, Hashable, CaseIterable {
        /// Native commands where the server has them (`SET … IFEQ` and a compare-and-delete:
        /// Valkey 9, Redis 8.4), else the Lua script.
        case automatic
        /// The Lua script (`presence_events`) on every server.
        case scripts
    }

    /// Creates a configuration.
    public init(
        keyPrefix: String = "presence",
        heartbeatInterval: Duration = .seconds(2),
        nodeTTL: Duration = .seconds(6),
        socketTTL: Duration = .seconds(600),
        nodeRetention: Duration = .seconds(600),
        batchSize: Int = 1000,
        writeCommands: WriteCommands = .automatic,
        changes: Bool = true,
        changesRetention: Duration = .seconds(3600),
        lastSeenRetention: Duration = .seconds(30 * 86_400),
        socketHistoryRetention: Duration = .seconds(86_400)
    ) {
        self.keyPrefix = keyPrefix
        self.heartbeatInterval = heartbeatInterval
        self.nodeTTL = nodeTTL
        self.socketTTL = socketTTL
        self.nodeRetention = nodeRetention
        self.batchSize = batchSize
        self.writeCommands = writeCommands
        self.changes = changes
        self.changesRetention = changesRetention
        self.lastSeenRetention = lastSeenRetention
        self.socketHistoryRetention = socketHistoryRetention
    }

    /// Checks the values against each other.
    /// - Throws: ``PresenceError`` with code ``PresenceError/Code/invalidConfiguration``.
    public func validate() throws(PresenceError) {
        func fail(_ message: String) -> PresenceError { PresenceError(.invalidConfiguration, message) }
        guard !keyPrefix.isEmpty, PresenceID.isValid(keyPrefix), !keyPrefix.contains("{"), !keyPrefix.contains("}") else {
            throw fail("keyPrefix must be printable text without '{' or '}'")
        }
        guard nodeTTL >= .seconds(1) else { throw fail("nodeTTL must be at least 1 s") }
        guard heartbeatInterval >= .milliseconds(50), heartbeatInterval < nodeTTL else {
            throw fail("heartbeatInterval must be at least 50 ms and shorter than nodeTTL (\(nodeTTL))")
        }
        guard socketTTL >= nodeTTL else { throw fail("socketTTL must be at least nodeTTL") }
        guard nodeRetention >= .zero else { throw fail("nodeRetention must not be negative") }
        guard (1...10_000).contains(batchSize) else { throw fail("batchSize must be 1–10000") }
        guard changesRetention >= .seconds(1) else { throw fail("changesRetention must be at least 1 s") }
        guard lastSeenRetention >= .zero, socketHistoryRetention >= .zero else {
            throw fail("lastSeenRetention and socketHistoryRetention must not be negative")
        }
    }

    var keys: PresenceKeys { PresenceKeys(prefix: keyPrefix) }
    var nodeTTLMilliseconds: Int { nodeTTL.milliseconds }
    /// TTL written on socket keys, node socket sets and user entries: 2.5 refresh periods.
    var socketKeyTTLMilliseconds: Int { socketTTL.milliseconds * 5 / 2 }
    var nodeRetentionMilliseconds: Int { nodeRetention.milliseconds }
    /// The retention argument of the scripts: `""` when changes are off (nothing recorded).
    var changesRetentionArgument: String { changes ? String(changesRetention.milliseconds) : "" }
    /// The last-seen retention argument of the events script: `""` keeps none (changes off, or zero).
    var lastSeenArgument: String { changes && lastSeenRetention.milliseconds > 0 ? String(lastSeenRetention.milliseconds) : "" }
    /// The socket-history retention argument of the events script: `""` keeps none.
    var socketHistoryArgument: String {
        changes && socketHistoryRetention.milliseconds > 0 ? String(socketHistoryRetention.milliseconds) : ""
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
