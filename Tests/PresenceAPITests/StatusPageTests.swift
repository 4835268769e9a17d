import Foundation
import Hummingbird
import HummingbirdTesting
@testable import PresenceAPI
import PresenceTestSupport
import Testing

@Suite("The status page at / (no token; its data comes from the read API)")
struct StatusPageTests {
    @Test("/ is the page with its content type and security headers, without a token while the API needs one")
    func page() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(tokens: true)) { http, _ in
            let page = try await http.send(.get, "/", token: nil)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            expectSecurityHeaders(page)
            let html = String(buffer: page.body)
            #expect(page.body.readableBytesView.elementsEqual(PackageResources.index_html))
            #expect(html.contains(#"<script src="/assets/status.js" defer></script>"#))
            #expect(html.contains(#"<link rel="stylesheet" href="/assets/status.css">"#))
            // The policy allows no inline code, so the page must hold none.
            #expect(!html.contains("<style") && !html.contains(" style="))
            #expect(try !html.contains(Regex(#"<script(?![^>]*\ssrc=)"#)), "inline script")
            #expect(try !html.contains(Regex(#"\son[a-z]+\s*="#)), "inline event handler")
            // A labelled input and a table with column headers.
            #expect(html.contains(#"<label for="socket-id">"#) && html.contains(#"<input id="socket-id""#))
            #expect(html.contains(#"<th scope="col">Node</th>"#))
            // The feed (a table with column headers, filled by the script) and the chart (a legend
            // whose text carries the values, and SVG plots the script draws in).
            #expect(html.contains(#"<table id="feed">"#) && html.contains(#"<th scope="col">Change</th>"#))
            #expect(html.contains(#"<ul id="chart-legend">"#) && html.contains(#"<svg id="chart-levels""#) && html.contains(#"<svg id="chart-rates""#))

            let api = try await http.send(.get, "/v1/stats", token: nil)
            #expect(api.status == .unauthorized)  // the data still needs the token
        }
    }

    @Test("the script, style and icon the page links to are served with their types")
    func assets() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(tokens: true)) { http, _ in
            let html = String(buffer: try await http.send(.get, "/", token: nil).body)
            let linked = html.matches(of: try Regex(#"(?:src|href)="(/assets/[^"]+)""#)).compactMap { $0.output[1].substring.map(String.init) }
            #expect(Set(linked) == ["/assets/status.js", "/assets/status.css", "/assets/icon.svg"])
            let expected: [String: (type: String, bytes: [UInt8])] = [
                "/assets/status.js": ("text/javascript; charset=utf-8", PackageResources.status_js),
                "/assets/status.css": ("text/css; charset=utf-8", PackageResources.status_css),
                "/assets/icon.svg": ("image/svg+xml", PackageResources.icon_svg),
            ]
            for (path, file) in expected {
                let response = try await http.send(.get, path, token: nil)
                #expect(response.status == .ok, "\(path)")
                #expect(response.headers[.contentType] == file.type, "\(path)")
                #expect(response.body.readableBytesView.elementsEqual(file.bytes), "\(path)")
                expectSecurityHeaders(response)
            }
            // What the script must never do with client-supplied ids and the token (its comments
            // may name them; uses have a dot or a parenthesis).
            let script = String(decoding: PackageResources.status_js, as: UTF8.self)
            for use in [".innerHTML", ".outerHTML", "insertAdjacentHTML(", "document.write", "eval(", "localStorage."] {
                #expect(!script.contains(use), "status.js uses \(use)")
            }
            #expect(script.contains("sessionStorage.setItem(TOKEN_KEY"))
            // The feed reads /v1/changes through fetch, which carries the token and Last-Event-ID
            // (EventSource cannot send Authorization).
            #expect(script.contains(#"fetch("/v1/changes""#) && script.contains(#"headers["Last-Event-ID"]"#))
            #expect(!script.contains("new EventSource"))
            // No CDN, no other origin: the only URL in the page's files is the SVG namespace.
            for (name, bytes) in [("index.html", PackageResources.index_html), ("status.js", PackageResources.status_js), ("status.css", PackageResources.status_css)] {
                let urls = String(decoding: bytes, as: UTF8.self).matches(of: try Regex(#"https?://[^\s"')]*"#)).map { String($0.output[0].substring ?? "") }
                #expect(urls.allSatisfy { $0 == "http://www.w3.org/2000/svg" }, "\(name) links to \(urls)")
            }
        }
    }

    @Test("HEAD answers like GET without a body")
    func head() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(tokens: true)) { http, _ in
            for path in ["/", "/assets/status.js", "/assets/status.css"] {
                let get = try await http.send(.get, path, token: nil)
                let head = try await http.send(.head, path, token: nil)
                #expect(head.status == .ok, "\(path)")
                #expect(head.body.readableBytes == 0, "\(path)")
                #expect(head.headers[.contentLength] == String(get.body.readableBytes), "\(path)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(path)")
                #expect(head.headers[.eTag] == get.headers[.eTag], "\(path)")
                expectSecurityHeaders(head)
            }
        }
    }

    @Test("an unknown asset is a 404 not_found, for GET and HEAD")
    func unknownAsset() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(tokens: true)) { http, _ in
            for path in ["/assets/nope.js", "/assets/", "/assets/status.js/x", "/assets/%2E%2E", "/assets/..%2Findex.html", "/status.js"] {
                let get = try await http.send(.get, path, token: nil)
                #expect(get.status == .notFound && get.errorCode == "not_found", "\(path)")
                let head = try await http.send(.head, path, token: nil)
                #expect(head.status == .notFound && head.body.readableBytes == 0, "\(path)")
            }
        }
    }

    @Test("If-None-Match with the ETag answers 304 without a body")
    func conditional() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(tokens: false)) { http, _ in
            let first = try await http.send(.get, "/assets/status.js", token: nil)
            let etag = try #require(first.headers[.eTag])
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\""))
            for condition in [etag, "W/\(etag)", "\"other\", \(etag)", "*"] {
                let again = try await http.execute(uri: "/assets/status.js", method: .get, headers: [.ifNoneMatch: condition]) { $0 }
                #expect(again.status == .notModified && again.body.readableBytes == 0, "\(condition)")
                #expect(again.headers[.eTag] == etag)
            }
            let changed = try await http.execute(uri: "/assets/status.js", method: .get, headers: [.ifNoneMatch: "\"other\""]) { $0 }
            #expect(changed.status == .ok && changed.body.readableBytes == first.body.readableBytes)
            #expect(try await http.send(.get, "/", token: nil).headers[.eTag] != etag)  // one tag per file
        }
    }

    private func expectSecurityHeaders(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.headers[.xContentTypeOptions] == "nosniff", sourceLocation: sourceLocation)
        #expect(response.headers[.cacheControl] == "no-cache", sourceLocation: sourceLocation)
        let policy = response.headers[.contentSecurityPolicy] ?? ""
        #expect(policy.hasPrefix("default-src 'none'; script-src 'self'; style-src 'self';"), sourceLocation: sourceLocation)
        #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), sourceLocation: sourceLocation)
        #expect(policy.contains("frame-ancestors 'none'"), sourceLocation: sourceLocation)
        #expect(response.headers[.init("Referrer-Policy")!] == "no-referrer", sourceLocation: sourceLocation)
    }
}
