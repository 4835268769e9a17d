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
        #expect(subscription.offer([change(.userOnline, "1-0", user: "a"), change(.userOnline, "2-0", user: "b")]))
        #expect(subscription.offer([change(.userOffline, "3-0", user: "a")]))
        let batch = await subscription.next()
        #expect(batch.changes.map(\.id.id) == ["1-0", "3-0"] && batch.end == nil)
        #expect(subscription.offer([change(.userOnline, "4-0", user: "a"), change(.userOffline, "5-0", user: "a")]))
        #expect(!subscription.offer([change(.userOnline, "6-0", user: "a")]))
        let last = await subscription.next()
        #expect(last.changes.isEmpty && last.end == .slow)
        #expect(await subscription.next().end == .slow)
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

