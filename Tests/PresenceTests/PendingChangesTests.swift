@testable import Presence
import Testing

@Suite("Pending changes: the latest per socket, taken oldest socket first, one batch per socket")
struct PendingChangesTests {
    @Test("a socket changed twice is pending once, with its latest change, at its first position")
    func coalesces() {
        var pending = PendingChanges<String>()
        pending.record("a", "connect", sequence: 1)
        pending.record("b", "connect", sequence: 2)
        pending.record("a", "disconnect", sequence: 3)
        #expect(pending.count == 2)
        let taken = pending.take(upTo: 10)
        #expect(taken.map(\.socketID) == ["a", "b"])
        #expect(taken.map(\.change) == ["disconnect", "connect"])
        #expect(taken.map(\.sequence) == [3, 2])
        #expect(pending.isEmpty)
    }

    @Test("batches come in order of first change, up to the limit")
    func takesInOrder() {
        var pending = PendingChanges<Int>()
        for i in 0..<10 { pending.record("s\(i)", i, sequence: i) }
        #expect(pending.take(upTo: 4).map(\.socketID) == ["s0", "s1", "s2", "s3"])
        #expect(pending.count == 6)
        #expect(pending.take(upTo: 100).map(\.socketID) == ["s4", "s5", "s6", "s7", "s8", "s9"])
        #expect(pending.isEmpty)
        #expect(pending.take(upTo: 100).isEmpty)
    }

    @Test("a change recorded while its socket is in flight is taken only after that batch finished")
    func inFlightWaits() {
        var pending = PendingChanges<Int>()
        pending.record("a", 1, sequence: 1)
        #expect(pending.take(upTo: 10).map(\.socketID) == ["a"])
        #expect(pending.isInFlight("a"))
        pending.record("a", 2, sequence: 2)
        pending.record("b", 1, sequence: 3)
        #expect(pending.count == 2)
        #expect(pending["a"]?.change == 2)
        #expect(pending.take(upTo: 10).map(\.socketID) == ["b"])
        pending.finished(["a"])
        #expect(!pending.isInFlight("a"))
        let next = pending.take(upTo: 10)
        #expect(next.map(\.socketID) == ["a"])
        #expect(next.map(\.change) == [2])
        pending.finished(["a", "b"])
        #expect(!pending.isInFlight("a") && !pending.isInFlight("b"))
        #expect(pending.isEmpty && pending["a"] == nil)
    }

    @Test("sockets a rewrite writes are in flight without a change of theirs")
    func markedInFlight() {
        var pending = PendingChanges<Int>()
        pending.markInFlight(["r"])
        #expect(pending.isInFlight("r") && pending.isEmpty)
        pending.record("r", 1, sequence: 1)
        #expect(pending.take(upTo: 10).isEmpty)
        pending.finished(["r"])
        #expect(pending.take(upTo: 10).map(\.socketID) == ["r"])
    }

    @Test("a long backlog taken in many batches yields every socket exactly once")
    func longBacklog() {
        var pending = PendingChanges<Int>()
        for i in 0..<10_000 { pending.record("s\(i)", i, sequence: i) }
        var seen = Set<String>()
        var added = 10_000
        while !pending.isEmpty {
            let batch = pending.take(upTo: 100)
            for item in batch { #expect(seen.insert(item.socketID).inserted) }
            pending.finished(batch.map(\.socketID))
            if added < 15_000 {  // new sockets keep arriving while the backlog drains
                for _ in 0..<50 { pending.record("s\(added)", added, sequence: added); added += 1 }
            }
        }
        #expect(seen.count == 15_000)
        #expect(pending.sequences.first { _ in true } == nil)
    }

    @Test("takeAll takes every change and keeps what is in flight; sequences cover what is pending")
    func takeAllAndSequences() {
        var pending = PendingChanges<Int>()
        pending.record("a", 1, sequence: 7)
        pending.record("b", 1, sequence: 5)
        pending.record("c", 1, sequence: 9)
        #expect(pending.take(upTo: 1).map(\.socketID) == ["a"])
        pending.record("a", 2, sequence: 10)
        #expect(pending.sequences.min() == 5)
        #expect(Set(pending.takeAll().map(\.socketID)) == ["a", "b", "c"])
        #expect(pending.isEmpty && pending.count == 0)
        #expect(pending.isInFlight("a"))
    }
}
