import Crypto
import Foundation
import Hummingbird
import PresenceTestSupport
import ServiceLifecycle
import Synchronization
import Testing

/// A webhook receiver for tests: a real Hummingbird server on a loopback port that checks every
/// request's `Presence-Signature` with its own verification code (the recipe of docs/changes.md,
/// written here independently of the server's signing code) and records the batches it accepts.
/// It can answer 503 to its first requests, to test the sender's retries.
final class WebhookReceiver: Sendable {
    /// One change of an accepted batch.
    struct Change: Sendable, Hashable, CustomStringConvertible {
        var id: String
        var type: String
        var socketID: String?
        var userID: String?
        var nodeID: String?
        var reason: String?

        /// `type subject[ reason]`, subject the socket, else the user, else the node.
        var description: String { "\(type) \(socketID ?? userID ?? nodeID ?? "?")\(reason.map { " \($0)" } ?? "")" }
    }

    private struct State {
        var requests = 0
        var rejected = 0
        var batches: [[Change]] = []
        var positions: [String] = []
        var userAgents: Set<String> = []
        var contentTypes: Set<String> = []
    }

    let secret: String
    /// Requests answered 503 before the receiver accepts any.
    let failFirst: Int
    private let state = Mutex(State())

    init(secret: String, failFirst: Int = 0) {
        self.secret = secret
        self.failFirst = failFirst
    }

    /// Every change accepted, in arrival order.
    var changes: [Change] { state.withLock { $0.batches.flatMap { $0 } } }
    /// Requests received (any answer).
    var requests: Int { state.withLock { $0.requests } }
    /// Requests refused for their signature (401).
    var rejected: Int { state.withLock { $0.rejected } }
    /// Accepted batches' sizes.
    var batchSizes: [Int] { state.withLock { $0.batches.map(\.count) } }
    /// Accepted batches' `position`s.
    var positions: [String] { state.withLock { $0.positions } }
    var userAgents: Set<String> { state.withLock { $0.userAgents } }
    var contentTypes: Set<String> { state.withLock { $0.contentTypes } }

    /// Runs the receiver on `port` of 127.0.0.1 (0: a free one) while `body` runs with its port.
    func run<T: Sendable>(port: Int = 0, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> T {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            let bytes = Array(try await request.body.collect(upTo: 1 << 22).readableBytesView)
            func header(_ name: String) -> String? { request.headers.first { $0.name.canonicalName == name }?.value }
            return self.receive(bytes, signature: header("presence-signature"), userAgent: header("user-agent"), contentType: header("content-type"))
        }
        // Run as a service rather than with `app.test(.live)`, which always binds a new port: a
        // receiver that comes back must listen where the webhook points.
        let (bound, boundContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in
                boundContinuation.yield(channel.localAddress?.port ?? 0)
                boundContinuation.finish()
            },
            logger: quietLogger("test.receiver"))
        let services = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: quietLogger("test.receiver"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { boundContinuation.finish() }  // a failed bind ends the wait below
                try await services.run()
            }
            defer { group.cancelAll() }
            var ports = bound.makeAsyncIterator()
            let result = try await body(try #require(await ports.next()))
            await services.triggerGracefulShutdown()
            try await group.next()
            return result
        }
    }

    private func receive(_ body: [UInt8], signature: String?, userAgent: String?, contentType: String?) -> Response {
        let accepted: Bool = state.withLock { state in
            state.requests += 1
            if state.requests <= failFirst { return false }
            return true
        }
        guard accepted else { return Response(status: .serviceUnavailable) }
        guard let signature, Self.verify(signature: signature, body: body, secret: secret) else {
            state.withLock { $0.rejected += 1 }
            return Response(status: .unauthorized)
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let position = json["position"] as? String, let items = json["changes"] as? [[String: Any]] else {
            return Response(status: .badRequest)
        }
        let batch = items.map { item in
            Change(
                id: item["id"] as? String ?? "", type: item["type"] as? String ?? "", socketID: item["socketId"] as? String,
                userID: item["userId"] as? String, nodeID: item["nodeId"] as? String, reason: item["reason"] as? String)
        }
        state.withLock { state in
            state.batches.append(batch)
            state.positions.append(position)
            if let userAgent { state.userAgents.insert(userAgent) }
            if let contentType { state.contentTypes.insert(contentType) }
        }
        return Response(status: .noContent)
    }

    /// The receiver's check: `t=<unix seconds>,v1=<hex>` where the hex is HMAC-SHA256 keyed by the
    /// secret of `"<t>.<raw body>"`, compared in constant time, and `t` within `tolerance` of now.
    static func verify(signature header: String, body: [UInt8], secret: String, now: Date = Date(), tolerance: TimeInterval = 300) -> Bool {
        var timestamp: Int?
        var candidates: [Data] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int(pair[1]) }
            if pair[0] == "v1", let mac = Data(hex: pair[1]) { candidates.append(mac) }
        }
        guard let timestamp, abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { return false }
        let signed = Data("\(timestamp).".utf8) + Data(body)
        let key = SymmetricKey(data: Data(secret.utf8))
        return candidates.contains { HMAC<SHA256>.isValidAuthenticationCode($0, authenticating: signed, using: key) }
    }
}

extension Data {
    /// Bytes from lowercase or uppercase hex; `nil` for anything else.
    init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.init(bytes)
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
