import Foundation
import HTTPTypes
import Hummingbird
import Presence

/// The node's HTTP routes: send to any socket of the cluster, the internal delivery route other
/// nodes forward to, and what this process holds.
struct ChatController<Context: RequestContext>: Sendable {
    let router: MessageRouter
    let node: PresenceNode
    /// `nil` when the registry's change stream is off.
    let notifier: ContactNotifier?

    /// Largest message accepted.
    static var maximumMessageSize: Int { 64 * 1024 }

    func addRoutes(to routes: Router<Context>) {
        routes.post("send/:socketId", use: send)
        routes.post("deliver/:socketId", use: deliver)
        routes.get("local", use: local)
        routes.get("healthz") { _, _ in ["status": "ok"] }
        routes.get("ws") { _, _ -> Response in
            throw ChatError(.upgradeRequired, "websocket_required", "GET /ws is a websocket endpoint (?user=ID optional, an id of 1–256 printable bytes)")
        }
    }

    /// `POST /send/{socketId}` (body: the text): written to the socket wherever it lives.
    /// 200 with the route taken; 404 `socket_not_connected`, 503 `redis_unavailable`, 502 `owner_unreachable`.
    @Sendable func send(_ request: Request, context: Context) async throws -> Response {
        let socketID = try Self.socketID(context)
        let text = try await Self.text(request)
        let delivery = try await router.send(text, to: socketID)
        return try Self.json(delivery)
    }

    /// `POST /deliver/{socketId}`: another node found this one in the registry; only a socket this
    /// process holds is written to (never forwarded again). 200, or 404 `socket_not_connected`.
    @Sendable func deliver(_ request: Request, context: Context) async throws -> Response {
        let socketID = try Self.socketID(context)
        let text = try await Self.text(request)
        guard try await router.deliverLocally(text, to: socketID) else {
            throw ChatError(.notFound, "socket_not_connected", "node \(node.nodeID) does not hold socket \(socketID)")
        }
        let from = request.headers[HTTPField.Name(MessageRouter.forwardedByHeader)!] ?? "?"
        return try Self.json(MessageRouter.Delivery(socketId: socketID, ownerNodeId: node.nodeID, route: "local", acceptedBy: from))
    }

    /// `GET /local?limit=N`: this process's own view: its node id, incarnation, socket count and
    /// up to N socket ids (default 0), and whether contacts' notices are live.
    @Sendable func local(_ request: Request, context: Context) async throws -> Response {
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 0, 0), 10_000)
        return try Self.json(LocalView(
            nodeId: node.nodeID, incarnation: node.incarnation, address: node.address,
            sockets: router.sockets.count, socketIds: router.sockets.ids(limit: limit),
            contactNotices: notifier.map { $0.isFollowing ? "live" : "starting" } ?? "off"))
    }

    static func socketID(_ context: Context) throws -> String {
        guard let raw = context.parameters.get("socketId"), let id = raw.removingPercentEncoding else {
            throw ChatError(.badRequest, "invalid_id", "socketId is missing or badly percent-encoded")
        }
        do { try PresenceID.validate(id, field: "socketId") } catch { throw ChatError(.badRequest, "invalid_id", error.message) }
        return id
    }

    static func text(_ request: Request) async throws -> String {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumMessageSize)
        } catch {
            throw ChatError(.contentTooLarge, "message_too_large", "a message is at most \(maximumMessageSize) bytes")
        }
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw ChatError(.badRequest, "invalid_message", "the body must be UTF-8 text")
        }
        return text
    }

    static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
