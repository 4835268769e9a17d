import Hummingbird

/// Requires a bearer token allowed to `scope` (a write token may also read).
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: AccessTokens
    let scope: AccessTokens.Scope

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard tokens.isEnabled else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw APIError(.unauthorized, "unauthorized", "a bearer token is required (Authorization: Bearer TOKEN)", headers: [.wwwAuthenticate: "Bearer"])
        }
        switch (tokens.scope(of: header.dropFirst(7)), scope) {
        case (.write, _), (.read, .read):
            return try await next(request, context)
        case (.read, .write):
            throw APIError(.forbidden, "forbidden", "this token may only read")
        case (nil, _):
            throw APIError(.forbidden, "forbidden", "the token is not valid")
        }
    }
}
