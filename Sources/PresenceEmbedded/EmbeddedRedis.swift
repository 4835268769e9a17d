import Foundation
import Logging
import Presence
import ServiceLifecycle

/// A private redis-server listening only on a unix socket in a fresh temporary directory: the
/// default store of `presence serve` when no Redis URL is given. A `Service`: it stops the server
/// and removes the directory on graceful shutdown or cancellation.
public final class EmbeddedRedis: Service, Sendable {
    /// The server's unix socket.
    public let socketPath: String
    /// The client configuration that reaches it.
    public var configuration: RedisConfiguration { RedisConfiguration(endpoint: .unix(path: socketPath)) }
    private let process: RedisServerProcess
    private let directory: URL
    private let logger: Logger

    /// Starts the server and waits until it is ready.
    /// - Throws: ``RedisServerProcess/LaunchError`` (redis-server missing, or failing to start).
    public static func start(logger: Logger) async throws -> EmbeddedRedis {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("presence-redis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let socketPath = directory.appendingPathComponent("redis.sock").path
        do {
            let process = try await RedisServerProcess.launch([
                "--port", "0", "--unixsocket", socketPath, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", directory.path,
            ])
            logger.notice("started an embedded redis-server (no --redis given); its data lives only as long as this process", metadata: ["socket": "\(socketPath)", "pid": "\(process.pid)"])
            return EmbeddedRedis(process: process, socketPath: socketPath, directory: directory, logger: logger)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    private init(process: RedisServerProcess, socketPath: String, directory: URL, logger: Logger) {
        self.process = process
        self.socketPath = socketPath
        self.directory = directory
        self.logger = logger
    }

    /// Waits for graceful shutdown or cancellation, then stops the server.
    public func run() async throws {
        try? await gracefulShutdown()
        stop()
    }

    /// Stops the server and removes its directory. Idempotent: a second call signals nothing.
    public func stop() {
        guard process.stop() else { return }
        try? FileManager.default.removeItem(at: directory)
        logger.notice("embedded redis-server stopped")
    }
}
