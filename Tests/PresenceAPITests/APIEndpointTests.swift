import Foundation
import Hummingbird
import HummingbirdTesting
import Presence
@testable import PresenceAPI
import PresenceTestSupport
import Testing

@Suite("HTTP API against a real redis-server")
struct APIEndpointTests {
    @Test("every endpoint: report a node and sockets, then ask every question")
    func everyEndpoint() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(nodeTTL: .seconds(30))) { http, _ in
            let registered = try await http.send(.put, "/v1/nodes/node-1", json: #"{"address":"10.0.0.1:3000","meta":{"zone":"a"}}"#)
            #expect(registered.status == .ok)
            #expect(registered.json["nodeId"] as? String == "node-1")
            #expect(registered.json["status"] as? String == "new")
            #expect(registered.json["resyncRequired"] as? Bool == true)
            #expect(registered.json["alive"] as? Bool == true)
            let incarnation = try #require(registered.json["incarnation"] as? String)
            let again = try await http.send(.put, "/v1/nodes/node-1", json: "")
            #expect(again.json["status"] as? String == "ok" && again.json["incarnation"] as? String == incarnation)
            #expect(again.json["address"] as? String == "10.0.0.1:3000")
            let withURL = try await http.send(.put, "/v1/nodes/node-url", json: #"{"address":"http://10.0.0.9:3000/x"}"#)
            #expect(String(buffer: withURL.body).contains(#""address":"http://10.0.0.9:3000/x""#))  // slashes not escaped
            #expect(try await http.send(.delete, "/v1/nodes/node-url").status == .noContent)

            let created = try await http.send(.put, "/v1/nodes/node-1/sockets/sock-1", json: #"{"userId":"alice","meta":{"room":"r1"}}"#)
            #expect(created.status == .created)
            #expect(created.json["alive"] as? Bool == true && created.json["userId"] as? String == "alice")
            #expect(created.json["meta"] as? [String: String] == ["room": "r1"])
            #expect(try await http.send(.put, "/v1/nodes/node-1/sockets/sock-1", json: #"{"userId":"alice"}"#).status == .ok)
            #expect(try await http.send(.put, "/v1/nodes/node-1/sockets/sock-2").status == .created)  // empty body

            let events = try await http.send(.post, "/v1/nodes/node-1/events", json: """
                {"events":[{"type":"connect","socketId":"sock-3","userId":"bob"},{"type":"connect","socketId":"sock-4"},
                 {"type":"disconnect","socketId":"sock-4"},{"type":"disconnect","socketId":"never"}]}
                """)
            #expect(events.status == .ok)
            let results = (events.json["results"] as? [[String: Any]])?.compactMap { $0["result"] as? String }
            #expect(results == ["created", "created", "removed", "not_held"])

            let socket = try await http.send(.get, "/v1/sockets/sock-1", token: readToken)
            #expect(socket.status == .ok)
            #expect(socket.json["nodeId"] as? String == "node-1")
            #expect(socket.json["nodeAddress"] as? String == "10.0.0.1:3000")
            // A connect writes the socket as reported: the second PUT of sock-1 sent no meta, so none is left.
            #expect(socket.json["meta"] as? [String: String] == [:])
            let connectedAt = try #require(socket.json["connectedAt"] as? String)
            #expect(connectedAt.hasSuffix("Z") && connectedAt.contains("."))
            let noUser = try await http.send(.get, "/v1/sockets/sock-2", token: readToken)
            #expect(noUser.json.keys.contains("userId") && noUser.json["userId"] is NSNull)
            let named = try await http.send(.get, "/v1/sockets/lookup", token: readToken)  // a socket may be named so
            #expect(named.status == .notFound && named.json["socketId"] as? String == "lookup")
            let missing = try await http.send(.get, "/v1/sockets/sock-4", token: readToken)
            #expect(missing.status == .notFound)
            #expect(missing.json["alive"] as? Bool == false && missing.json["socketId"] as? String == "sock-4")
            #expect(try await http.send(.head, "/v1/sockets/sock-1", token: readToken).status == .ok)
            let head = try await http.send(.head, "/v1/sockets/sock-4", token: readToken)
            #expect(head.status == .notFound && head.body.readableBytes == 0)

            let lookup = try await http.send(.post, "/v1/sockets/lookup", token: readToken, json: #"{"socketIds":["sock-3","nope","sock-1"]}"#)
            let entries = try #require(lookup.json["sockets"] as? [[String: Any]])
            #expect(entries.map { $0["socketId"] as? String } == ["sock-3", "nope", "sock-1"])
            #expect(entries.map { $0["alive"] as? Bool } == [true, false, true])

            let nodes = try await http.send(.get, "/v1/nodes", token: readToken)
            #expect((nodes.json["nodes"] as? [[String: Any]])?.map { $0["nodeId"] as? String } == ["node-1"])
            #expect(try await http.send(.get, "/v1/nodes/node-1", token: readToken).json["alive"] as? Bool == true)
            #expect(try await http.send(.get, "/v1/nodes/ghost", token: readToken).status == .notFound)
            let page = try await http.send(.get, "/v1/nodes/node-1/sockets?limit=10", token: readToken)
            #expect(Set((page.json["sockets"] as? [[String: Any]])?.compactMap { $0["socketId"] as? String } ?? []) == ["sock-1", "sock-2", "sock-3"])
            #expect(page.json.keys.contains("nextCursor"))

            let user = try await http.send(.get, "/v1/users/alice", token: readToken)
            #expect(user.json["online"] as? Bool == true)
            #expect((user.json["sockets"] as? [[String: Any]])?.count == 1)
            #expect(try await http.send(.get, "/v1/users/nobody", token: readToken).json["online"] as? Bool == false)

            #expect(try await http.send(.put, "/v1/nodes/node-1", json: #"{"userCount":2}"#).status == .ok)  // refresh counts
            var stats = try await http.send(.get, "/v1/stats", token: readToken).json
            #expect((stats["nodes"] as? [String: Int]) == ["alive": 1, "dead": 0])
            #expect((stats["sockets"] as? [String: Int]) == ["alive": 3])
            // Exact (the change stream is on): alice and bob, whatever userCount the node reports.
            var users = stats["users"] as? [String: Any]
            #expect(users?["online"] as? Int == 2 && users?["exact"] as? Bool == true)
            #expect(try await http.send(.put, "/v1/nodes/node-1", json: #"{"userCount":7}"#).status == .ok)
            stats = try await http.send(.get, "/v1/stats", token: readToken).json
            users = stats["users"] as? [String: Any]
            #expect(users?["online"] as? Int == 2 && users?["exact"] as? Bool == true)

            #expect(try await http.send(.delete, "/v1/nodes/node-1/sockets/sock-2").status == .noContent)
            let notHeld = try await http.send(.delete, "/v1/nodes/node-1/sockets/sock-2")
            #expect(notHeld.status == .notFound && notHeld.errorCode == "socket_not_found")
            #expect(try await http.send(.delete, "/v1/nodes/node-1").status == .noContent)
            #expect(try await http.send(.get, "/v1/sockets/sock-1", token: readToken).status == .notFound)
            #expect(try await http.send(.delete, "/v1/nodes/node-1").status == .notFound)

            #expect(try await http.send(.get, "/healthz", token: nil).json["status"] as? String == "ok")
            #expect(try await http.send(.get, "/readyz", token: nil).status == .ok)
            let metrics = try await http.send(.get, "/metrics", token: nil)
            let text = String(buffer: metrics.body)
            #expect(text.contains("hb_requests") && text.contains("presence_redis_round_trips_total") && text.contains("presence_nodes_alive"))
        }
    }

    @Test("a changed incarnation kills the previous one's sockets at once")
    func incarnationChange() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(nodeTTL: .seconds(30))) { http, _ in
            #expect(try await http.send(.put, "/v1/nodes/n", json: #"{"incarnation":"boot-1"}"#).status == .ok)
            #expect(try await http.send(.put, "/v1/nodes/n/sockets/s").status == .created)
            #expect(try await http.send(.get, "/v1/sockets/s", token: readToken).status == .ok)  // alive before the restart
            let restarted = try await http.send(.put, "/v1/nodes/n", json: #"{"incarnation":"boot-2"}"#)
            #expect(restarted.json["status"] as? String == "replaced")
            #expect(try await http.send(.get, "/v1/sockets/s", token: readToken).status == .notFound)
        }
    }

    @Test("a connect reported late with the node's connectedAt does not displace a newer connection elsewhere")
    func lateConnectOverHTTP() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(nodeTTL: .seconds(30))) { http, _ in
            #expect(try await http.send(.put, "/v1/nodes/a").status == .ok)
            #expect(try await http.send(.put, "/v1/nodes/b").status == .ok)
            let now = Date()
            let newer = Timestamp.string(now)
            let older = Timestamp.string(now.addingTimeInterval(-5))
            // The client moved from node a to node b; b reports first, a's report arrives late.
            #expect(try await http.send(.put, "/v1/nodes/b/sockets/m", json: #"{"connectedAt":"\#(newer)"}"#).status == .created)
            let late = try await http.send(.post, "/v1/nodes/a/events", json: #"{"events":[{"type":"connect","socketId":"m","connectedAt":"\#(older)"}]}"#)
            #expect(((late.json["results"] as? [[String: Any]])?.first?["result"] as? String) == "superseded")
            let socket = try await http.send(.get, "/v1/sockets/m", token: readToken)
            #expect(socket.json["nodeId"] as? String == "b")
            #expect(socket.json["connectedAt"] as? String == newer)
            // a's disconnect then removes nothing: the socket stays on b.
            #expect(try await http.send(.delete, "/v1/nodes/a/sockets/m").status == .notFound)
            #expect(try await http.send(.get, "/v1/sockets/m", token: readToken).json["nodeId"] as? String == "b")
            // A connect with a later connectedAt, or none (the server's clock), takes the socket.
            let moved = try await http.send(.put, "/v1/nodes/a/sockets/m")
            #expect(moved.status == .created)
            #expect(try await http.send(.get, "/v1/sockets/m", token: readToken).json["nodeId"] as? String == "a")
        }
    }

    @Test("a node whose heartbeats stop reads dead through the API within its TTL")
    func heartbeatsStop() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(nodeTTL: .seconds(2))) { http, client in
            let node = try await http.send(.put, "/v1/nodes/quiet")
            #expect(try await http.send(.put, "/v1/nodes/quiet/sockets/q1").status == .created)
            #expect(try await http.send(.get, "/v1/sockets/q1", token: readToken).status == .ok)
            let expiresAt = try #require((node.json["expiresAt"] as? String).flatMap { try? Date($0, strategy: .iso8601) })
            try await waitUntilRedisTime(client, passes: Int(expiresAt.timeIntervalSince1970 * 1000) + 1)
            let dead = try await http.send(.get, "/v1/sockets/q1", token: readToken)
            #expect(dead.status == .notFound && dead.json["alive"] as? Bool == false)
            #expect(try await http.send(.get, "/v1/nodes/quiet", token: readToken).json["alive"] as? Bool == false)
        }
    }

    @Test("auth: 401 without credentials, 403 with a wrong token or a read token on a write")
    func authMatrix() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server) { http, _ in
            #expect(try await http.send(.put, "/v1/nodes/auth-node").status == .ok)
            let reads: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/v1/sockets/x", nil), (.post, "/v1/sockets/lookup", #"{"socketIds":["x"]}"#), (.get, "/v1/nodes", nil),
                (.get, "/v1/nodes/auth-node", nil), (.get, "/v1/nodes/auth-node/sockets", nil), (.get, "/v1/users/u", nil), (.get, "/v1/stats", nil),
            ]
            let writes: [(HTTPRequest.Method, String, String?)] = [
                (.put, "/v1/nodes/auth-node", nil), (.put, "/v1/nodes/auth-node/sockets/s", nil),
                (.post, "/v1/nodes/auth-node/events", #"{"events":[{"type":"connect","socketId":"e"}]}"#),
                (.delete, "/v1/nodes/auth-node/sockets/s", nil), (.delete, "/v1/nodes/other", nil),
            ]
            for (method, uri, body) in reads + writes {
                let anonymous = try await http.send(method, uri, token: nil, json: body)
                #expect(anonymous.status == .unauthorized && anonymous.errorCode == "unauthorized", "\(method) \(uri)")
                #expect(anonymous.headers[.wwwAuthenticate] == "Bearer")
                let wrong = try await http.send(method, uri, token: "nope", json: body)
                #expect(wrong.status == .forbidden && wrong.errorCode == "forbidden", "\(method) \(uri)")
            }
            for (method, uri, body) in reads {
                #expect(![.unauthorized, .forbidden].contains(try await http.send(method, uri, token: readToken, json: body).status), "\(method) \(uri)")
                #expect(![.unauthorized, .forbidden].contains(try await http.send(method, uri, token: writeToken, json: body).status), "\(method) \(uri)")
            }
            for (method, uri, body) in writes {
                #expect(try await http.send(method, uri, token: readToken, json: body).status == .forbidden, "\(method) \(uri)")
                #expect(![.unauthorized, .forbidden].contains(try await http.send(method, uri, token: writeToken, json: body).status), "\(method) \(uri)")
            }
            for uri in ["/healthz", "/readyz", "/metrics"] {
                #expect(try await http.send(.get, uri, token: nil).status == .ok, "\(uri)")
            }
        }
    }

    @Test("bad input: a 4xx with an error body, and nothing written")
    func badInputs() async throws {
        let server = try await RedisServer.start()
        try await withAPI(server, options: testOptions(nodeTTL: .seconds(30))) { http, client in
            #expect(try await http.send(.put, "/v1/nodes/good").status == .ok)
            let long = String(repeating: "x", count: 257)
            let huge = "{\"events\":[" + String(repeating: "{\"type\":\"connect\",\"socketId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},", count: 20_000) + "]}"
            let cases: [(HTTPRequest.Method, String, String?, HTTPResponse.Status, String)] = [
                (.put, "/v1/nodes/\(long)", nil, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/a%00b", nil, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/a%0Ab", nil, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/a%FFb", nil, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/a%zzb", nil, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/a%25b", nil, .badRequest, "invalid_id"),  // ids hold no "%", encoded or not
                (.put, "/v1/nodes/good", #"{"address":"[fe80::1%eth0]:3000"}"#, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/good/sockets/s", #"{"userId":"50%"}"#, .badRequest, "invalid_id"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"connect","socketId":"a%0Bb"}]}"#, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/good", "{not json", .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", "[1,2]", .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"address":5}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"bogus":"x"}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"meta":{"k":1}}"#, .badRequest, "invalid_meta"),
                (.put, "/v1/nodes/good", #"{"userCount":true}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"userCount":1.5}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"userCount":-1}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"userCount":"3"}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"userCount":1e12}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good", #"{"incarnation":""}"#, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/good/sockets/\(long)", nil, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/good/sockets/s", #"{"userId":"a\u0000b"}"#, .badRequest, "invalid_id"),
                (.put, "/v1/nodes/good/sockets/s", #"{"userId":true}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/unregistered/sockets/s", nil, .notFound, "node_not_found"),
                (.post, "/v1/nodes/good/events", #"{"events":[]}"#, .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"connect","socketId":"ok"},{"type":"jump","socketId":"x"}]}"#, .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"connect","socketId":"ok"},{"type":"connect"}]}"#, .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", "", .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", huge, .contentTooLarge, "body_too_large"),
                (.post, "/v1/sockets/lookup", #"{"socketIds":[]}"#, .badRequest, "invalid_body"),
                (.post, "/v1/sockets/lookup", #"{"socketIds":[1]}"#, .badRequest, "invalid_body"),
                (.get, "/v1/sockets/\(long)", nil, .badRequest, "invalid_id"),
                (.get, "/v1/nodes/good/sockets?limit=0", nil, .badRequest, "invalid_parameter"),
                (.get, "/v1/nodes/good/sockets?limit=abc", nil, .badRequest, "invalid_parameter"),
                (.get, "/v1/nodes/good/sockets?cursor=-1", nil, .badRequest, "invalid_parameter"),
                (.get, "/v1/nodes/good/sockets?cursor=%2B5", nil, .badRequest, "invalid_parameter"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"disconnect","socketId":"a","meta":5}]}"#, .badRequest, "invalid_meta"),
                (.put, "/v1/nodes/good/sockets/s", #"{"connectedAt":"yesterday"}"#, .badRequest, "invalid_body"),
                (.put, "/v1/nodes/good/sockets/s", #"{"connectedAt":1795772629}"#, .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"connect","socketId":"a","connectedAt":"2026-02-30T00:00:00Z"}]}"#, .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"connect","socketId":"a","connectedAt":"1999-12-31T23:59:59Z"}]}"#, .badRequest, "invalid_body"),
                (.post, "/v1/nodes/good/events", #"{"events":[{"type":"disconnect","socketId":"a","connectedAt":"2026-11-30T02:00:00.1234567Z"}]}"#, .badRequest, "invalid_body"),
                (.get, "/v1/nope", nil, .notFound, "not_found"),
                (.get, "/index.html", nil, .notFound, "not_found"),  // "/" is the status page
            ]
            let lookup = (0..<1001).map { "\"s\($0)\"" }.joined(separator: ",")
            let all = cases + [(.post, "/v1/sockets/lookup", "{\"socketIds\":[\(lookup)]}", .badRequest, "invalid_body")]
            let before = try await allKeys(client).sorted()
            for (method, uri, body, status, code) in all {
                let response = try await http.send(method, uri, json: body)
                #expect(response.status == status, "\(method) \(uri.prefix(80))")
                #expect(response.errorCode == code, "\(method) \(uri.prefix(80)): \(String(buffer: response.body).prefix(200))")
            }
            #expect(try await allKeys(client).sorted() == before)
        }
    }

    @Test("Redis unavailable or a replica: 503 with a clear body, never a wrong answer")
    func redisTrouble() async throws {
        let primary = try await RedisServer.start()
        let replica = try await RedisServer.start(["--replicaof", "127.0.0.1", String(primary.port)])
        try await withAPI(replica) { http, _ in
            let ready = try await http.send(.get, "/readyz", token: nil)
            #expect(ready.status == .serviceUnavailable && ready.errorCode == "redis_replica")
            #expect(try await http.send(.put, "/v1/nodes/n").status == .serviceUnavailable)
        }
        let gone = try await RedisServer.start()
        gone.stop()
        try await withAPI(gone) { http, _ in
            let answer = try await http.send(.get, "/v1/sockets/s", token: readToken)
            #expect(answer.status == .serviceUnavailable && answer.errorCode == "redis_unavailable")
            #expect(try await http.send(.get, "/readyz", token: nil).status == .serviceUnavailable)
            #expect(try await http.send(.get, "/healthz", token: nil).status == .ok)
        }
    }

    @Test("--read-from replicas: queries go to a replica found through Sentinel, reports to the primary")
    func readFromReplicas() async throws {
        let cluster = try await SentinelCluster.start()
        let writes = try RedisConfiguration(url: cluster.url)
        var reads = writes
        reads.requirePrimary = false
        reads.sentinel?.preferReplica = true
        reads.clientName = "presence-read"
        let client = RedisClient(configuration: writes, scripts: PresenceScripts.all, logger: testLogger())
        let readClient = RedisClient(configuration: reads, scripts: PresenceScripts.all, logger: testLogger())
        let app = buildApplication(client: client, readClient: readClient, options: testOptions(nodeTTL: .seconds(30)), logger: testLogger())
        try await app.test(.router) { http in
            #expect(try await http.send(.put, "/v1/nodes/rn").status == .ok)
            #expect(try await http.send(.put, "/v1/nodes/rn/sockets/rs").status == .created)
            try await eventually("the replica to have the socket") {
                try await http.send(.get, "/v1/sockets/rs", token: readToken).status == .ok
            }
            var inspectReplica = cluster.replica.configuration
            inspectReplica.requirePrimary = false
            try await withClient(inspectReplica) { (replica: RedisClient) async throws in
                #expect(try await replica.send("CLIENT", "LIST").string?.contains("name=presence-read ") == true)
            }
            try await withClient(cluster.primary) { (primary: RedisClient) async throws in
                let list = try await primary.send("CLIENT", "LIST").string ?? ""
                #expect(!list.contains("name=presence-read "))
                #expect(try await primary.send("EXISTS", "presence:r:{rs}").int == 1)
            }
        }
    }

    @Test("without tokens a non-loopback host is refused unless explicitly allowed")
    func exposure() throws {
        var options = testOptions(tokens: false)
        options.host = "0.0.0.0"
        #expect(throws: ConfigurationError.self) { try options.checkExposure() }
        options.insecureNoAuth = true
        try options.checkExposure()
        options = testOptions(tokens: true)
        options.host = "0.0.0.0"
        try options.checkExposure()
        #expect(try AccessTokens.parse(file: "# tokens\nread:r1\nwrite:w1\n\nread:r2").read == ["r1", "r2"])
        #expect(throws: ConfigurationError.self) { try AccessTokens.parse(file: "admin:x") }
        let tokens = AccessTokens(read: ["r"], write: ["w"])
        #expect(tokens.scope(of: "r") == .read && tokens.scope(of: "w") == .write && tokens.scope(of: "x") == nil && tokens.scope(of: "") == nil)
    }
}
