import Foundation
import Hummingbird
import Presence

/// An error answered as `{"error": {"code", "message"}}` with its status.
struct APIError: HTTPResponseError, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var headers: HTTPFields = [:]
    /// `error.oldestPosition` (410 `position_trimmed`): where a reader can resume without loss.
    var oldestPosition: String?

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:], oldestPosition: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.oldestPosition = oldestPosition
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        let body = ErrorBody(error: .init(code: code, message: message, oldestPosition: oldestPosition))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes  // "application/json" reads as written
        let data = try encoder.encode(body)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            let code: String
            let message: String
            let oldestPosition: String?
        }
        let error: Detail
    }

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(.badRequest, code, message) }
    static func notFound(_ code: String, _ message: String) -> APIError { APIError(.notFound, code, message) }

    /// Maps any error to what the client should see. Only a bug becomes a 500.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as PresenceError:
            switch error.code {
            case .invalidID: return .badRequest("invalid_id", error.message)
            case .invalidMeta: return .badRequest("invalid_meta", error.message)
            case .corruptData: return APIError(.internalServerError, "corrupt_data", error.message)
            case .nodeLeaving: return APIError(.serviceUnavailable, "node_leaving", error.message, headers: [.retryAfter: "1"])
            default: return .badRequest("invalid_request", error.message)
            }
        case let error as RedisError where error.code == .replica:
            return APIError(.serviceUnavailable, "redis_replica", error.message)
        case let error as RedisError where error.isConnectivity:
            return APIError(.serviceUnavailable, "redis_unavailable", error.message)
        case let error as RedisError:
            // An error reply from Redis (OOM, a busy script…): not the client's fault, not ours to hide.
            return APIError(.serviceUnavailable, "redis_error", error.message)
        case let error as HTTPError:
            switch error.status {
            case .notFound: return .notFound("not_found", "no such route")
            case .contentTooLarge: return APIError(.contentTooLarge, "body_too_large", "the body exceeds 1 MiB")
            case .methodNotAllowed: return APIError(.methodNotAllowed, "method_not_allowed", error.body ?? "method not allowed", headers: error.headers)
            default:
                let status = error.status
                return APIError(status, status.code < 500 ? "bad_request" : "internal_error", error.body ?? status.reasonPhrase)
            }
        default:
            return APIError(.internalServerError, "internal_error", "internal error")
        }
    }
}
