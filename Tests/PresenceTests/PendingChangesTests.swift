@testable import Presence
import Testing

@Suite("Pending changes: the latest per socket, taken oldest socket first")
struct PendingChangesTests {
    @Test("a socket changed twice is pending once, with its latest change, at its first position")
    func coalesces() {
        var pending = PendingChanges<String>()
        pending.record("a", "connect", sequence: 1)
        pending.record("b", "connect", sequence: 2)
        pending.record("a", "disconnect", sequence: 3)
        #expect(pending.count == 2)
        let taken = pending.take(upTo: 10) { _ in false }
        #expect(taken.map(\.socketID) == ["a", "b"])
        #expect(taken.map(\.change) == ["disconnect", "connect"])
        #expect(taken.map(\.sequence) == [3, 2])
        #expect(pending.isEmpty)
    }

    @Test("batches come in order of first change, up to the limit; kept ids stay pending and come later")
    func takesInOrderKeepingBusy() {
        var pending = PendingChanges<Int>()
        for i in 0..<10 { pending.record("s\(i)", i, sequence: i) }
        let first = pending.take(upTo: 4) { $0 == "s1" }
        #expect(first.map(\.socketID) == ["s0", "s2", "s3", "s4"])
        #expect(pending.count == 6)
        #expect(pending["s1"]?.change == 1)
        let second = pending.take(upTo: 100) { _ in false }
        #expect(second.map(\.socketID) == ["s5", "s6", "s7", "s8", "s9", "s1"])
        #expect(pending.isEmpty)
        #expect(pending.take(upTo: 100) { _ in false }.isEmpty)
    }

    @Test("a socket taken and changed again is pending again, once")
    func changedAfterTaken() {
        var pending = PendingChanges<Int>()
        pending.record("a", 1, sequence: 1)
        pending.record("b", 1, sequence: 2)
        #expect(pending.take(upTo: 1) { _ in false }.map(\.socketID) == ["a"])
        pending.record("a", 2, sequence: 3)
        let rest = pending.take(upTo: 10) { _ in false }
        #expect(rest.map(\.socketID) == ["b", "a"])
        #expect(rest.map(\.change) == [1, 2])
    }

    @Test("a long backlog taken in many batches yields every socket exactly once")
    func longBacklog() {
        var pending = PendingChanges<Int>()
        for i in 0..<10_000 { pending.record("s\(i)", i, sequence: i) }
        var seen = Set<String>()
        var added = 10_000
        while !pending.isEmpty {
            for item in pending.take(upTo: 100, keeping: { _ in false }) { #expect(seen.insert(item.socketID).inserted) }
            if added < 15_000 {  // new sockets keep arriving while the backlog drains
                for _ in 0..<50 { pending.record("s\(added)", added, sequence: added); added += 1 }
            }
        }
        #expect(seen.count == 15_000)
        #expect(pending.sequences.first { _ in true } == nil)
    }

    @Test("takeAll empties it, sequences cover what is pending")
    func takeAllAndSequences() {
        var pending = PendingChanges<Int>()
        pending.record("a", 1, sequence: 7)
        pending.record("b", 1, sequence: 5)
        #expect(pending.sequences.min() == 5)
        #expect(Set(pending.takeAll().map(\.socketID)) == ["a", "b"])
        #expect(pending.isEmpty && pending.count == 0)
    }
}
