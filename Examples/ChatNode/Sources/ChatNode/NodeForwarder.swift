import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 client for node-to-node delivery: one short-lived connection per request on
/// the shared NIO event loop group, with a connect timeout and an overall deadline. Enough for an
/// example; a production node would keep a pool (async-http-client) or a stream per peer.
struct NodeForwarder: Sendable {
    /// The answer of the owning node.
    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var body: ByteBuffer
    }

    /// Why a request got no answer.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    var connectTimeout: TimeAmount = .seconds(1)
    var deadline: Duration = .seconds(3)
    var eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// Sends `POST path` with `body` (text) to `address` and returns the status and body.
    /// - Throws: ``Failure`` when the node refuses the connection, breaks it, or misses the deadline.
    func post(to address: NodeAddress, path: String, body: ByteBuffer, headers: [(String, String)] = []) async throws -> Reply {
        try await send(.POST, to: address, path: path, body: body, headers: headers)
    }

    /// Sends `method path` with `body` (text, may be empty) to `address` and returns the status and body.
    /// - Throws: ``Failure`` when the node refuses the connection, breaks it, or misses the deadline.
    func send(_ method: HTTPMethod, to address: NodeAddress, path: String, body: ByteBuffer, headers: [(String, String)] = []) async throws -> Reply {
        try await withThrowingTaskGroup(of: Reply.self) { group in
            group.addTask { try await exchange(method, address, path: path, body: body, headers: headers) }
            group.addTask {
                try await Task.sleep(for: deadline)
                throw Failure(description: "no answer within \(deadline)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// A short reason for a connect failure ("Connection refused"), rather than NIO's full error.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            return error.connectionErrors.first.map { reason($0.error) } ?? "\(error)"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode))
        case ChannelError.connectTimeout(let timeout):
            return "no connection within \(timeout.nanoseconds / 1_000_000) ms"
        default:
            return "\(error)"
        }
    }

    private func exchange(_ method: HTTPMethod, _ address: NodeAddress, path: String, body: ByteBuffer, headers: [(String, String)]) async throws -> Reply {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(connectTimeout)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Failure(description: "cannot connect: \(Self.reason(error))")
        }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "host", value: address.description)
            head.headers.add(name: "content-type", value: "text/plain; charset=utf-8")
            head.headers.add(name: "content-length", value: String(body.readableBytes))
            head.headers.add(name: "connection", value: "close")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(body)))
            try await outbound.write(.end(nil))
            var status: HTTPResponseStatus?
            var received = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let head): status = head.status
                case .body(var chunk): received.writeBuffer(&chunk)
                case .end:
                    guard let status else { throw Failure(description: "the response had no head") }
                    return Reply(status: status, body: received)
                }
            }
            throw Failure(description: "the connection closed before the response ended")
        }
    }
}
