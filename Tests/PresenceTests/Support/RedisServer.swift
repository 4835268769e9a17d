import Foundation
import Glibc
import Presence

/// A private redis-server process on a free loopback port (and a unix socket), started for one
/// test and stopped by it. Fails with a clear message when redis-server is not installed.
final class RedisServer: Sendable {
    let port: Int
    let directory: URL
    let arguments: [String]
    let pid: pid_t

    var url: String { "redis://127.0.0.1:\(port)" }
    var socketPath: String { directory.appendingPathComponent("redis.sock").path }
    var configuration: RedisConfiguration { RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)) }

    struct StartError: Error, CustomStringConvertible {
        let description: String
    }

    /// Finds an executable on PATH or in /usr/bin, or fails saying how to install it.
    static func executable(_ name: String = "redis-server") throws -> String {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin"]
        for directory in paths {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw StartError(description: "\(name) is not installed: these tests need a real Redis. Install it with `sudo apt-get install -y redis-server` (scripts/test does this for you).")
    }

    /// Starts a server; `port` reuses a port (to restart a stopped server at the same address).
    static func start(_ extraArguments: [String] = [], port: Int? = nil, directory: URL? = nil) async throws -> RedisServer {
        var lastError: (any Error)?
        for _ in 0..<5 {
            let chosen = try port ?? freePort()
            do {
                return try await RedisServer(port: chosen, extraArguments: extraArguments, directory: directory)
            } catch {
                lastError = error
                if port != nil { break }
            }
        }
        throw lastError!
    }

    private init(port: Int, extraArguments: [String], directory: URL?) async throws {
        self.port = port
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("presence-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.arguments = extraArguments
        let argv = [try Self.executable(),
            "--port", String(port), "--bind", "127.0.0.1", "--unixsocket", directory.appendingPathComponent("redis.sock").path,
            "--save", "", "--appendonly", "no", "--dir", directory.path, "--daemonize", "no", "--logfile", "",
        ] + extraArguments
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw StartError(description: "pipe() failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        // Worker threads block most signals and a spawned child inherits that mask: clear it, or
        // redis-server would ignore SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, argv[0], &actions, &attributes, &cArguments, environ)
        close(pipeFDs[1])
        guard spawned == 0 else {
            close(pipeFDs[0])
            throw StartError(description: "cannot start redis-server: \(String(cString: strerror(spawned)))")
        }
        self.pid = child
        // Wait for the server to say it is ready: an event, not a sleep.
        let (ready, log) = await Self.waitForReady(pipeFDs[0])
        guard ready else {
            stop()
            throw StartError(description: "redis-server on port \(port) did not start:\n\(log)")
        }
    }

    /// Reads the server's output until it is ready (or exits); then keeps draining it on the same
    /// thread until the server exits, so it never blocks on a full pipe.
    private static func waitForReady(_ fd: Int32) async -> (Bool, String) {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var log = ""
                var resumed = false
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = read(fd, &buffer, buffer.count)
                    if count <= 0 { break }
                    if !resumed {
                        log += String(decoding: buffer[0..<count], as: UTF8.self)
                        if log.contains("Ready to accept connections") {
                            resumed = true
                            continuation.resume(returning: (true, log))
                        }
                    }
                }
                close(fd)
                if !resumed { continuation.resume(returning: (false, log)) }
            }
            thread.start()
        }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw StartError(description: "bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    func stop() {
        if kill(pid, SIGTERM) == 0 { kill(pid, SIGCONT) }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    /// Sends a signal (SIGKILL, SIGSTOP, SIGCONT); waits for the exit after SIGKILL.
    func signal(_ signal: Int32) {
        kill(pid, signal)
        if signal == SIGKILL {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
