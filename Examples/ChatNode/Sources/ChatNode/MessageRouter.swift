import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Presence
import WSCore

/// Delivers a text message to any socket of the cluster: written here when this process holds the
/// socket, otherwise forwarded to the node the registry names, at the address it advertised.
struct MessageRouter: Sendable {
    /// Where a message went.
    struct Delivery: Sendable, Encodable {
        var socketId: String
        var delivered = true
        /// The node holding the socket.
        var ownerNodeId: String
        /// `local` (this node held it) or `forwarded` (sent to the owner's address).
        var route: String
        /// The node that took the request.
        var acceptedBy: String
        /// The owner's advertised address, when forwarded.
        var ownerAddress: String?
    }

    let nodeID: String
    let sockets: LocalSockets
    let registry: PresenceRegistry
    let forwarder: NodeForwarder
    let logger: Logger

    /// Header naming the node that forwarded a delivery (for the owner's log).
    static let forwardedByHeader = "x-chat-forwarded-by"

    /// Sends `text` to `socketID` wherever it lives.
    /// - Throws: ``ChatError``: 404 `socket_not_connected`, 503 `redis_unavailable`, 502 `owner_unreachable`.
    func send(_ text: String, to socketID: String) async throws -> Delivery {
        if try await deliverLocally(text, to: socketID) {
            return Delivery(socketId: socketID, ownerNodeId: nodeID, route: "local", acceptedBy: nodeID)
        }
        let socket: PresenceSocket?
        do {
            socket = try await registry.socket(socketID)
        } catch let error as PresenceError {
            throw ChatError(.badRequest, "invalid_id", error.message)
        } catch {
            throw ChatError.redisUnavailable(error)
        }
        // Not alive anywhere, or registered here but already closed (its disconnect is on its way).
        guard let socket, socket.nodeID != nodeID else { throw ChatError.notConnected(socketID) }
        guard let address = NodeAddress(socket.nodeAddress) else {
            throw ChatError.ownerUnreachable(nodeID: socket.nodeID, address: socket.nodeAddress, "the address is not http://host:port")
        }
        let reply: NodeForwarder.Reply
        do {
            reply = try await forwarder.post(
                to: address, path: "/deliver/" + Self.pathSegment(socketID), body: ByteBuffer(string: text),
                headers: [(Self.forwardedByHeader, nodeID)])
        } catch {
            throw ChatError.ownerUnreachable(nodeID: socket.nodeID, address: socket.nodeAddress, "\(error)")
        }
        switch reply.status {
        case .ok:
            logger.debug("forwarded a message", metadata: ["socketId": "\(socketID)", "owner": "\(socket.nodeID)"])
            return Delivery(socketId: socketID, ownerNodeId: socket.nodeID, route: "forwarded", acceptedBy: nodeID, ownerAddress: socket.nodeAddress)
        case .notFound:
            // The socket closed between the lookup and the delivery.
            throw ChatError.notConnected(socketID)
        default:
            throw ChatError.ownerUnreachable(nodeID: socket.nodeID, address: socket.nodeAddress, "it answered \(reply.status.code)")
        }
    }

    /// Writes `text` to a socket this process holds; `false` when it holds none by that id (or the
    /// socket closed while writing).
    func deliverLocally(_ text: String, to socketID: String) async throws -> Bool {
        guard let writer = sockets.writer(for: socketID) else { return false }
        do {
            try await writer.writeTextMessage(text)
            return true
        } catch {
            logger.debug("a local socket closed while a message was written", metadata: ["socketId": "\(socketID)", "error": "\(error)"])
            return false
        }
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters, so that any id is one path segment.
    static func pathSegment(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return result
    }
}
