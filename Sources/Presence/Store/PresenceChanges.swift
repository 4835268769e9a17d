/// The change stream as an `AsyncSequence` of typed changes (``PresenceRegistry/changes(from:filter:pollInterval:)``):
/// the changes after a position, then live ones as they are recorded, until the task is cancelled.
///
/// Reads go through the registry's client without blocking it: a non-blocking `XRANGE` per stream
/// in one pipeline, then, when nothing was new, a pause of `pollInterval` (100 ms by default) —
/// one round trip per pause per reader. A blocking `XREAD` would hold the client's one
/// auto-pipelined connection for everyone, so it needs a connection of its own (the SSE fan-out
/// of `presence serve` is where one reader serves many subscribers).
///
/// To resume later, advance a ``ChangePosition`` with each change's ``PresenceChange/id``: a
/// position that lags behind filtered-out changes only reads them again.
/// - Throws (from `next()`): ``PresenceError`` with code ``PresenceError/Code/changesTrimmed``
///   when changes after the start were trimmed already; ``RedisError``.
public struct PresenceChanges: AsyncSequence, Sendable {
    public typealias Element = PresenceChange

    let registry: PresenceRegistry
    let start: ChangePosition
    let filter: ChangeFilter
    let pollInterval: Duration

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(registry: registry, position: start, filter: filter, pollInterval: pollInterval)
    }

    /// Reads in pages of up to 1,000 changes per stream.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let registry: PresenceRegistry
        /// Past every change read so far (filtered-out ones included).
        public private(set) var position: ChangePosition
        let filter: ChangeFilter
        let pollInterval: Duration
        var buffer: [PresenceChange] = []
        var next = 0
        var checked = false

        init(registry: PresenceRegistry, position: ChangePosition, filter: ChangeFilter, pollInterval: Duration) {
            self.registry = registry
            self.position = position
            self.filter = filter
            self.pollInterval = pollInterval
        }

        /// The next matching change, waiting for one to be recorded; `nil` once the task is cancelled.
        public mutating func next() async throws -> PresenceChange? {
            while true {
                if next < buffer.count {
                    next += 1
                    return buffer[next - 1]
                }
                if Task.isCancelled { return nil }
                if !checked {
                    try await registry.checkRetained(position)
                    checked = true
                }
                let read = try await registry.readChanges(after: position, count: 64)
                let moved = read.position != position
                position = read.position
                buffer = read.changes.filter(filter.matches)
                next = 0
                if !moved {
                    do { try await Task.sleep(for: pollInterval) } catch { return nil }
                }
            }
        }
    }
}

extension PresenceRegistry {
    /// The changes recorded after `position` (the start of the retained stream by default), then
    /// live ones, as typed values; see ``PresenceChanges``.
    public func changes(from position: ChangePosition = ChangePosition(), filter: ChangeFilter = ChangeFilter(), pollInterval: Duration = .milliseconds(100)) -> PresenceChanges {
        PresenceChanges(registry: self, start: position, filter: filter, pollInterval: pollInterval)
    }

    /// The position from which nothing retained is missed: just before the oldest change still in
    /// each stream (after the last one recorded, when a stream was trimmed empty). One `XINFO
    /// STREAM` per stream, in one pipeline.
    /// - Throws: ``RedisError``.
    public func oldestChangePosition() async throws -> ChangePosition {
        Self.position(of: try await streamBounds().map { $0?.floor })
    }

    /// Throws ``PresenceError/Code/changesTrimmed`` when a reader at `position` may have missed
    /// changes that are no longer retained: in some stream it is older than
    /// ``oldestChangePosition()`` (its last entry was trimmed, so what followed may have been:
    /// conservative, as resuming from the oldest position then loses nothing either way), it names
    /// a stream that no longer exists (expired after a whole retention without changes, or lost
    /// with Redis's data: its changes after the position, if any, are gone), or it is ahead of what
    /// a stream recorded (Redis lost it, and the stream recorded since may hold ids the reader would
    /// skip). One `XINFO STREAM` per stream, in one pipeline (none for the start of every stream).
    /// - Throws: ``PresenceError/Code/changesTrimmed``; ``RedisError``.
    public func checkRetained(_ position: ChangePosition) async throws {
        if position.last.isEmpty { return }
        let bounds = try await streamBounds()
        for (index, id) in position.last.sorted(by: { $0.key < $1.key }) {
            guard let asked = ChangePosition.Entry(stream: index, id: id) else { continue }
            let at = (asked.milliseconds, asked.sequence)
            let why: String
            if let (floor, last) = index < bounds.count ? bounds[index] : nil {
                if at < (floor.milliseconds, floor.sequence) {
                    why = "they were trimmed (older than the retention)"
                } else if at > (last.milliseconds, last.sequence) {
                    why = "stream \(index) never recorded \(id) (Redis lost its changes)"
                } else {
                    continue
                }
            } else {
                why = "stream \(index) no longer exists (a retention without changes, or Redis lost it)"
            }
            let oldest = Self.position(of: bounds.map { $0?.floor })
            throw PresenceError(.changesTrimmed, "changes after \(position) are not all retained: \(why); the oldest position is \(oldest)")
        }
    }

    /// The position after the newest change of every stream: reading after it gets only changes
    /// recorded later. One `XINFO STREAM` per stream, in one pipeline; a stream that does not
    /// exist is left out (read from its start, which is where its first change will be).
    /// - Throws: ``RedisError``.
    public func newestChangePosition() async throws -> ChangePosition {
        let streams = changeStreamKeys
        let replies = await client.pipeline(streams.map { RedisCommand("XINFO", "STREAM", $0).routed(by: $0) })
        var newest = ChangePosition()
        for (index, reply) in replies.enumerated() {
            switch reply {
            case .failure(let error) where error.message.contains("no such key"): continue
            case .failure(let error): throw error
            case .success(let value):
                if let last = value.fieldMap["last-generated-id"], ChangePosition.Entry(stream: index, id: last) != nil { newest.last[index] = last }
            }
        }
        return newest
    }

    /// Per stream, the id just before its first retained entry (its last generated id when it
    /// holds none) and its last generated id; `nil` when the stream does not exist.
    private func streamBounds() async throws -> [(floor: ChangePosition.Entry, last: ChangePosition.Entry)?] {
        let streams = changeStreamKeys
        let replies = await client.pipeline(streams.map { RedisCommand("XINFO", "STREAM", $0).routed(by: $0) })
        return try replies.enumerated().map { index, reply in
            switch reply {
            case .failure(let error) where error.message.contains("no such key"): return nil
            case .failure(let error): throw error
            case .success(let value):
                let info = value.fieldMap
                guard let last = info["last-generated-id"].flatMap({ ChangePosition.Entry(stream: index, id: $0) }) else { return nil }
                if info["length"] == "0" { return (last, last) }
                guard let first = info["recorded-first-entry-id"].flatMap({ ChangePosition.Entry(stream: index, id: $0) }) else { return nil }
                return (first.predecessor, last)
            }
        }
    }

    /// The position naming each stream's entry, where there is one.
    private static func position(of entries: [ChangePosition.Entry?]) -> ChangePosition {
        var position = ChangePosition()
        for (index, entry) in entries.enumerated() { if let entry { position.last[index] = entry.id } }
        return position
    }
}
