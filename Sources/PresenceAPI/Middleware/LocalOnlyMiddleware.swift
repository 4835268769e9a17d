import Hummingbird

/// Keeps web pages away from an API that has no token: refuses a request unless it is addressed
/// to a loopback name or address (421 `misdirected_request`: a DNS-rebinding page sends its own
/// name as Host) and unless its `Origin`, when it has one, is the server's own or allowed with
/// `--cors-origin` (403 `cross_origin`: a page of another site).
///
/// The server's own origin is `http://` a loopback host and the port of the Host header: the
/// status page at `/`, opened as `http://127.0.0.1:8080/` or `http://localhost:8080/`. With
/// `--insecure-no-auth` on a non-loopback address (`requireLoopbackHost` false) any Host is
/// answered and the own origin is `http://` and the Host header as sent.
struct LocalOnlyMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Whether the Host header must name loopback.
    let requireLoopbackHost: Bool
    /// Origins allowed with `--cors-origin`.
    let allowedOrigins: Set<Origin>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = Self.host(of: request)
        if requireLoopbackHost, host?.isLoopback != true {
            throw APIError(.misdirectedRequest, "misdirected_request", "without tokens this server answers only requests addressed to a loopback name or address (127.0.0.1, [::1], localhost)")
        }
        if request.headers.contains(.origin) {
            let values = request.headers[values: .origin]
            guard values.count == 1, let origin = Origin(values[0]), allowedOrigins.contains(origin) || isOwn(origin, host: host) else {
                throw APIError(.forbidden, "cross_origin", "without tokens this server answers no other origin than its own (see --cors-origin)")
            }
        }
        return try await next(request, context)
    }

    /// Whether `origin` is this server as the request reached it.
    func isOwn(_ origin: Origin, host: Authority?) -> Bool {
        guard let host, origin.scheme == "http", origin.port == host.port ?? 80 else { return false }
        return requireLoopbackHost ? origin.authority.isLoopback : origin.authority.host == host.host
    }

    /// The Host header (HTTP/1) or `:authority` (HTTP/2); `nil` when missing, repeated or malformed.
    static func host(of request: Request) -> Authority? {
        // A second Host header stays among the fields (the first became `authority`).
        guard let authority = request.head.authority, request.headers[values: .init("Host")!].isEmpty else { return nil }
        return Authority(authority)
    }
}
