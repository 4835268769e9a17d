import Foundation
import NIOCore
import NIOHTTP1

@testable import ChatNode

/// What a chat node answered to `POST /send/{socketId}`: the status and the JSON it carried.
struct SendAnswer: Sendable, CustomStringConvertible {
    let status: Int
    let body: String
    /// 200: `local` or `forwarded`.
    let route: String?
    let ownerNodeId: String?
    let acceptedBy: String?
    let ownerAddress: String?
    /// Errors: `socket_not_connected`, `owner_unreachable`, `redis_unavailable`, …
    let errorCode: String?

    var description: String { "\(status) \(body)" }

    private struct Body: Decodable {
        struct Failure: Decodable { var code: String }
        var route: String?
        var ownerNodeId: String?
        var acceptedBy: String?
        var ownerAddress: String?
        var error: Failure?
    }

    /// Sends `text` to `socketID` through the node listening on 127.0.0.1:`port`.
    /// - Throws: ``NodeForwarder/Failure`` when the node does not answer within ``TestTiming/request``.
    static func send(_ text: String, to socketID: String, via port: Int) async throws -> SendAnswer {
        let reply = try await client.post(
            to: NodeAddress("127.0.0.1:\(port)")!, path: "/send/" + MessageRouter.pathSegment(socketID), body: ByteBuffer(string: text))
        let body = String(buffer: reply.body)
        let decoded = try? JSONDecoder().decode(Body.self, from: Data(body.utf8))
        return SendAnswer(
            status: Int(reply.status.code), body: body, route: decoded?.route, ownerNodeId: decoded?.ownerNodeId,
            acceptedBy: decoded?.acceptedBy, ownerAddress: decoded?.ownerAddress, errorCode: decoded?.error?.code)
    }

    /// Whether an HTTP server answers on 127.0.0.1:`port` (any status).
    static func answers(port: Int) async -> Bool {
        (try? await client.post(to: NodeAddress("127.0.0.1:\(port)")!, path: "/healthz", body: ByteBuffer())) != nil
    }

    /// `GET /local`'s `contactNotices` from the node listening on 127.0.0.1:`port` (`live`, `starting`, `off`).
    static func contactNotices(port: Int) async throws -> String? {
        struct View: Decodable { var contactNotices: String }
        let reply = try await client.send(.GET, to: NodeAddress("127.0.0.1:\(port)")!, path: "/local", body: ByteBuffer())
        return try? JSONDecoder().decode(View.self, from: Data(String(buffer: reply.body).utf8)).contactNotices
    }

    /// The example's own minimal HTTP client, with a deadline long enough for a 503.
    private static let client = NodeForwarder(connectTimeout: .seconds(2), deadline: TestTiming.request)
}
