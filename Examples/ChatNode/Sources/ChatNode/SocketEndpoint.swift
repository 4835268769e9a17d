import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import Presence

/// `GET /ws`: every accepted websocket gets a random id, is reported to the registry with
/// `connected` and `disconnected`, and receives `{"type":"welcome","socketId","nodeId"}` first.
/// The user id comes from `?user=` or the `X-User-Id` header; messages from the client are ignored.
/// `?contact=ID` (repeatable, at most ``maximumContacts``) names users whose going online or
/// offline the socket is told (``ContactNotifier``).
struct SocketEndpoint: Sendable {
    let node: PresenceNode
    let sockets: LocalSockets
    let logger: Logger

    static let userHeader = HTTPField.Name("x-user-id")!
    static let maximumContacts = 1_000

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.ws("ws") { request, _ in
            // A malformed user id refuses the upgrade (the plain HTTP route then answers 426).
            if let user = Self.userID(request), !PresenceID.isValid(user) { return .dontUpgrade }
            if Self.contacts(request) == nil { return .dontUpgrade }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            try await handle(inbound, outbound, userID: Self.userID(context.request), contacts: Self.contacts(context.request) ?? [])
        }
    }

    static func userID(_ request: Request) -> String? {
        request.uri.queryParameters.get("user") ?? request.headers[userHeader]
    }

    /// The `contact` query parameters; `nil` when one is not a valid id or there are too many.
    static func contacts(_ request: Request) -> Set<String>? {
        let values = request.uri.queryParameters[values: "contact"].map(String.init)
        guard values.count <= maximumContacts, values.allSatisfy(PresenceID.isValid) else { return nil }
        return Set(values)
    }

    private func handle(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, userID: String?, contacts: Set<String>) async throws {
        let socketID = SocketID.random()
        sockets.add(socketID, writer: outbound, contacts: contacts)
        defer {
            sockets.remove(socketID)
            _ = try? node.disconnected(socketID: socketID)
        }
        try node.connected(socketID: socketID, userID: userID)
        logger.debug("websocket opened", metadata: ["socketId": "\(socketID)", "userId": "\(userID ?? "-")"])
        defer { logger.debug("websocket closed", metadata: ["socketId": "\(socketID)"]) }
        let welcome = try JSONSerialization.data(
            withJSONObject: ["type": "welcome", "socketId": socketID, "nodeId": node.nodeID], options: [.sortedKeys])
        try await outbound.write(.text(String(decoding: welcome, as: UTF8.self)))
        // Hold the socket until the client closes it (or the server shuts down).
        for try await _ in inbound.messages(maxSize: 64 * 1024) {}
    }
}
