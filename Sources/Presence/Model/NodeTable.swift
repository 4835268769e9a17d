/// The liveness table (`{registry}:nodes`) decoded, with the Redis time it was read at: the one
/// place the liveness rule lives.
struct NodeTable: Sendable {
    struct Entry: Sendable, Hashable {
        var expiresAt: Int
        var incarnation: String
        var address: String
        /// The raw value, for the sweeper's compare-and-delete.
        var raw: String
    }

    /// Redis server time in milliseconds when the table was read.
    var now: Int
    var entries: [String: Entry]

    /// Decodes a table from `HGETALL` and the `TIME` read in the same pipeline.
    init(time: RedisValue, fields: RedisValue) {
        now = Self.milliseconds(time)
        entries = [:]
        for (node, value) in fields.fieldMap {
            if let entry = Self.entry(value) { entries[node] = entry }
        }
    }

    /// Decodes the entries of `nodes` from an `HMGET` of the table and the `TIME` read in the
    /// same pipeline: the part of the table a lookup needs, whatever the number of nodes.
    init(time: RedisValue, nodes: [String], values: RedisValue) {
        now = Self.milliseconds(time)
        entries = [:]
        for (node, value) in zip(nodes, values.array ?? []) {
            if let raw = value.string, let entry = Self.entry(raw) { entries[node] = entry }
        }
    }

    init(now: Int, entries: [String: Entry]) {
        self.now = now
        self.entries = entries
    }

    /// Parses `expiresAtMs␟incarnation␟address`.
    static func entry(_ value: String) -> Entry? {
        let parts = value.split(separator: "\u{1F}", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let expiresAt = Int(parts[0]) else { return nil }
        return Entry(expiresAt: expiresAt, incarnation: String(parts[1]), address: String(parts[2]), raw: value)
    }

    /// `TIME` reply (`[seconds, microseconds]`) in milliseconds.
    static func milliseconds(_ time: RedisValue) -> Int {
        guard let parts = time.array, parts.count == 2, let seconds = parts[0].int, let micros = parts[1].int else { return 0 }
        return seconds * 1000 + micros / 1000
    }

    /// Whether `node` is alive with `incarnation`: the rule behind every liveness answer.
    func isAlive(node: String, incarnation: String) -> Bool {
        guard let entry = entries[node] else { return false }
        return entry.incarnation == incarnation && entry.expiresAt > now
    }
}
