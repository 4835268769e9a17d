/// Reading the change stream (`docs/changes.md`).
extension PresenceRegistry {
    /// The stream keys of this registry: one on a single server, ``ChangeStreams/clusterCount`` on
    /// a Redis Cluster.
    public var changeStreamKeys: [String] { ChangeStreams.keys(keys, cluster: client.isCluster) }

    /// The changes recorded after `position`, up to `count` entries per stream (an entry holds
    /// the changes of one script call, at most ``ChangeStreams/changesPerEntry``), without waiting: one
    /// `XRANGE` per stream in one pipeline (each routed to its primary). Sorted by entry time
    /// (order within a stream is exact; across streams, by the primaries' clocks).
    /// - Throws: ``RedisError``.
    public func recordedChanges(after position: ChangePosition = ChangePosition(), count: Int = 64) async throws -> [PresenceChange] {
        try await readChanges(after: position, count: count).changes
    }

    /// ``recordedChanges(after:count:)`` with where the read got to: past every entry it read,
    /// those it cannot decode included (a change type of a newer version during a rolling
    /// upgrade), which a reader advancing by changes alone would read again forever.
    /// - Throws: ``RedisError``.
    public func readChanges(after position: ChangePosition, count: Int) async throws -> ChangeRead {
        let streams = changeStreamKeys
        let replies = await client.pipeline(streams.indices.map { index in
            RedisCommand("XRANGE", streams[index], position.rangeStart(index), "+", "COUNT", String(count))
        })
        var read = ChangeRead(changes: [], position: position, isPartial: false)
        for (index, reply) in replies.enumerated() {
            let entries = try reply.get().array ?? []
            // A position inside an entry reads that entry again: its changes read already are dropped.
            read.changes += changes(stream: index, entries: .array(entries)).filter { !position.hasPassed($0.id) }
            if let last = entries.last?.array?.first?.string, let entry = ChangePosition.Entry(stream: index, id: last) {
                read.position.advance(past: entry)
            }
            if entries.count >= count { read.isPartial = true }
        }
        read.changes.sort { $0.id < $1.id }
        return read
    }

    /// Decodes `XRANGE`'s entries, each into the changes it holds.
    func changes(stream: Int, entries: RedisValue) -> [PresenceChange] {
        (entries.array ?? []).flatMap { PresenceChange.decode(entry: $0, stream: stream, keys: keys) }
    }
}
