import Foundation
import Presence
import Testing

@testable import ChatLoad

/// Contacts' online/offline notices (`GET /ws?user=…&contact=…`), from the registry's change
/// stream through ``ContactNotifier``: real redis-server, in-process nodes, real websockets.
@Suite(.serialized) struct ContactTests {
    static func notice(_ userID: String, online: Bool) -> String {
        #"{"online":\#(online),"type":"presence","userId":"\#(userID)"}"#
    }

    /// A report reaches the registry within ``TestTiming/reportVisible``; the notifier reads it
    /// within its poll (100 ms) or, after a Redis hiccup, its retry; a request's bound covers the rest.
    static let noticeVisible = TestTiming.reportVisible + TestTiming.request

    @Test func aFollowerOnAnotherNodeIsToldWhenItsContactGoesOnlineThenOffline() async throws {
        try await TestCluster.with(nodes: ["chat-a", "chat-b"]) { cluster in
            let (a, b) = (cluster.nodes[0], cluster.nodes[1])
            for node in cluster.nodes {
                try await waitUntil("contact notices live on \(node.nodeID)", within: TestTiming.startup) {
                    try await SendAnswer.contactNotices(port: node.port) == "live"
                }
            }
            try await TestWebSocket.with(port: a.port, user: "alice", contacts: ["bob"]) { alice in
                try await TestWebSocket.with(port: a.port, user: "carol", contacts: ["dave"]) { carol in
                    try await cluster.waitUntilRegistered(alice.welcome.socketId, on: "chat-a")
                    let bob = try await TestWebSocket.with(port: b.port, user: "bob") { bob in
                        try await alice.waitForMessage(Self.notice("bob", online: true), within: Self.noticeVisible)
                        // A second socket of bob's, opened and closed while the first stays:
                        // bob stays online, nothing to tell.
                        let second = try await TestWebSocket.with(port: a.port, user: "bob") { second in
                            try await cluster.waitUntilRegistered(second.welcome.socketId, on: "chat-a")
                            return second.welcome.socketId
                        }
                        try await cluster.waitUntilGone(second)
                        return bob.welcome.socketId
                    }
                    try await cluster.waitUntilGone(bob)
                    try await alice.waitForMessage(Self.notice("bob", online: false), within: Self.noticeVisible)
                    #expect(alice.messages == [Self.notice("bob", online: true), Self.notice("bob", online: false)])
                    #expect(carol.messages.isEmpty, "carol follows dave only: \(carol.messages)")
                }
            }
        }
    }

    @Test func aMalformedContactRefusesTheUpgrade() async throws {
        try await TestCluster.with(nodes: ["chat-a"]) { cluster in
            // An empty id is not an id (1–256 printable bytes): the node answers 426, no websocket.
            await #expect(throws: WaitTimeout.self) {
                try await TestWebSocket.with(port: cluster.nodes[0].port, user: "alice", contacts: ["bob", ""]) { _ in }
            }
        }
    }
}
