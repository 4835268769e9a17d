@testable import Presence
import Testing

@Suite("Local sockets: the latest change per socket, taken oldest first, one batch per socket, a slot per id")
struct LocalSocketsTests {
    typealias Table = LocalSockets<String, String>

    /// Takes up to `limit` changes, as (id, change) pairs, and the slots to finish them with.
    static func take(_ table: inout Table, _ limit: Int = 100) -> (ids: [String], changes: [String], slots: [Int]) {
        let taken = table.take(upTo: limit)
        return (taken.map(\.entry.id), taken.map { $0.entry.change! }, taken.map(\.slot))
    }

    @Test("a socket changed twice is pending once, with its latest change and socket, at its first position")
    func coalesces() {
        var table = Table()
        table.update("a", socket: "A1", change: "connect", sequence: 1)
        table.update("b", socket: "B", change: "connect", sequence: 2)
        #expect(table.update("a", socket: nil, change: "disconnect", sequence: 3) == "A1")
        #expect(table.pendingCount == 2 && table.count == 1)
        let taken = table.take(upTo: 10)
        #expect(taken.map(\.entry.id) == ["a", "b"])
        #expect(taken.map(\.entry.change) == ["disconnect", "connect"])
        #expect(taken.map(\.entry.sequence) == [3, 2])
        #expect(taken.map(\.entry.socket) == [nil, "B"])
        #expect(!table.hasPending)
    }

    @Test("batches come in order of first change, up to the limit")
    func takesInOrder() {
        var table = Table()
        for i in 0..<10 { table.update("s\(i)", socket: "x", change: "c", sequence: i) }
        #expect(Self.take(&table, 4).ids == ["s0", "s1", "s2", "s3"])
        #expect(table.pendingCount == 6)
        #expect(Self.take(&table).ids == ["s4", "s5", "s6", "s7", "s8", "s9"])
        #expect(!table.hasPending && table.count == 10)
        #expect(Self.take(&table).ids.isEmpty)
    }

    @Test("a change recorded while its socket is in flight is taken only after that batch finished")
    func inFlightWaits() {
        var table = Table()
        table.update("a", socket: "A", change: "1", sequence: 1)
        let first = Self.take(&table)
        #expect(first.ids == ["a"])
        #expect(table[slot: table.slot("a")!].inFlight)
        table.update("a", socket: "A", change: "2", sequence: 2)
        table.update("b", socket: "B", change: "1", sequence: 3)
        #expect(table.pendingCount == 2)
        #expect(Array(table.sequences) == [3])  // a's change waits behind its batch
        let second = Self.take(&table)
        #expect(second.ids == ["b"])
        table.finished(first.slots)
        #expect(!table[slot: table.slot("a")!].inFlight)
        let third = Self.take(&table)
        #expect(third.ids == ["a"] && third.changes == ["2"])
        table.finished(second.slots + third.slots)
        #expect(!table.hasPending && table.count == 2)
    }

    @Test("a gone socket keeps its slot until its disconnect was written, then its id is forgotten and the slot reused")
    func goneSocketsAreForgotten() {
        var table = Table()
        table.update("a", socket: "A", change: "connect", sequence: 1)
        table.finished(Self.take(&table).slots)
        let slot = table.slot("a")!
        table.update("a", socket: nil, change: "disconnect", sequence: 2)
        #expect(table["a"] == nil && table.slot("a") == slot && table.count == 0)
        let taken = Self.take(&table)
        #expect(taken.changes == ["disconnect"] && table.slot("a") == slot)
        table.finished(taken.slots)
        #expect(table.slot("a") == nil)
        table.update("b", socket: "B", change: "connect", sequence: 3)
        #expect(table.slot("b") == slot && table["b"] == "B")
    }

    @Test("a socket that came back while its disconnect was in flight keeps its slot and its new change")
    func comesBackInFlight() {
        var table = Table()
        table.update("a", socket: "A", change: "connect", sequence: 1)
        table.finished(Self.take(&table).slots)
        table.update("a", socket: nil, change: "disconnect", sequence: 2)
        let taken = Self.take(&table)
        table.update("a", socket: "A2", change: "connect", sequence: 3)
        table.finished(taken.slots)
        #expect(table["a"] == "A2" && table.count == 1)
        #expect(Self.take(&table).changes == ["connect"])
    }

    @Test("sockets a rewrite writes are in flight without a change of theirs")
    func markedInFlight() {
        var table = Table()
        table.update("r", socket: "R", change: "c", sequence: 1)
        let first = Self.take(&table)
        table.finished(first.slots)
        let slot = table.slot("r")!
        table.markInFlight(slot)
        #expect(table[slot: slot].inFlight && !table.hasPending)
        table.record(slot, "again", sequence: 2)
        #expect(Self.take(&table).ids.isEmpty)
        table.finished([slot])
        #expect(Self.take(&table).ids == ["r"])
    }

    @Test("a long backlog taken in many batches yields every change once, and gone sockets are forgotten")
    func longBacklog() {
        var table = Table()
        for i in 0..<10_000 { table.update("s\(i)", socket: "x", change: "connect", sequence: i) }
        var taken: [String: [String]] = [:]
        var added = 10_000
        var gone = 0
        while table.hasPending {
            let batch = Self.take(&table)
            #expect(Set(batch.ids).count == batch.ids.count)
            for (id, change) in zip(batch.ids, batch.changes) { taken[id, default: []].append(change) }
            table.finished(batch.slots)
            if added < 15_000 {  // new sockets keep arriving, and early ones go, while the backlog drains
                for _ in 0..<50 { table.update("s\(added)", socket: "x", change: "connect", sequence: added); added += 1 }
                table.update("s\(gone)", socket: nil, change: "disconnect", sequence: added)
                gone += 1
            }
        }
        // The first batch held s0…s99, each written before it went.
        #expect(gone == 100)
        #expect(taken.count == 15_000)
        for i in 0..<15_000 { #expect(taken["s\(i)"] == (i < gone ? ["connect", "disconnect"] : ["connect"])) }
        #expect(table.sequences.first { _ in true } == nil)
        #expect(table.count == 15_000 - gone)
        #expect(Set(table.ids).count == 15_000 - gone)
        #expect((0..<gone).allSatisfy { table.slot("s\($0)") == nil })
    }

    @Test("takeAll takes every change and keeps what is in flight; sequences cover what can be taken")
    func takeAllAndSequences() {
        var table = Table()
        table.update("a", socket: "A", change: "1", sequence: 7)
        table.update("b", socket: "B", change: "1", sequence: 5)
        table.update("c", socket: nil, change: "1", sequence: 9)
        #expect(Self.take(&table, 1).ids == ["a"])
        table.update("a", socket: "A", change: "2", sequence: 10)
        #expect(table.sequences.min() == 5)
        #expect(Set(table.takeAll().map(\.id)) == ["a", "b", "c"])
        #expect(!table.hasPending && table.pendingCount == 0)
        #expect(table[slot: table.slot("a")!].inFlight)
        #expect(table.slot("c") == nil)  // gone, and nothing left to write
    }

    @Test("forgetting changes keeps the sockets and forgets the gone ones")
    func forgetChanges() {
        var table = Table()
        table.update("a", socket: "A", change: "1", sequence: 1)
        table.update("b", socket: nil, change: "1", sequence: 2)
        _ = Self.take(&table, 1)
        table.forgetChanges()
        #expect(!table.hasPending && table.count == 1 && table["a"] == "A")
        #expect(!table[slot: table.slot("a")!].inFlight && table.slot("b") == nil)
    }
}
