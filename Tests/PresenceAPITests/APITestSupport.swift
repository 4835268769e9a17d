import Foundation
import Glibc
import Hummingbird
import HummingbirdTesting
import Logging
import Presence
import PresenceEmbedded
import PresenceTestSupport
import Testing
@testable import PresenceAPI

let readToken = "read-secret"
let writeToken = "write-secret"

/// Server options for tests: fast expiry and both tokens.
func testOptions(tokens: Bool = true, nodeTTL: Duration = .seconds(1)) -> ServeOptions {
    var options = ServeOptions()
    options.port = 0
    options.presence = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: nodeTTL)
    if tokens { options.tokens = AccessTokens(read: [readToken], write: [writeToken]) }
    return options
}

func testLogger() -> Logger { quietLogger("test.api") }

/// Runs `body` against the router of a real application backed by `server`.
func withAPI(_ server: RedisServer, options: ServeOptions = testOptions(), _ body: @escaping @Sendable (any TestClientProtocol, RedisClient) async throws -> Void) async throws {
    let client = RedisClient(configuration: server.configuration, scripts: PresenceScripts.all, logger: testLogger())
    let app = buildApplication(client: client, options: options, logger: testLogger())
    try await app.test(.router) { http in try await body(http, client) }
}

/// Runs `body` against a live server (a real socket on a free loopback port) backed by `server`;
/// `body` gets the port, for requests written byte for byte (``RawHTTPResponse``).
func withLiveAPI(_ server: RedisServer, options: ServeOptions = testOptions(), _ body: @escaping @Sendable (Int, RedisClient) async throws -> Void) async throws {
    let client = RedisClient(configuration: server.configuration, scripts: PresenceScripts.all, logger: testLogger())
    let app = buildApplication(client: client, options: options, logger: testLogger())
    try await app.test(.live) { http in
        let port = try #require(http.port)
        try await body(port, client)
    }
}

extension TestClientProtocol {
    /// Sends a request with an optional bearer token and JSON body.
    func send(_ method: HTTPRequest.Method, _ uri: String, token: String? = writeToken, json: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) }) { $0 }
    }
}

extension TestResponse {
    /// The body as a JSON object.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]) ?? [:]
    }

    /// The error code of an error body.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

/// A child process with its output in a file; SIGTERM-able and awaitable. Signals go through
/// ``SpawnedProcess``: none reaches the pid once `wait()` reaped it. Stopped (SIGTERM, then reaped)
/// when the test lets go of it, if it is still running.
final class ChildProcess: Sendable {
    let process: SpawnedProcess
    let outputPath: String

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString.prefix(8)).log").path
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PRESENCE_") }
        for (key, value) in environment { env[key] = value }
        process = try Spawn.process(arguments, environment: env, output: .file(outputPath))
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits for the exit (on a thread, not blocking the pool), reaps the child and returns its
    /// status: the exit code, or 128 + the signal that ended it.
    func wait() async -> Int32 { await process.exited() }

    /// Sends a signal unless the child was reaped.
    func signal(_ signal: Int32) { process.signal(signal) }

    /// Waits until the output holds `text`. Fails at once, with the output, if the child exits
    /// first, and with the output after `timeout`.
    func waitForOutput(_ text: String, timeout: Duration = .seconds(20)) async throws {
        struct Failure: Error, CustomStringConvertible { let description: String }
        let clock = ContinuousClock()
        let start = clock.now
        while !output.contains(text) {
            if process.hasExited() {
                if output.contains(text) { return }
                throw Failure(description: "the child exited before printing '\(text)'; its output:\n\(output.suffix(2000))")
            }
            if clock.now - start > timeout {
                throw Failure(description: "no '\(text)' after \(timeout); the child's output:\n\(output.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `presence serve --port 0` logs the port it got: waits for that line and returns the port.
    func listeningPort() async throws -> Int {
        try await waitForOutput("presence serve is listening")
        let line = output.split(separator: "\n").first { $0.contains("presence serve is listening") } ?? ""
        guard let range = line.range(of: "127.0.0.1:"), let port = Int(line[range.upperBound...].prefix { $0.isNumber }) else {
            struct Failure: Error, CustomStringConvertible { let description: String }
            throw Failure(description: "no port in the listening line: \(line)")
        }
        return port
    }

    /// The embedded redis-server's socket path, from `socket=` in the output ("" when none).
    var embeddedSocketPath: String {
        guard let range = output.range(of: "socket=") else { return "" }
        return String(output[range.upperBound...].prefix { !$0.isWhitespace })
    }

    deinit {
        process.stop()
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

/// The `presence` executable built next to the test bundle.
func presenceBinary() throws -> String {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("presence").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw RedisServer.StartError(description: "the presence executable was not found next to the tests; run `swift build` first (scripts/test does)")
}
