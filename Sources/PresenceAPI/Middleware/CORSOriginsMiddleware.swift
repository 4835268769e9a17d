import Hummingbird

/// CORS for exactly the origins given with `--cors-origin`, preflight `OPTIONS` included, through
/// Hummingbird's `CORSMiddleware`; a request from any other origin passes on without CORS headers,
/// so browsers keep it from reading the answer. Not installed when no origin is given.
struct CORSOriginsMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: Set<Origin>
    private let cors = CORSMiddleware<Context>(
        allowOrigin: .originBased,
        allowHeaders: [.accept, .authorization, .contentType],
        allowMethods: [.get, .head, .post, .put, .delete, .options],
        maxAge: .seconds(600))

    init(origins: Set<Origin>) {
        self.origins = origins
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let values = request.headers[values: .origin]
        guard values.count == 1, let origin = Origin(values[0]), origins.contains(origin) else {
            return try await next(request, context)
        }
        return try await cors.handle(request, context: context, next: next)
    }
}
