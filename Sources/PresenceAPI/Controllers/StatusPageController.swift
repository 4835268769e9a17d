import Hummingbird

/// The live status page at `/` and its files at `/assets/{name}`, for GET and HEAD. No token:
/// the files hold no data; the page reads the `/v1` API with the read token the user gives it.
struct StatusPageController<Context: RequestContext>: Sendable {
    /// The page runs only its own script and style, talks only to this origin, submits no form
    /// anywhere and cannot be framed.
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get { request, _ in Self.response(.page, to: request) }
        routes.head { request, _ in Self.response(.page, to: request) }
        routes.get("assets/:name", use: asset)
        routes.head("assets/:name", use: asset)
        return routes
    }

    /// `GET`/`HEAD /assets/{name}`: a file the page loads; 404 `not_found` for any other name.
    @Sendable func asset(_ request: Request, context: Context) throws -> Response {
        guard let name = context.parameters.get("name"), let asset = StatusPageAsset.assets[name] else {
            throw APIError.notFound("not_found", "no such file")
        }
        return Self.response(asset, to: request)
    }

    /// The file with its security headers. `Cache-Control: no-cache` with an `ETag`: browsers
    /// revalidate (a 304 when unchanged), so a new binary's page is picked up at once.
    static func response(_ asset: StatusPageAsset, to request: Request) -> Response {
        var headers: HTTPFields = [
            .contentType: asset.contentType,
            .cacheControl: "no-cache",
            .eTag: asset.etag,
            .xContentTypeOptions: "nosniff",
            .contentSecurityPolicy: contentSecurityPolicy,
            .init("Referrer-Policy")!: "no-referrer",
        ]
        if let condition = request.headers[.ifNoneMatch], asset.matches(ifNoneMatch: condition) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(asset.body.readableBytes)
        return Response(status: .ok, headers: headers, body: request.method == .head ? ResponseBody() : ResponseBody(byteBuffer: asset.body))
    }
}
