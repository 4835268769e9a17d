/// A node's sockets and their changes not yet written: per socket id one slot holding the socket
/// as the node has it now (`nil` once it is gone), its latest change not yet taken (only the
/// latest matters) and whether a batch in flight is writing it (a socket is in at most one).
/// Changes are taken in batches in the order their sockets first changed; a change recorded while
/// its socket is in flight waits until that batch finished.
///
/// One dictionary maps ids to slots, which live in an array; a batch keeps the slots it took, and
/// the order of changes is a list of slots. So an event costs one lookup of its id when it is
/// recorded and none when it is taken or finished, and a socket's slot is freed (its id's one
/// delete) only once it is gone and written. The order is a list rather than an iteration of the
/// dictionary: taking from the front of a dictionary and deleting what was taken empties its
/// first buckets, and Swift's open addressing then makes every later insert and delete walk the
/// long runs left behind (with a backlog of 100,000 sockets, hundreds of microseconds a change).
struct LocalSockets<Socket, Change> {
    /// A socket's place; valid from ``update(_:socket:change:sequence:)`` until its write finished
    /// with the socket gone.
    typealias Slot = Int

    /// What a slot holds.
    struct Entry {
        var id: String
        var socket: Socket?
        var change: Change?
        var sequence = 0
        var inFlight = false

        /// Nothing refers to it any more: its id can be forgotten.
        var isIdle: Bool { socket == nil && change == nil && !inFlight }
    }

    private var slots: [String: Slot] = [:]
    private var entries: [Entry] = []
    private var freeSlots: [Slot] = []
    /// Slots whose change can be taken, in the order they became so. A slot may appear again
    /// after it was taken and changed anew, or freed and reused; one with nothing to take is
    /// skipped when reached.
    private var order: [Slot] = []
    private var head = 0
    /// Sockets held.
    private(set) var count = 0
    /// Changes recorded and not taken.
    private(set) var pendingCount = 0

    var isEmpty: Bool { count == 0 }
    var hasPending: Bool { pendingCount > 0 }

    /// The socket `id` names, if the node holds it.
    subscript(id: String) -> Socket? {
        guard let slot = slots[id] else { return nil }
        return entries[slot].socket
    }

    /// The slot of `id`, while it has one.
    func slot(_ id: String) -> Slot? { slots[id] }

    /// What `slot` holds.
    subscript(slot slot: Slot) -> Entry { entries[slot] }

    /// Sets the socket `id` names (`nil`: it is gone) and records `change` as its latest (replacing
    /// one not yet taken). Returns the socket it replaced.
    @discardableResult
    mutating func update(_ id: String, socket: Socket?, change: Change, sequence: Int) -> Socket? {
        // One lookup: a new id's slot is claimed inside the dictionary's own update.
        update(slot: Self.claim(&slots[id, default: -1], id, &entries, &freeSlots), socket: socket, change: change, sequence: sequence)
    }

    /// ``update(_:socket:change:sequence:)`` of the socket in `slot`, found already.
    @discardableResult
    mutating func update(slot: Slot, socket: Socket?, change: Change, sequence: Int) -> Socket? {
        let previous = entries[slot].socket
        entries[slot].socket = socket
        count += (socket == nil ? 0 : 1) - (previous == nil ? 0 : 1)
        record(slot, change, sequence: sequence)
        return previous
    }

    private static func claim(_ slot: inout Slot, _ id: String, _ entries: inout [Entry], _ freeSlots: inout [Slot]) -> Slot {
        if slot >= 0 { return slot }
        if let free = freeSlots.popLast() {
            entries[free] = Entry(id: id)
            slot = free
        } else {
            slot = entries.count
            entries.append(Entry(id: id))
        }
        return slot
    }

    /// Records `change` as the latest of the socket in `slot`.
    mutating func record(_ slot: Slot, _ change: Change, sequence: Int) {
        let added = entries[slot].change == nil
        entries[slot].change = change
        entries[slot].sequence = sequence
        if added {
            pendingCount += 1
            if !entries[slot].inFlight { order.append(slot) }
        }
    }

    /// Takes up to `limit` changes, oldest first, and marks their sockets in flight.
    mutating func take(upTo limit: Int) -> [(slot: Slot, entry: Entry)] {
        var taken: [(slot: Slot, entry: Entry)] = []
        taken.reserveCapacity(min(limit, pendingCount))
        while taken.count < limit, head < order.count {
            let slot = order[head]
            head += 1
            guard !entries[slot].inFlight, entries[slot].change != nil else { continue }
            taken.append((slot, entries[slot]))
            entries[slot].change = nil
            entries[slot].inFlight = true
        }
        pendingCount -= taken.count
        if head == order.count {
            order.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= order.count {
            order.removeFirst(head)
            head = 0
        }
        return taken
    }

    /// Marks `slot` in flight for a batch that writes it from the local truth (a rewrite),
    /// without a pending change of its own.
    mutating func markInFlight(_ slot: Slot) {
        entries[slot].inFlight = true
    }

    /// A batch writing `slots` finished: a change recorded meanwhile can be taken now, and a socket
    /// gone with nothing left to write is forgotten.
    mutating func finished(_ slots: some Sequence<Slot>) {
        for slot in slots {
            entries[slot].inFlight = false
            if entries[slot].change != nil {
                order.append(slot)
            } else {
                release(slot)
            }
        }
    }

    private mutating func release(_ slot: Slot) {
        guard entries[slot].isIdle, !entries[slot].id.isEmpty else { return }
        slots.removeValue(forKey: entries[slot].id)
        entries[slot] = Entry(id: "")
        freeSlots.append(slot)
    }

    /// Takes every change, leaving what is in flight as it is.
    mutating func takeAll() -> [Entry] {
        var taken: [Entry] = []
        for slot in entries.indices where entries[slot].change != nil {
            taken.append(entries[slot])
            entries[slot].change = nil
            release(slot)
        }
        order = []
        head = 0
        pendingCount = 0
        return taken
    }

    /// Forgets every change and every batch in flight; the sockets stay.
    mutating func forgetChanges() {
        for slot in entries.indices {
            entries[slot].change = nil
            entries[slot].inFlight = false
            release(slot)
        }
        order = []
        head = 0
        pendingCount = 0
    }

    /// The sequence numbers of the changes that can be taken, in no order: not every slot's. A
    /// change recorded while its socket is in flight is left out until that batch finished; it is
    /// newer than every change the batch carries.
    var sequences: some Sequence<Int> {
        order[head...].lazy.compactMap { [entries] in entries[$0].change == nil ? nil : entries[$0].sequence }
    }

    /// The slots of the sockets held, in no order.
    var held: some Sequence<Entry> { entries.lazy.filter { $0.socket != nil } }

    /// The ids of the sockets held, in no order.
    var ids: [String] { held.map(\.id) }
}
