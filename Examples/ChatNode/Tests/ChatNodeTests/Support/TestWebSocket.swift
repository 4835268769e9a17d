import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization

@testable import ChatLoad

/// A real websocket client connected to a chat node's `/ws`: it keeps the welcome (the socket's
/// id and node) and every text message received after it.
final class TestWebSocket: Sendable {
    private struct State {
        var welcome: Welcome?
        var messages: [String] = []
        var writer: WebSocketOutboundWriter?
        var ended = false
        var error: String?
    }

    private let state = Mutex(State())

    /// The welcome; set once ``with(port:user:_:)`` has handed the socket out.
    var welcome: Welcome { state.withLock { $0.welcome! } }
    /// Text messages received after the welcome, in order.
    var messages: [String] { state.withLock { $0.messages } }
    /// Whether the connection is over (closed, dropped or never opened).
    var hasEnded: Bool { state.withLock { $0.ended } }

    /// Opens a websocket to 127.0.0.1:`port` as `user`, following `contacts`, waits for its
    /// welcome, runs `body`, then closes it with a close handshake (unless the node already dropped it).
    static func with<T: Sendable>(
        port: Int, user: String = "test-user", contacts: [String] = [], _ body: (TestWebSocket) async throws -> T
    ) async throws -> T {
        let socket = TestWebSocket()
        let query = ([user].map { "user=\($0)" } + contacts.map { "contact=\($0)" }).joined(separator: "&")
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await socket.run(url: "ws://127.0.0.1:\(port)/ws?\(query)") }
            do {
                try await waitUntil("the welcome of a websocket to port \(port)", within: TestTiming.startup, state: { socket.summary }) {
                    socket.state.withLock { $0.welcome != nil || $0.ended }
                }
                guard socket.state.withLock({ $0.welcome != nil }) else {
                    throw WaitTimeout(description: "the websocket to port \(port) ended before its welcome: \(socket.summary)")
                }
                let result = try await body(socket)
                await socket.close()
                try await group.waitForAll()
                return result
            } catch {
                await socket.close()
                group.cancelAll()
                throw error
            }
        }
    }

    /// Waits until a message equal to `text` has arrived.
    func waitForMessage(_ text: String, within limit: Duration) async throws {
        try await waitUntil("message \"\(text)\" on websocket \(welcome.socketId)", within: limit, state: { self.summary }) {
            messages.contains(text)
        }
    }

    private var summary: String {
        state.withLock { "welcome \($0.welcome?.socketId ?? "none"), \($0.messages.count) messages, ended \($0.ended), error \($0.error ?? "none")" }
    }

    private func run(url: String) async {
        var logger = Logger(label: "chat-node-tests.websocket")
        logger.logLevel = .warning
        do {
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 16, closeTimeout: .seconds(5)), logger: logger) {
                inbound, outbound, _ in
                self.state.withLock { $0.writer = outbound }
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    self.state.withLock { state in
                        if state.welcome == nil, let welcome = Welcome(text) { state.welcome = welcome } else { state.messages.append(text) }
                    }
                }
            }
        } catch {
            state.withLock { $0.error = "\(error)" }
        }
        state.withLock { $0.ended = true }
    }

    private func close() async {
        let writer = state.withLock { $0.ended ? nil : $0.writer }
        try? await writer?.close(.normalClosure, reason: "test done")
    }
}
