import Foundation
import Hummingbird
import HummingbirdTesting
import Presence
@testable import PresenceAPI
import PresenceTestSupport
import Testing

/// Requests written byte for byte to a live server, as a browser (or a page of another site, or a
/// DNS-rebinding page) would send them.
@Suite("Browsers: loopback Host and own Origin without tokens, CORS only when configured, JSON bodies only")
struct BrowserSafetyTests {
    @Test("without tokens: 421 unless the Host header names loopback; 127.0.0.1, localhost and [::1] with the port are answered")
    func hostHeader() async throws {
        let server = try await RedisServer.start()
        try await withLiveAPI(server, options: testOptions(tokens: false)) { port, _ in
            for path in ["/v1/stats", "/", "/metrics", "/healthz", "/v1/nope"] {
                for host in ["evil.example", "127.0.0.1.example.com", "127.0.0.1.example.com:\(port)", "evil.example:\(port)", "0.0.0.0:\(port)", "10.0.0.1:\(port)", "[::ffff:127.0.0.1]:\(port)"] {
                    let answer = try await RawHTTPResponse.send(port: port, "GET", path, headers: [("Host", host)])
                    #expect(answer.status == 421 && answer.errorCode == "misdirected_request", "\(path) Host: \(host)")
                    #expect(answer[header: "content-type"] == "application/json; charset=utf-8")
                }
            }
            for host in ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "127.0.0.1", "LOCALHOST:\(port)"] {
                let answer = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [("Host", host)])
                #expect(answer.status == 200, "Host: \(host): \(answer.body)")
            }
            let page = try await RawHTTPResponse.send(port: port, "GET", "/", headers: [("Host", "127.0.0.1:\(port)")])
            #expect(page.status == 200 && page.body.contains("<html"))
            let noHost = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [])
            #expect(noHost.status == 421)
            let twoHosts = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [("Host", "127.0.0.1:\(port)"), ("Host", "evil.example")])
            #expect(twoHosts.status == 421 || twoHosts.status == 400)
            let head = try await RawHTTPResponse.send(port: port, "HEAD", "/v1/sockets/x", headers: [("Host", "evil.example")])
            #expect(head.status == 421 && head.body.isEmpty)
        }
    }

    @Test("without tokens: 403 for another origin; the server's own origin (the status page) passes without CORS headers")
    func origin() async throws {
        let server = try await RedisServer.start()
        try await withLiveAPI(server, options: testOptions(tokens: false)) { port, client in
            let host = ("Host", "127.0.0.1:\(port)")
            let json = ("Content-Type", "application/json")
            let lookup = #"{"socketIds":["a"]}"#
            for origin in ["http://evil.example", "null", "http://127.0.0.1:\(port + 1)", "https://127.0.0.1:\(port)", "http://127.0.0.1.example.com:\(port)", "http://evil.example:\(port)"] {
                let read = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [host, ("Origin", origin)])
                #expect(read.status == 403 && read.errorCode == "cross_origin", "Origin: \(origin)")
                #expect(read[header: "access-control-allow-origin"] == nil)
                let write = try await RawHTTPResponse.send(port: port, "PUT", "/v1/nodes/from-evil", headers: [host, ("Origin", origin), json], body: "{}")
                #expect(write.status == 403, "Origin: \(origin)")
            }
            #expect(try await allKeys(client).isEmpty)
            // The status page's fetches: same origin, GET without Origin, POST with it.
            for (pageHost, origin) in [("127.0.0.1:\(port)", "http://127.0.0.1:\(port)"), ("localhost:\(port)", "http://localhost:\(port)"),
                                       ("[::1]:\(port)", "http://[::1]:\(port)"), ("127.0.0.1:\(port)", "http://localhost:\(port)")] {
                let answer = try await RawHTTPResponse.send(port: port, "POST", "/v1/sockets/lookup", headers: [("Host", pageHost), ("Origin", origin), json], body: lookup)
                #expect(answer.status == 200, "Host: \(pageHost), Origin: \(origin): \(answer.body)")
                #expect(answer[header: "access-control-allow-origin"] == nil)
            }
            let preflight = try await RawHTTPResponse.send(port: port, "OPTIONS", "/v1/sockets/lookup", headers: [
                host, ("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")])
            #expect(preflight.status == 403 && preflight[header: "access-control-allow-origin"] == nil)
        }
    }

    @Test("--cors-origin: exactly those origins get CORS, preflight included; others stay refused")
    func cors() async throws {
        let server = try await RedisServer.start()
        var options = testOptions(tokens: false)
        let dashboard = "http://dashboard.example:3000"
        options.corsOrigins = [try #require(Origin(dashboard))]
        try await withLiveAPI(server, options: options) { port, _ in
            let host = ("Host", "127.0.0.1:\(port)")
            let read = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [host, ("Origin", dashboard)])
            #expect(read.status == 200 && read[header: "access-control-allow-origin"] == dashboard)
            let preflight = try await RawHTTPResponse.send(port: port, "OPTIONS", "/v1/nodes/n/events", headers: [
                host, ("Origin", dashboard), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type")])
            #expect(preflight.status == 204 && preflight[header: "access-control-allow-origin"] == dashboard)
            #expect(preflight[header: "access-control-allow-methods"]?.contains("POST") == true)
            #expect(preflight[header: "access-control-allow-headers"]?.lowercased().contains("content-type") == true)
            let error = try await RawHTTPResponse.send(port: port, "GET", "/v1/nodes/ghost", headers: [host, ("Origin", dashboard)])
            #expect(error.status == 404 && error[header: "access-control-allow-origin"] == dashboard)  // errors are readable too
            let other = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [host, ("Origin", "http://evil.example")])
            #expect(other.status == 403 && other[header: "access-control-allow-origin"] == nil)
            let otherPreflight = try await RawHTTPResponse.send(port: port, "OPTIONS", "/v1/stats", headers: [
                host, ("Origin", "http://evil.example"), ("Access-Control-Request-Method", "GET")])
            #expect(otherPreflight[header: "access-control-allow-origin"] == nil)
        }
    }

    @Test("with tokens: Host and Origin are not checked (the token protects), CORS stays off, 415 still applies")
    func tokenMode() async throws {
        let server = try await RedisServer.start()
        try await withLiveAPI(server, options: testOptions(tokens: true)) { port, client in
            let auth = ("Authorization", "Bearer \(writeToken)")
            let read = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [("Host", "presence.internal:8080"), ("Origin", "http://evil.example"), auth])
            #expect(read.status == 200 && read[header: "access-control-allow-origin"] == nil)
            let anonymous = try await RawHTTPResponse.send(port: port, "GET", "/v1/stats", headers: [("Host", "evil.example")])
            #expect(anonymous.status == 401)
            let node = try await RawHTTPResponse.send(port: port, "PUT", "/v1/nodes/n", headers: [("Host", "10.0.0.7:8080"), auth, ("Content-Type", "application/json")], body: "{}")
            #expect(node.status == 200)
            let before = try await allKeys(client).sorted()
            let text = try await RawHTTPResponse.send(port: port, "POST", "/v1/nodes/n/events", headers: [("Host", "10.0.0.7:8080"), auth, ("Content-Type", "text/plain")],
                                                      body: #"{"events":[{"type":"connect","socketId":"s"}]}"#)
            #expect(text.status == 415 && text.errorCode == "unsupported_media_type")
            #expect(try await allKeys(client).sorted() == before)
        }
    }

    @Test("415 for a body that is not declared JSON, in both modes, before anything is written", arguments: [true, false])
    func contentType(tokens: Bool) async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(tokens: tokens, nodeTTL: .seconds(30))) { http, client in
            #expect(try await http.send(.put, "/v1/nodes/x").status == .ok)
            let events = #"{"events":[{"type":"connect","socketId":"s"}]}"#
            let before = try await allKeys(client).sorted()
            let refused: [(HTTPRequest.Method, String, String?, String)] = [
                (.post, "/v1/nodes/x/events", "text/plain", events),
                (.post, "/v1/nodes/x/events", "text/plain;charset=UTF-8", events),
                (.post, "/v1/nodes/x/events", "application/x-www-form-urlencoded", events),
                (.post, "/v1/nodes/x/events", "multipart/form-data; boundary=b", events),
                (.post, "/v1/nodes/x/events", nil, events),
                (.put, "/v1/nodes/x", "text/plain", #"{"address":"10.0.0.1:1"}"#),
                (.put, "/v1/nodes/y", "text/plain", ""),  // a declared type that is not JSON, even without a body
                (.put, "/v1/nodes/x/sockets/s", "text/plain", #"{"userId":"u"}"#),
                (.put, "/v1/nodes/x/sockets/s", nil, #"{"userId":"u"}"#),
                (.post, "/v1/sockets/lookup", "text/plain", #"{"socketIds":["s"]}"#),
            ]
            for (method, uri, type, body) in refused {
                var headers: HTTPFields = [.authorization: "Bearer \(writeToken)"]
                if let type { headers[.contentType] = type }
                let answer = try await http.execute(uri: uri, method: method, headers: headers, body: ByteBuffer(string: body)) { $0 }
                #expect(answer.status == .unsupportedMediaType && answer.errorCode == "unsupported_media_type", "\(method) \(uri) \(type ?? "no type")")
            }
            #expect(try await allKeys(client).sorted() == before)
            for type in ["application/json", "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8"] {
                let answer = try await http.execute(uri: "/v1/nodes/x/events", method: .post, headers: [.authorization: "Bearer \(writeToken)", .contentType: type],
                                                    body: ByteBuffer(string: events)) { $0 }
                #expect(answer.status == .ok, "\(type)")
            }
            // A PUT without a body needs no Content-Type; a GET or DELETE is never asked for one.
            #expect(try await http.execute(uri: "/v1/nodes/z", method: .put, headers: [.authorization: "Bearer \(writeToken)"]) { $0 }.status == .ok)
            #expect(try await http.execute(uri: "/v1/nodes/z/sockets/t", method: .put, headers: [.authorization: "Bearer \(writeToken)"]) { $0 }.status == .created)
            #expect(try await http.execute(uri: "/v1/nodes/z/sockets/t", method: .delete, headers: [.authorization: "Bearer \(writeToken)", .contentType: "text/plain"]) { $0 }.status == .noContent)
            if tokens {  // the token is checked first
                let anonymous = try await http.execute(uri: "/v1/nodes/x/events", method: .post, headers: [.contentType: "text/plain"], body: ByteBuffer(string: events)) { $0 }
                #expect(anonymous.status == .unauthorized)
            }
        }
    }

    @Test("a chunked body without Content-Type is a 415 too; an empty chunked body is no body")
    func chunked() async throws {
        let server = try await RedisServer.start()
        try await withLiveAPI(server, options: testOptions(tokens: false, nodeTTL: .seconds(30))) { port, client in
            let host = ("Host", "127.0.0.1:\(port)")
            let empty = try await RawHTTPResponse.send(port: port, "PUT", "/v1/nodes/c", headers: [host], chunked: true)
            #expect(empty.status == 200, "\(empty.body)")
            let before = try await allKeys(client).sorted()
            let refused = try await RawHTTPResponse.send(port: port, "POST", "/v1/nodes/c/events", headers: [host],
                                                         body: #"{"events":[{"type":"connect","socketId":"s"}]}"#, chunked: true)
            #expect(refused.status == 415 && refused.errorCode == "unsupported_media_type")
            #expect(try await allKeys(client).sorted() == before)
            let accepted = try await RawHTTPResponse.send(port: port, "POST", "/v1/nodes/c/events", headers: [host, ("Content-Type", "application/json")],
                                                          body: #"{"events":[{"type":"connect","socketId":"s"}]}"#, chunked: true)
            #expect(accepted.status == 200, "\(accepted.body)")
        }
    }
}
