import Foundation
import Glibc
import Presence
import PresenceEmbedded

/// A private redis-server process on a free loopback port (and a unix socket), started for one
/// test and stopped by it. Fails with a clear message when redis-server is not installed.
public final class RedisServer: Sendable {
    public let port: Int
    public let directory: URL
    public let arguments: [String]
    private let process: RedisServerProcess

    public var url: String { "redis://127.0.0.1:\(port)" }
    public var socketPath: String { directory.appendingPathComponent("redis.sock").path }
    public var configuration: RedisConfiguration { RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)) }

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }


    /// Which server implementation a test runs: Redis 7.0 (`redis-server` from apt) or Valkey 9
    /// (`valkeyServer()`). Tests that need one server, or a primary and replica under Sentinel,
    /// take it as an argument and run on each; a Redis Cluster has suites of its own.
    public enum Kind: String, Sendable, CaseIterable, CustomStringConvertible {
        case redis
        case valkey

        public var description: String { rawValue }

        /// The binary to start, for `start(server:)` and `RedisServerProcess.launch(server:)`: nil
        /// for redis-server found the usual way. The same binary runs as a sentinel (`--sentinel`).
        /// - Throws: for Valkey when its server is not installed, saying how to install it.
        public func binary() throws -> String? {
            switch self {
            case .redis: nil
            case .valkey: try valkeyServer()
            }
        }
    }

    /// Starts a server of `kind`; `port` reuses a port (to restart a stopped server at the same address).
    public static func start(_ kind: Kind, _ extraArguments: [String] = [], port: Int? = nil) async throws -> RedisServer {
        try await start(extraArguments, port: port, server: try kind.binary())
    }

    /// Starts a server; `port` reuses a port (to restart a stopped server at the same address).
    public static func start(_ extraArguments: [String] = [], port: Int? = nil, directory: URL? = nil, server: String? = nil) async throws -> RedisServer {
        var lastError: (any Error)?
        for _ in 0..<5 {
            let chosen = try port ?? freePort()
            do {
                return try await RedisServer(port: chosen, extraArguments: extraArguments, directory: directory, server: server)
            } catch {
                lastError = error
                if port != nil { break }
            }
        }
        throw lastError!
    }

    private init(port: Int, extraArguments: [String], directory: URL?, server: String?) async throws {
        self.port = port
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("presence-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.arguments = extraArguments
        // SIGTERM stops it at once (`shutdown-on-sigterm now`): a primary would otherwise wait up to
        // 10 s for a lagging or paused replica, and `stop()` (from `deinit`, on a test's thread)
        // waits for the exit.
        process = try await RedisServerProcess.launch([
            "--port", String(port), "--bind", "127.0.0.1", "--unixsocket", directory.appendingPathComponent("redis.sock").path,
            "--save", "", "--appendonly", "no", "--dir", directory.path, "--shutdown-on-sigterm", "now",
        ] + extraArguments, server: server)
    }

    public static func freePort() throws -> Int {
        let (fd, port) = try bind(port: 0)
        close(fd)
        return port
    }

    /// A free loopback port below the kernel's ephemeral range (so that no outgoing connection
    /// takes it as its local port), kept bound but not listening until
    /// ``PortReservation/release()``: connections to it are refused, and no other process can
    /// take it meanwhile.
    public static func reservePort() throws -> PortReservation {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        for _ in 0..<100 {
            if let (fd, port) = try? bind(port: Int.random(in: 10_000..<max(range, 10_001))) { return PortReservation(fd: fd, port: port) }
        }
        throw StartError(description: "no free loopback port below \(range) in 100 tries")
    }

    private static func bind(port: Int) throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            close(fd)
            throw StartError(description: "bind() failed")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port held by ``reservePort()``.
    public final class PortReservation: Sendable {
        private let fd: Int32
        /// The port.
        public let port: Int

        init(fd: Int32, port: Int) {
            self.fd = fd
            self.port = port
        }

        /// Frees the port (once).
        public func release() { close(fd) }
    }

    /// Whether the server process has not been reaped yet (`stop()` and SIGKILL reap it).
    public var isRunning: Bool { process.isRunning }

    /// Stops the server with SIGTERM and waits for it to exit. Idempotent: once reaped, its pid is
    /// never signalled again (`deinit` calls this after a test's own `stop()`).
    public func stop() { process.stop() }

    /// Sends a signal (SIGKILL, SIGSTOP, SIGCONT) unless the server was reaped; waits for the exit
    /// after SIGKILL.
    public func signal(_ signal: Int32) { process.signal(signal) }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
