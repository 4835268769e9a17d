/// A node's changes not yet written, one per socket (the latest wins), and the sockets a batch in
/// flight is writing (a socket is in at most one batch). Changes are taken in batches in the order
/// the sockets first changed; a change recorded while its socket is in flight waits until that
/// batch finished.
///
/// One dictionary holds both, so an event costs three lookups (record, take, finish). The order
/// lives in an array beside it: taking a batch by iterating the dictionary and deleting what was
/// taken empties its first buckets, and Swift's open addressing then makes every later insert and
/// delete walk the long runs left behind (with a backlog of 100,000 sockets, as in a reconnect
/// storm, hundreds of microseconds per change). Taken from the array, ids leave in random bucket
/// order, and each operation stays O(1).
struct PendingChanges<Change> {
    private struct Entry {
        var change: Change?
        var sequence = 0
        var inFlight = false
    }

    private var entries: [String: Entry] = [:]
    /// Ids whose change can be taken, in the order they became so. An id may appear again after
    /// it was taken and changed anew; an entry with nothing to take is skipped when reached.
    private var order: [String] = []
    private var head = 0
    /// Changes recorded and not taken.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// The pending change of `socketID` and the sequence number it was recorded with.
    subscript(socketID: String) -> (change: Change, sequence: Int)? {
        guard let entry = entries[socketID], let change = entry.change else { return nil }
        return (change, entry.sequence)
    }

    /// Whether a batch in flight is writing `socketID`.
    func isInFlight(_ socketID: String) -> Bool { entries[socketID]?.inFlight ?? false }

    /// Records `change` as the socket's latest (replacing one not yet written).
    mutating func record(_ socketID: String, _ change: Change, sequence: Int) {
        // One lookup: the entry is updated in place.
        let (added, inFlight) = Self.update(&entries[socketID, default: Entry()], change, sequence)
        if added {
            count += 1
            if !inFlight { order.append(socketID) }
        }
    }

    /// Sets the entry's change; returns whether it had none, and whether it is in flight.
    private static func update(_ entry: inout Entry, _ change: Change, _ sequence: Int) -> (added: Bool, inFlight: Bool) {
        let added = entry.change == nil
        entry.change = change
        entry.sequence = sequence
        return (added, entry.inFlight)
    }

    /// Takes up to `limit` changes, oldest socket first, and marks their sockets in flight.
    mutating func take(upTo limit: Int) -> [(socketID: String, change: Change, sequence: Int)] {
        var taken: [(socketID: String, change: Change, sequence: Int)] = []
        taken.reserveCapacity(min(limit, count))
        while taken.count < limit, head < order.count {
            let id = order[head]
            head += 1
            guard let index = entries.index(forKey: id), !entries.values[index].inFlight,
                  let change = entries.values[index].change else { continue }
            taken.append((id, change, entries.values[index].sequence))
            entries.values[index].change = nil
            entries.values[index].inFlight = true
        }
        count -= taken.count
        if head == order.count {
            order.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= order.count {
            order.removeFirst(head)
            head = 0
        }
        return taken
    }

    /// Marks sockets in flight that a batch writes from the local truth (a rewrite), without a
    /// pending change of theirs.
    mutating func markInFlight(_ socketIDs: some Sequence<String>) {
        for id in socketIDs { entries[id, default: Entry()].inFlight = true }
    }

    /// A batch writing `socketIDs` finished: a change recorded meanwhile can be taken now.
    mutating func finished(_ socketIDs: some Sequence<String>) {
        for id in socketIDs {
            guard let index = entries.index(forKey: id) else { continue }
            if entries.values[index].change == nil {
                entries.remove(at: index)
            } else {
                entries.values[index].inFlight = false
                order.append(id)
            }
        }
    }

    /// Takes every change, leaving what is in flight as it is.
    mutating func takeAll() -> [(socketID: String, change: Change, sequence: Int)] {
        var taken: [(socketID: String, change: Change, sequence: Int)] = []
        for (id, entry) in entries {
            if let change = entry.change { taken.append((id, change, entry.sequence)) }
        }
        entries = entries.filter { $0.value.inFlight }.mapValues { _ in Entry(change: nil, sequence: 0, inFlight: true) }
        order = []
        head = 0
        count = 0
        return taken
    }

    /// Forgets every change and every socket in flight.
    mutating func removeAll() {
        entries = [:]
        order = []
        head = 0
        count = 0
    }

    /// The sequence numbers of the pending changes, in no order.
    var sequences: some Sequence<Int> { entries.values.lazy.compactMap { $0.change == nil ? nil : $0.sequence } }
}
