import Testing

@testable import ChatLoad
@testable import ChatNode

/// The small pure pieces: addresses, ids, URLs, the welcome message.
@Suite struct ParsingTests {
    func parsed(_ text: String) -> String? { NodeAddress(text).map { "\($0.host) \($0.port)" } }

    @Test func advertisedAddresses() {
        #expect(parsed("http://127.0.0.1:8081") == "127.0.0.1 8081")
        #expect(parsed("http://127.0.0.1:8081/") == "127.0.0.1 8081")
        #expect(parsed("10.0.0.5:8080") == "10.0.0.5 8080")
        #expect(parsed("http://[::1]:9000") == "::1 9000")
        #expect(parsed("http://chat-1") == "chat-1 80")
        #expect(NodeAddress("http://[::1]:9000")?.description == "[::1]:9000")
        for bad in ["", "https://x:1", "ws://x:1", "http://", "x:0", "x:65536", "x:port", "http://x:1/deliver", "::1", "[::1"] {
            #expect(NodeAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func socketIDs() {
        let ids = (0..<1000).map { _ in SocketID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.utf8.count == 20)
            #expect(id.utf8.allSatisfy { SocketID.alphabet.contains($0) })
        }
    }

    @Test func pathSegments() {
        #expect(MessageRouter.pathSegment("AZaz09-._~") == "AZaz09-._~")
        #expect(MessageRouter.pathSegment("a b/c?d") == "a%20b%2Fc%3Fd")
        #expect(MessageRouter.pathSegment("é") == "%C3%A9")
        #expect(MessageRouter.pathSegment("\u{7F}") == "%7F")
    }

    @Test func loadClientURLs() {
        #expect(LoadOptions.webSocketURL("http://127.0.0.1:8081") == "ws://127.0.0.1:8081/ws")
        #expect(LoadOptions.webSocketURL("http://127.0.0.1:8081/") == "ws://127.0.0.1:8081/ws")
        #expect(LoadOptions.webSocketURL("127.0.0.1:8081") == "ws://127.0.0.1:8081/ws")
        #expect(LoadOptions.webSocketURL("ws://h:1/chat?room=a") == "ws://h:1/chat?room=a")
        #expect(LoadOptions.webSocketURL("wss://h/ws") == "wss://h/ws")
        for bad in ["", "ftp://h:1", "http://", "/ws", "wss://"] {
            #expect(LoadOptions.webSocketURL(bad) == nil, "\(bad)")
        }
        #expect(LoadRunner.hostAndPort("ws://127.0.0.1:8081/ws?user=u") == "127.0.0.1:8081")
    }

    @Test func welcome() {
        let welcome = Welcome(#"{"nodeId":"chat-1","socketId":"abc","type":"welcome"}"#)
        #expect(welcome?.socketId == "abc")
        #expect(welcome?.nodeId == "chat-1")
        #expect(Welcome("hello") == nil)
        #expect(Welcome(#"{"nodeId":"chat-1","socketId":"abc","type":"message"}"#) == nil)
    }
}
