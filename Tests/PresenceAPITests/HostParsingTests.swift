@testable import PresenceAPI
import Testing

@Suite("Loopback hosts, Host headers, origins and media types (pure)")
struct HostParsingTests {
    @Test("loopback: 127.0.0.0/8, ::1 in any spelling, localhost in any case", arguments: [
        "127.0.0.1", "127.5.6.7", "127.255.255.255", "::1", "0:0:0:0:0:0:0:1", "localhost", "LocalHost",
    ])
    func loopback(host: String) {
        #expect(Loopback.isLoopback(host))
    }

    @Test("not loopback: names that merely start like one, every-interface, mapped, short and other addresses", arguments: [
        "127.0.0.1.example.com", "0.0.0.0", "::ffff:127.0.0.1", "10.0.0.1", "128.0.0.1", "127.1", "0x7f.0.0.1",
        "::", "::2", "[::1]", "localhost.", "foo.localhost", "evil.example", "",
    ])
    func notLoopback(host: String) {
        #expect(!Loopback.isLoopback(host))
    }

    @Test("without tokens --host must be loopback: a look-alike name is refused")
    func exposureUsesTheParser() throws {
        var options = testOptions(tokens: false)
        for host in ["127.0.0.1", "127.5.6.7", "::1", "localhost"] {
            options.host = host
            try options.checkExposure()
            #expect(options.requiresLoopbackHost, "\(host)")
        }
        for host in ["127.0.0.1.example.com", "0.0.0.0", "::ffff:127.0.0.1", "10.0.0.1"] {
            options.host = host
            #expect(throws: ConfigurationError.self, "\(host)") { try options.checkExposure() }
        }
        options.insecureNoAuth = true
        try options.checkExposure()
        #expect(!options.requiresLoopbackHost)
    }

    @Test("--cors-origin values: written as browsers write origins; a path or a wildcard is refused")
    func corsOption() throws {
        let origins = try ServeOptions.corsOrigins(["HTTPS://Dash.Example:443", "http://localhost:3000", "https://dash.example"])
        #expect(Set(origins.map(\.description)) == ["https://dash.example", "http://localhost:3000"])
        for bad in ["https://dash.example/", "*", "dash.example", "null"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try ServeOptions.corsOrigins([bad]) }
        }
    }

    @Test("Host header values: host and port, IPv6 in brackets")
    func authorities() throws {
        let cases: [(String, String, Int?)] = [
            ("127.0.0.1:8080", "127.0.0.1", 8080), ("LOCALHOST", "localhost", nil), ("[::1]:9000", "::1", 9000),
            ("[::1]", "::1", nil), ("evil.example:80", "evil.example", 80),
        ]
        for (text, host, port) in cases {
            let authority = try #require(Authority(text), "\(text)")
            #expect(authority.host == host && authority.port == port, "\(text)")
        }
        #expect(Authority("[::1]:8080")?.isLoopback == true)
        #expect(Authority("127.0.0.1.example.com:8080")?.isLoopback == false)
        for text in ["", "::1", "[::1", "[::1]x", "[127.0.0.1]", "host:", "host:99999", "host:8a", "user@host", "a b", "host/path", "[fe80::1%25eth0]"] {
            #expect(Authority(text) == nil, "\(text)")
        }
    }

    @Test("origins: parsed and written as browsers write them")
    func origins() {
        #expect(Origin("http://127.0.0.1:8080")?.description == "http://127.0.0.1:8080")
        #expect(Origin("HTTP://LocalHost:80")?.description == "http://localhost")
        #expect(Origin("https://dash.example:443")?.description == "https://dash.example")
        #expect(Origin("http://[::1]:3000")?.description == "http://[::1]:3000")
        #expect(Origin("http://a.example") == Origin("http://a.example:80"))
        for text in ["null", "http://a.example/", "ftp://a.example", "http://", "a.example", "http://a.example:x"] {
            #expect(Origin(text) == nil, "\(text)")
        }
    }

    @Test("Content-Type: application/json with any parameters, in any case")
    func mediaTypes() {
        for type in ["application/json", "Application/JSON; charset=utf-8", " application/json ;charset=UTF-8", "application/json;"] {
            #expect(JSONContentTypeMiddleware<AppRequestContext>.isJSON(type), "\(type)")
        }
        for type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx",
                     "application/json-patch+json", "application/json, text/plain", ""] {
            #expect(!JSONContentTypeMiddleware<AppRequestContext>.isJSON(type), "\(type)")
        }
    }
}
