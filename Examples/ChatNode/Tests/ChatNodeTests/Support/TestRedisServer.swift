import Foundation
import Glibc

/// A private `redis-server` on a free loopback port, without persistence, for one test: started
/// by ``with(_:)``, ready once it answers PING, stopped (and reaped) when the test ends.
struct TestRedisServer: Sendable {
    let port: Int
    let process: ChildProcess

    /// `redis://127.0.0.1:PORT`.
    var url: String { "redis://127.0.0.1:\(port)" }

    /// Runs `body` with a fresh server, then stops it whatever `body` did.
    /// - Throws: ``ChildProcess/Failure`` when redis-server is not installed (never a skip: the
    ///   example's forwarding is untested without it) or does not answer PING in time.
    static func with<T: Sendable>(in directory: TestDirectory, _ body: (TestRedisServer) async throws -> T) async throws -> T {
        let server = try await start(in: directory)
        do {
            let result = try await body(server)
            await server.process.stop()
            return result
        } catch {
            await server.process.stop()
            throw error
        }
    }

    static func start(in directory: TestDirectory) async throws -> TestRedisServer {
        let executable = try Self.executable()
        let port = try FreePort.next()
        let process = try ChildProcess(
            [executable, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory.path, "--daemonize", "no"],
            name: "redis-server", logPath: directory.file("redis-\(port).log"))
        let server = TestRedisServer(port: port, process: process)
        let deadline = ContinuousClock.now + .seconds(20)
        while !Self.ping(port: port) {
            if process.hasExited || ContinuousClock.now >= deadline {
                await process.stop()
                throw ChildProcess.Failure(description: "redis-server on port \(port) did not answer PING (\(process.outcome)):\n\(process.logTail())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return server
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered.
    func pause() { process.signal(SIGSTOP) }

    /// Lets a paused server run again (SIGCONT).
    func resume() { process.signal(SIGCONT) }

    /// `redis-server` from PATH, /usr/bin or /usr/sbin.
    static func executable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin"] {
            let candidate = directory + "/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ChildProcess.Failure(description: """
            redis-server is not installed, and these tests need a real one: run scripts/install-deps \
            (or `sudo apt-get install -y redis-server`) at the repository root
            """)
    }

    /// Whether a server on 127.0.0.1:`port` answers `PING` with `+PONG` within a second.
    static func ping(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return false }
        let request = Array("PING\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var reply = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 64)
        while reply.count < 7 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return false }
            reply += buffer[0..<count]
        }
        return reply.starts(with: Array("+PONG\r\n".utf8))
    }
}
