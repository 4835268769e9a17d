/// A node's changes not yet written: one per socket (the latest wins), taken in batches in the
/// order the sockets first changed.
///
/// The order lives in an array beside the dictionary. Taking a batch by iterating the dictionary
/// and deleting what was taken empties its first buckets, and Swift's open addressing then makes
/// every later insert and delete walk the long runs left behind: with a backlog of 100,000 sockets
/// (a reconnect storm) that cost grew to hundreds of microseconds per change. Taking ids from the
/// array deletes them in random bucket order, which keeps each operation O(1).
struct PendingChanges<Change> {
    private var entries: [String: (change: Change, sequence: Int)] = [:]
    /// Socket ids in the order they became pending. An id may appear again after it was taken and
    /// changed anew; an entry whose id is no longer pending is skipped when reached.
    private var order: [String] = []
    private var head = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// The pending change of `socketID` and the sequence number it was recorded with.
    subscript(socketID: String) -> (change: Change, sequence: Int)? {
        entries[socketID]
    }

    /// Records `change` as the socket's latest (replacing one not yet written).
    mutating func record(_ socketID: String, _ change: Change, sequence: Int) {
        if entries.updateValue((change, sequence), forKey: socketID) == nil { order.append(socketID) }
    }

    /// Takes up to `limit` changes, oldest socket first, skipping (and keeping) those `keep` says.
    mutating func take(upTo limit: Int, keeping keep: (String) -> Bool) -> [(socketID: String, change: Change, sequence: Int)] {
        var taken: [(socketID: String, change: Change, sequence: Int)] = []
        taken.reserveCapacity(min(limit, entries.count))
        var kept: [String] = []
        while taken.count < limit, head < order.count {
            let id = order[head]
            head += 1
            if keep(id) {
                if entries[id] != nil { kept.append(id) }
            } else if let entry = entries.removeValue(forKey: id) {
                taken.append((id, entry.change, entry.sequence))
            }
        }
        if entries.isEmpty {
            order.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= order.count {
            order.removeFirst(head)
            head = 0
        }
        order.append(contentsOf: kept)
        return taken
    }

    /// Takes every change.
    mutating func takeAll() -> [(socketID: String, change: Change, sequence: Int)] {
        defer { removeAll() }
        return entries.map { ($0.key, $0.value.change, $0.value.sequence) }
    }

    mutating func removeAll() {
        entries = [:]
        order = []
        head = 0
    }

    /// The sequence numbers of the pending changes, in no order.
    var sequences: some Sequence<Int> { entries.values.lazy.map(\.sequence) }
}
