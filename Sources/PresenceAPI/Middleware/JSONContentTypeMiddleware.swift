import Foundation
import Hummingbird

/// Requires `Content-Type: application/json` (any parameters, any case) on every request that
/// carries a body (415 `unsupported_media_type` otherwise), before anything is read or written.
/// A `PUT` without a body may leave the header out. Browsers send a form or a `text/plain` body
/// to another site without asking it first; a JSON body they send only where CORS allows it.
struct JSONContentTypeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard [.post, .put, .patch].contains(request.method) else { return try await next(request, context) }
        if let type = request.headers[.contentType] {
            guard Self.isJSON(type) else { throw Self.unsupported }
            return try await next(request, context)
        }
        if let length = request.headers[.contentLength] {
            guard Int(length) == 0 else { throw Self.unsupported }
            return try await next(request, context)
        }
        // A chunked body says no length: read it (it is read anyway) to see whether there is one.
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: JSONBody.maximumSize)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the body exceeds 1 MiB")
        }
        guard body.readableBytes == 0 else { throw Self.unsupported }
        return try await next(request, context)
    }

    /// Whether a Content-Type value is `application/json`, parameters (`; charset=utf-8`) aside.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return mediaType.trimmingCharacters(in: [" ", "\t"]).lowercased() == "application/json"
    }

    private static var unsupported: APIError {
        APIError(.unsupportedMediaType, "unsupported_media_type", "a request body must be JSON, sent with Content-Type: application/json")
    }
}
