import Hummingbird
import Logging

/// Turns every error into the API's JSON error body; unexpected ones are logged and become 500.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status == .internalServerError {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            } else if apiError.status == .serviceUnavailable {
                context.logger.warning("Redis unavailable", metadata: ["error": "\(apiError.message)"])
            }
            var response = try apiError.response(from: request, context: context)
            if request.method == .head { response.body = .init() }
            return response
        }
    }
}
