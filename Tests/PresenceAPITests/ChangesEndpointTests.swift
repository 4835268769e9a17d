import Foundation
import Hummingbird
import HummingbirdTesting
import Presence
@testable import PresenceAPI
import PresenceEmbedded
import PresenceTestSupport
import Testing

/// Runs `body` against a live server whose change feed uses `feed`, with its hub (for its counters).
func withChangesAPI(
    _ server: RedisServer, feed: ChangeFeedConfiguration = ChangeFeedConfiguration(pollInterval: .milliseconds(20)),
    _ body: @escaping @Sendable (Int, ChangeHub, RedisClient) async throws -> Void
) async throws {
    try await withChangesAPI(server.configuration, feed: feed, body)
}

/// The same against any Redis (a cluster's seed, say), under `keyPrefix`.
func withChangesAPI(
    _ redis: RedisConfiguration, keyPrefix: String = "presence", feed: ChangeFeedConfiguration = ChangeFeedConfiguration(pollInterval: .milliseconds(20)),
    _ body: @escaping @Sendable (Int, ChangeHub, RedisClient) async throws -> Void
) async throws {
    var options = testOptions(nodeTTL: .seconds(30))
    options.presence.keyPrefix = keyPrefix
    options.changeFeed = feed
    let client = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: testLogger())
    let hub = buildChangeHub(client: client, options: options)
    let app = buildApplication(client: client, options: options, logger: testLogger(), changeHub: hub)
    try await app.test(.live) { http in
        let port = try #require(http.port)
        try await body(port, hub, client)
    }
}

/// A write through the reporting API (write token).
@discardableResult
func report(_ port: Int, _ method: String, _ path: String, _ body: String? = nil) async throws -> RawHTTPResponse {
    let answer = try await RawHTTPResponse.send(
        port: port, method, path,
        headers: [("Host", "127.0.0.1"), ("Authorization", "Bearer \(writeToken)")] + (body == nil ? [] : [("Content-Type", "application/json")]),
        body: body)
    #expect(answer.status < 300, "\(method) \(path): \(answer.status) \(answer.body)")
    return answer
}

/// Opens a subscription and waits until the server registered it (its `: subscribed` comment).
func subscribe(_ port: Int, _ path: String = "/v1/changes", headers: [(String, String)] = [], receiveBuffer: Int32? = nil) async throws -> SSEClient {
    let client = try await SSEClient.connect(port: port, path, headers: headers, receiveBuffer: receiveBuffer)
    #expect(client.status == 200, "\(path): \(client.status) \(client.body)")
    #expect(client.headers["content-type"]?.hasPrefix("text/event-stream") == true)
    try await client.awaitComment("subscribed")
    return client
}

/// `kind socketId|userId|nodeId` of an event, for comparing sequences.
func summary(_ event: SSEClient.Event) -> String {
    let json = event.json
    let subject = (json["socketId"] ?? json["userId"] ?? json["nodeId"]) as? String ?? "?"
    return "\(event.event ?? "?") \(subject)"
}

@Suite("GET /v1/changes: server-sent events through one hub per server")
struct ChangesEndpointTests {
    @Test("a subscriber sees connect, user.online, disconnect, user.offline in order, with the fields and RFC 3339 times; filters pick")
    func orderAndFilters() async throws {
        let server = try await RedisServer.start()
        try await withChangesAPI(server) { port, _, _ in
            let all = try await subscribe(port)
            let users = try await subscribe(port, "/v1/changes?types=user.online,user.offline")
            let alice = try await subscribe(port, "/v1/changes?userId=alice&userId=carol")
            let node2 = try await subscribe(port, "/v1/changes?nodeId=node-2")
            defer { for client in [all, users, alice, node2] { client.disconnect() } }

            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            try await report(port, "PUT", "/v1/nodes/node-2", "{}")
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"s1","userId":"alice"},{"type":"connect","socketId":"s2","userId":"bob"}]}"#)
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"disconnect","socketId":"s1"}]}"#)
            // (A connect and a disconnect of one user socket in ONE batch record nothing: the
            // user index follows each socket's last event in a batch; see docs/changes.md.)
            try await report(port, "POST", "/v1/nodes/node-2/events", #"{"events":[{"type":"connect","socketId":"s3","userId":"carol"}]}"#)
            try await report(port, "POST", "/v1/nodes/node-2/events", #"{"events":[{"type":"disconnect","socketId":"s3"}]}"#)

            let seen = try await all.events { summary($0) == "user.offline carol" }
            #expect(seen.map(summary) == [
                "node.up node-1", "node.up node-2",
                "socket.connected s1", "user.online alice", "socket.connected s2", "user.online bob",
                "socket.disconnected s1", "user.offline alice",
                "socket.connected s3", "user.online carol", "socket.disconnected s3", "user.offline carol",
            ])
            let connected = try #require(seen.first { summary($0) == "socket.connected s1" })
            #expect(connected.json["nodeId"] as? String == "node-1" && connected.json["userId"] as? String == "alice")
            let at = try #require(connected.json["at"] as? String)
            #expect(Timestamp.parse(at) != nil && at.hasSuffix("Z") && at.count == 24)
            #expect((connected.json["connectedAt"] as? String).flatMap(Timestamp.parse) != nil)
            let gone = try #require(seen.first { summary($0) == "socket.disconnected s1" })
            #expect(gone.json["reason"] as? String == "disconnected")
            #expect((seen[0].json["incarnation"] as? String)?.isEmpty == false)
            // Every id is a position that parses, and they advance.
            #expect(seen.allSatisfy { $0.id.flatMap { ChangePosition($0) } != nil })

            #expect(try await users.events { summary($0) == "user.offline carol" }.map(summary) == [
                "user.online alice", "user.online bob", "user.offline alice", "user.online carol", "user.offline carol",
            ])
            #expect(try await alice.events { summary($0) == "user.offline carol" }.map(summary) == [
                "socket.connected s1", "user.online alice", "socket.disconnected s1", "user.offline alice",
                "socket.connected s3", "user.online carol", "socket.disconnected s3", "user.offline carol",
            ])
            // user changes carry no node: nodeId picks node changes and socket changes.
            #expect(try await node2.events { summary($0) == "socket.disconnected s3" }.map(summary) == [
                "node.up node-2", "socket.connected s3", "socket.disconnected s3",
            ])
        }
    }

    @Test("Last-Event-ID (or since=) from a mid position replays exactly what followed, then goes on live without duplicates")
    func resume() async throws {
        let server = try await RedisServer.start()
        try await withChangesAPI(server) { port, _, _ in
            let first = try await subscribe(port)
            defer { first.disconnect() }
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            for index in 0..<5 {
                try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"s\#(index)","userId":"u\#(index)"}]}"#)
                try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"disconnect","socketId":"s\#(index)"}]}"#)
            }
            let seen = try await first.events { summary($0) == "user.offline u4" }
            #expect(seen.count == 1 + 5 * 4)
            let middle = 7
            let position = try #require(seen[middle].id)

            let resumed = try await subscribe(port, headers: [("Last-Event-ID", position)])
            defer { resumed.disconnect() }
            let encoded = position.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let viaQuery = try await subscribe(port, "/v1/changes?since=\(encoded)")
            defer { viaQuery.disconnect() }
            let expected = Array(seen[(middle + 1)...])
            #expect(try await resumed.events { summary($0) == "user.offline u4" } == expected)
            #expect(try await viaQuery.events { summary($0) == "user.offline u4" } == expected)

            // Then live: the next change once, right after the replay.
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"late","userId":"late"}]}"#)
            let live = try await first.events { summary($0) == "user.online late" }
            #expect(try await resumed.events { summary($0) == "user.online late" } == live)
            #expect(try await viaQuery.events { summary($0) == "user.online late" } == live)
        }
    }

    @Test("a resumed subscriber joining while changes keep coming misses nothing and sees nothing twice")
    func resumeUnderTraffic() async throws {
        let server = try await RedisServer.start()
        try await withChangesAPI(server, feed: ChangeFeedConfiguration(pollInterval: .milliseconds(5), livePage: 3, replayPage: 2)) { port, _, _ in
            let first = try await subscribe(port)
            defer { first.disconnect() }
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            let start = try #require(try await first.nextEvent().id)
            let writes = Task {
                for index in 0..<40 {
                    try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"s\#(index)"}]}"#)
                }
            }
            // Joins while the writes go on: its history is read in pages of 2, then the live feed.
            let resumed = try await subscribe(port, headers: [("Last-Event-ID", start)])
            defer { resumed.disconnect() }
            try await writes.value
            let expected = try await first.events { summary($0) == "socket.connected s39" }
            #expect(expected.count == 40)
            #expect(try await resumed.events { summary($0) == "socket.connected s39" } == expected)
        }
    }

    @Test("a trimmed position answers 410 with the oldest position; bad parameters 400; no token 401; Redis down 503")
    func refusals() async throws {
        let server = try await RedisServer.start()
        try await withChangesAPI(server) { port, hub, client in
            let first = try await subscribe(port)
            defer { first.disconnect() }
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            // One request each: an entry each (a call's changes share one).
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"a"}]}"#)
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"b"}]}"#)
            let seen = try await first.events { summary($0) == "socket.connected b" }
            let registry = PresenceRegistry(client: client)
            let key = registry.changeStreamKeys[0]
            // Trim exactly, up to the last change: the first ones' positions are gone.
            let lastID = try #require(seen[2].id.flatMap { ChangePosition($0) }?.last[0])
            _ = try await client.send("XTRIM", key, "MINID", lastID)
            let gone = try await SSEClient.connect(port: port, "/v1/changes", headers: [("Last-Event-ID", try #require(seen[0].id))])
            #expect(gone.status == 410 && gone.error["code"] as? String == "position_trimmed")
            let oldest = try #require(gone.error["oldestPosition"] as? String)
            let retained = try await registry.oldestChangePosition()
            #expect(oldest == retained.description)
            // From the oldest position: the one change retained.
            let fromOldest = try await subscribe(port, headers: [("Last-Event-ID", oldest)])
            defer { fromOldest.disconnect() }
            #expect(try await fromOldest.nextEvent() == seen[2])

            for path in ["/v1/changes?types=user.online,bogus", "/v1/changes?since=nope", "/v1/changes?userId=a%25b", "/v1/changes?nodeId=a&nodeId=b"] {
                let bad = try await SSEClient.connect(port: port, path)
                #expect(bad.status == 400 && bad.error["code"] != nil, "\(path): \(bad.status)")
            }
            let badHeader = try await SSEClient.connect(port: port, "/v1/changes", headers: [("Last-Event-ID", "0=x")])
            #expect(badHeader.status == 400 && badHeader.error["code"] as? String == "invalid_parameter")
            #expect(try await SSEClient.connect(port: port, "/v1/changes", token: nil).status == 401)

            server.stop()
            let down = try await SSEClient.connect(port: port, "/v1/changes", headers: [("Last-Event-ID", oldest)])
            #expect(down.status == 503 && down.error["code"] != nil, "\(down.status) \(down.body)")
            // A live-only subscriber too, once the hub found Redis gone (it then has no position to give).
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while hub.statistics.readFailures == 0 {
                try #require(clock.now < deadline, "the hub never noticed Redis gone")
                try await Task.sleep(for: .milliseconds(5))
            }
            let liveDown = try await SSEClient.connect(port: port, "/v1/changes")
            #expect(liveDown.status == 503 && liveDown.error["code"] != nil, "\(liveDown.status) \(liveDown.body)")
        }
    }

    @Test("a keep-alive comment comes every heartbeat interval")
    func heartbeat() async throws {
        let server = try await RedisServer.start()
        let interval = Duration.milliseconds(100)
        try await withChangesAPI(server, feed: ChangeFeedConfiguration(pollInterval: .milliseconds(20), heartbeatInterval: interval)) { port, hub, _ in
            let client = try await subscribe(port)
            defer { client.disconnect() }
            let before = hub.statistics.heartbeats
            try await client.awaitComment("keep-alive", timeout: interval * 20)
            try await client.awaitComment("keep-alive", timeout: interval * 20)
            #expect(hub.statistics.heartbeats >= before + 1)
        }
    }

    @Test("an idle filtered subscriber's keep-alive carries its position, past changes it did not want: its reconnect is not answered 410")
    func idlePosition() async throws {
        let server = try await RedisServer.start()
        let interval = Duration.milliseconds(100)
        try await withChangesAPI(server, feed: ChangeFeedConfiguration(pollInterval: .milliseconds(5), heartbeatInterval: interval)) { port, _, client in
            let everything = try await subscribe(port)
            let idle = try await subscribe(port, "/v1/changes?userId=nobody")
            defer { everything.disconnect(); idle.disconnect() }
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"a"},{"type":"connect","socketId":"b"}]}"#)
            let seen = try await everything.events { summary($0) == "socket.connected b" }
            let lastID = try #require(seen.last?.id.flatMap { ChangePosition($0) }?.last[0])
            let lastEntry = try #require(ChangePosition.Entry(stream: 0, id: lastID))
            // The idle one's keep-alives: one at or past the last change (the hub has read it).
            var position: ChangePosition?
            while !(position?.hasPassed(lastEntry) ?? false) {
                switch try await idle.next(timeout: interval * 50) {
                case .position(let text):
                    position = ChangePosition(text)
                    #expect(position != nil, "keep-alive id \(text)")
                case .event(let event): Issue.record("the filter let \(event) through")
                case .closed: throw SSEClient.Failure(description: "the stream ended")
                case .comment: continue
                }
            }
            // Everything it was past is trimmed: a resume from there misses nothing it wanted.
            _ = try await client.send("XTRIM", PresenceRegistry(client: client).changeStreamKeys[0], "MINID", lastID)
            let resumed = try await SSEClient.connect(port: port, "/v1/changes?userId=nobody", headers: [("Last-Event-ID", try #require(position).description)])
            defer { resumed.disconnect() }
            #expect(resumed.status == 200, "\(resumed.status) \(resumed.body)")
        }
    }

    @Test("200 subscribers share one reader: the hub's reads, and Redis' XRANGE calls, do not grow with them")
    func sharedReader() async throws {
        let server = try await RedisServer.start()
        let poll = Duration.milliseconds(50)
        try await withChangesAPI(server, feed: ChangeFeedConfiguration(pollInterval: poll)) { port, hub, client in
            var subscribers: [SSEClient] = []
            defer { for subscriber in subscribers { subscriber.disconnect() } }
            for _ in 0..<200 { subscribers.append(try await subscribe(port)) }
            #expect(hub.statistics.subscribers == 200)
            let metrics = try await RawHTTPResponse.send(port: port, "GET", "/metrics", headers: [("Host", "127.0.0.1")])
            #expect(metrics.body.contains("\npresence_changes_subscribers 200\n"))

            func xrangeCalls() async throws -> Int {
                let info = try await client.send("INFO", "commandstats").string ?? ""
                let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_xrange:") } ?? ""
                return Int(line.split(separator: "=")[1].prefix { $0.isNumber }) ?? 0
            }
            let clock = ContinuousClock()
            let start = clock.now
            let callsBefore = try await xrangeCalls()
            let readsBefore = hub.statistics.reads
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"s1","userId":"alice"}]}"#)
            for subscriber in subscribers {
                #expect(try await subscriber.events { summary($0) == "user.online alice" }.map(summary) == ["node.up node-1", "socket.connected s1", "user.online alice"])
            }
            let elapsed = clock.now - start
            let calls = try await xrangeCalls() - callsBefore
            let reads = hub.statistics.reads - readsBefore
            // One XRANGE per hub read (one stream), at most one read per poll interval (+ the one
            // under way): nothing per subscriber.
            let bound = Int((elapsed / poll).rounded(.up)) + 2
            #expect(reads <= bound, "\(reads) hub reads in \(elapsed)")
            #expect(calls <= reads + 1, "\(calls) XRANGE calls, \(reads) hub reads")
            #expect(calls < 200)
        }
    }

    @Test("a subscriber that never reads is cut off with a final error event; the others go on")
    func slowSubscriber() async throws {
        let server = try await RedisServer.start()
        let feed = ChangeFeedConfiguration(pollInterval: .milliseconds(10), subscriberBuffer: 400, livePage: 100)
        try await withChangesAPI(server, feed: feed) { port, hub, _ in
            let fast = try await subscribe(port)
            let slow = try await subscribe(port, receiveBuffer: 4096)
            defer { fast.disconnect(); slow.disconnect() }
            slow.pause()
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            // Batches of 100 sockets (200 changes with their users), each awaited by the fast
            // subscriber, until the slow one's queue (400) overflowed behind its full TCP buffers.
            var batch = 0
            var fastSeen = 0
            while hub.statistics.slowDisconnects == 0 {
                try #require(batch < 200, "the slow subscriber was never cut off")
                let events = (0..<100).map { #"{"type":"connect","socketId":"b\#(batch)-\#($0)","userId":"u\#(batch)-\#($0)"}"# }
                try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[\#(events.joined(separator: ","))]}"#)
                fastSeen += try await fast.events { summary($0) == "user.online u\(batch)-99" }.count
                batch += 1
            }
            #expect(hub.statistics.slowDisconnects == 1)
            #expect(hub.statistics.subscribers == 1)
            // The others go on.
            try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"disconnect","socketId":"b0-0"}]}"#)
            #expect(try await fast.events { summary($0) == "user.offline u0-0" }.count == 2)

            // The slow one, reading again, finds some changes, then the error event, then the end.
            slow.resume()
            var last: SSEClient.Event?
            var count = 0
            loop: while true {
                switch try await slow.next() {
                case .event(let event): last = event; count += 1
                case .comment, .position: continue
                case .closed: break loop
                }
            }
            let error = try #require(last)
            #expect(error.event == "stream-error" && error.json["code"] as? String == "slow_subscriber")
            #expect(error.id.flatMap { ChangePosition($0) } != nil)
            #expect(count - 1 < fastSeen)
        }
    }

    @Test("on a Redis Cluster: changes from several streams, per-user order, and a resume from a multi-stream position replays exactly the rest")
    func cluster() async throws {
        let cluster = try await SharedRedisCluster.get()
        let prefix = "sse-\(UUID().uuidString.prefix(8))"
        try await withChangesAPI(try RedisConfiguration(url: cluster.seedURL), keyPrefix: prefix) { port, _, _ in
            let first = try await subscribe(port)
            defer { first.disconnect() }
            try await report(port, "PUT", "/v1/nodes/node-1", "{}")
            let users = (0..<12).map { "user-\($0)" }
            for user in users {
                try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"connect","socketId":"s-\#(user)","userId":"\#(user)"}]}"#)
            }
            for user in users {
                try await report(port, "POST", "/v1/nodes/node-1/events", #"{"events":[{"type":"disconnect","socketId":"s-\#(user)"}]}"#)
            }
            var seen: [SSEClient.Event] = []
            while seen.filter({ $0.event == "user.offline" }).count < users.count { seen.append(try await first.nextEvent()) }
            #expect(seen.count == 1 + 4 * users.count)
            for user in users {
                #expect(seen.filter { $0.json["userId"] as? String == user }.map { $0.event ?? "" } == ["socket.connected", "user.online", "socket.disconnected", "user.offline"])
            }
            let streams = Set(seen.compactMap { $0.id.flatMap { ChangePosition($0) }?.last.keys }.joined())
            #expect(streams.count > 1, "12 users all landed in one stream: \(streams)")

            let middle = seen.count / 2
            let resumed = try await subscribe(port, headers: [("Last-Event-ID", try #require(seen[middle].id))])
            defer { resumed.disconnect() }
            var replayed: [SSEClient.Event] = []
            while replayed.count < seen.count - middle - 1 { replayed.append(try await resumed.nextEvent()) }
            // Across streams the order is by time, not necessarily the live order: compare the changes.
            func key(_ event: SSEClient.Event) -> String { "\(event.event ?? "") \(event.data)" }
            #expect(Set(replayed.map(key)) == Set(seen[(middle + 1)...].map(key)))
            #expect(Set(replayed.map(key)).count == replayed.count)
        }
    }
}
