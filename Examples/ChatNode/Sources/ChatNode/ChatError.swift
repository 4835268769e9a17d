import Foundation
import Hummingbird
import Presence

/// An error answered as `{"error": {"code", "message"}}` (the same shape as the presence API).
struct ChatError: HTTPResponseError, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    var headers: HTTPFields { [.contentType: "application/json; charset=utf-8"] }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(["error": ["code": code, "message": message]])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// No live socket has this id anywhere in the cluster.
    static func notConnected(_ socketID: String) -> ChatError {
        ChatError(.notFound, "socket_not_connected", "socket \(socketID) is not connected to any live node")
    }

    /// Redis cannot answer where the socket lives: never guess.
    static func redisUnavailable(_ error: any Error) -> ChatError {
        let detail = (error as? RedisError)?.message ?? "\(error)"
        return ChatError(.serviceUnavailable, "redis_unavailable", "the presence registry cannot be read: \(detail)")
    }

    /// The node holding the socket did not take the message.
    static func ownerUnreachable(nodeID: String, address: String, _ why: String) -> ChatError {
        ChatError(.badGateway, "owner_unreachable", "node \(nodeID) holds the socket but \(address.isEmpty ? "advertises no address" : "could not be reached at \(address)"): \(why)")
    }
}
