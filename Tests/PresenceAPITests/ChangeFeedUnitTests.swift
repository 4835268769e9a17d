import Foundation
import Hummingbird
import Presence
@testable import PresenceAPI
import Testing

@Suite("The change feed's pure parts: dedupe, bounded queues, event text")
struct ChangeFeedUnitTests {
    func change(_ kind: PresenceChange.Kind, stream: Int = 0, _ id: String, user: String? = nil) -> PresenceChange {
        let entry = ChangePosition.Entry(stream: stream, id: id)!
        return PresenceChange(kind: kind, id: entry, at: Date(timeIntervalSince1970: Double(entry.milliseconds) / 1000), userID: user)
    }

    @Test("a position has passed the entries at or before it in their stream, not others")
    func hasPassed() {
        let position = ChangePosition("0=100-2,3=90-0")!
        #expect(position.hasPassed(ChangePosition.Entry(stream: 0, id: "100-2")!))
        #expect(position.hasPassed(ChangePosition.Entry(stream: 0, id: "99-7")!))
        #expect(!position.hasPassed(ChangePosition.Entry(stream: 0, id: "100-3")!))
        #expect(!position.hasPassed(ChangePosition.Entry(stream: 1, id: "1-0")!))
        #expect(position.hasPassed(ChangePosition.Entry(stream: 3, id: "90-0")!))
    }

    @Test("history then live: changes read already are dropped, ids are the positions after each change")
    func dedupe() {
        var writer = ChangeStreamWriter(position: ChangePosition())
        let history = [change(.userOnline, "10-0", user: "a"), change(.userOffline, "11-0", user: "a")]
        let text = writer.events(history, filter: ChangeFilter(kinds: [.userOffline]))
        #expect(text == "id: 0=11-0\nevent: user.offline\ndata: {\"userId\":\"a\",\"at\":\"1970-01-01T00:00:00.011Z\"}\n\n")
        // The live queue overlaps the history: only the new one is written.
        let live = writer.events([history[1], change(.userOnline, "12-0", user: "b")], filter: nil)
        #expect(live.components(separatedBy: "event:").count == 2 && live.contains("0=12-0"))
        #expect(writer.position.description == "0=12-0")
    }

    @Test("a subscription's queue is bounded: one change too many ends it as slow and drops the queue")
    func overflow() async {
        let subscription = ChangeSubscription(filter: ChangeFilter(userIDs: ["a"]), capacity: 2)
        let first = ChangeBatch(start: ChangePosition(), changes: [change(.userOnline, "1-0", user: "a"), change(.userOnline, "2-0", user: "b")])
        #expect(subscription.offer(first))
        let second = ChangeBatch(start: first.end, changes: [change(.userOffline, "3-0", user: "a")])
        #expect(subscription.offer(second))
        let batch = await subscription.next()
        #expect(batch.parts.flatMap(\.changes).map(\.id.id) == ["1-0", "3-0"] && batch.count == 2 && batch.end == nil)
        #expect(subscription.offer(ChangeBatch(start: second.end, changes: [change(.userOnline, "4-0", user: "a"), change(.userOffline, "5-0", user: "a")])))
        #expect(!subscription.offer(ChangeBatch(start: ChangePosition("0=5-0")!, changes: [change(.userOnline, "6-0", user: "a")])))
        let last = await subscription.next()
        #expect(last.parts.isEmpty && last.end == .slow)
        #expect(await subscription.next().end == .slow)
    }

    @Test("the hub's reads: a subscriber at a read's start writes its texts as encoded; one behind drops what it read and catches up")
    func sharedReads() async {
        let first = ChangeBatch(start: ChangePosition("0=1700000000001-0")!, changes: [change(.userOnline, "1700000000002-0", user: "a"), change(.userOnline, "1700000000003-0", user: "b")])
        let second = ChangeBatch(start: first.end, changes: [change(.userOffline, "1700000000004-0", user: "b")])
        #expect(first.events[1] == "id: 0=1700000000003-0\nevent: user.online\ndata: {\"userId\":\"b\",\"at\":\"2023-11-14T22:13:20.003Z\"}\n\n")
        // Live, filtered to b: the hub's texts (ids past a's change too), then at the next read's start.
        let live = ChangeSubscription(filter: ChangeFilter(userIDs: ["b"]), capacity: 10)
        #expect(live.offer(first) && live.offer(second))
        var writer = ChangeStreamWriter(position: first.start)
        #expect(writer.events(await live.next().parts) == first.events[1] + second.events[0])
        #expect(writer.position == second.end)
        // Replayed up to 0=1700000000002-0 (and a stream the hub has not seen): the first is dropped, the second written with
        // its own position, and the position covers both reads.
        let replayed = ChangeSubscription(filter: ChangeFilter(), capacity: 10)
        #expect(replayed.offer(first) && replayed.offer(second))
        writer = ChangeStreamWriter(position: ChangePosition("0=1700000000002-0,5=7-0")!)
        let text = writer.events(await replayed.next().parts)
        #expect(text == "id: 0=1700000000003-0,5=7-0\nevent: user.online\ndata: {\"userId\":\"b\",\"at\":\"2023-11-14T22:13:20.003Z\"}\n\n"
            + "id: 0=1700000000004-0,5=7-0\nevent: user.offline\ndata: {\"userId\":\"b\",\"at\":\"2023-11-14T22:13:20.004Z\"}\n\n")
        #expect(writer.position == ChangePosition("0=1700000000004-0,5=7-0"))
    }

    @Test("entry ids: two runs of digits that fit an Int, nothing else")
    func entryIDs() {
        #expect(ChangePosition.Entry(stream: 2, id: "1700000000000-12") == ChangePosition.Entry(stream: 2, id: "1700000000000-12"))
        #expect(ChangePosition.Entry(stream: 0, id: "5-9223372036854775807")?.sequence == Int.max)
        for bad in ["", "-", "1-", "-1", "1", "1-2-3", "a-1", "1-b", "+1-0", " 1-0", "99999999999999999999-0", "1-0\n"] {
            #expect(ChangePosition.Entry(stream: 0, id: bad) == nil, "\(bad)")
        }
    }

    @Test("query parameters: types, repeated userId, nodeId, since and Last-Event-ID (which wins)")
    func query() throws {
        func parse(_ uri: String, lastEventID: String? = nil) throws -> ChangesController<AppRequestContext>.Query {
            var headers: HTTPFields = [:]
            if let lastEventID { headers.append(.init(name: .init("Last-Event-ID")!, value: lastEventID)) }
            let request = Request(head: HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: uri, headerFields: headers), body: .init(buffer: ByteBuffer()))
            return try ChangesController<AppRequestContext>.query(request)
        }
        let query = try parse("/v1/changes?types=user.online,node.down&userId=a&userId=b%20c&nodeId=n1&since=0%3D1-0")
        #expect(query.filter == ChangeFilter(kinds: [.userOnline, .nodeDown], userIDs: ["a", "b c"], nodeID: "n1"))
        #expect(query.since == ChangePosition("0=1-0"))
        #expect(try parse("/v1/changes?since=0%3D1-0", lastEventID: "2=5-5").since == ChangePosition("2=5-5"))
        #expect(try parse("/v1/changes?since=").since == ChangePosition())
        #expect(try parse("/v1/changes").since == nil)
        for bad in ["types=user.gone", "types=", "since=16%3D1-0", "nodeId=", "userId=a%25"] {
            #expect(throws: APIError.self) { try parse("/v1/changes?\(bad)") }
        }
    }
}


@Suite("The replay gate (pure)")
struct ReplayGateTests {
    actor Admitted {
        var numbers: [Int] = []
        func add(_ number: Int) { numbers.append(number) }
    }

    @Test("at most limit replays run; the others wait their turn in order; a cancelled waiter leaves; close fails the rest")
    func bounded() async throws {
        let gate = ReplayGate(limit: 2)
        try await gate.acquire()
        try await gate.acquire()
        let order = Admitted()
        let third = Task { try await gate.acquire(); await order.add(3) }
        let cancelled = Task { try await gate.acquire(); await order.add(4) }
        let fifth = Task { try await gate.acquire(); await order.add(5) }
        // All three are queued once the gate counts them (no sleeping: poll the gate's own count).
        while gate.counts.waiting < 3 { await Task.yield() }
        let none = await order.numbers
        #expect(gate.counts.running == 2 && none.isEmpty)
        cancelled.cancel()
        await #expect(throws: ReplayGate.Closed.self) { try await cancelled.value }
        #expect(gate.counts.waiting == 2)
        gate.release()
        try await third.value
        let admitted = await order.numbers
        #expect(admitted == [3] && gate.counts == (2, 1))
        gate.close()
        await #expect(throws: ReplayGate.Closed.self) { try await fifth.value }
        await #expect(throws: ReplayGate.Closed.self) { try await gate.acquire() }
        #expect(gate.counts.waiting == 0)
    }
}
