import Foundation
import Glibc

/// Runs `redis-cli` and returns what it printed: how ``LocalRedisCluster`` asks its nodes and
/// drives `redis-cli --cluster`. Every run is bounded by a timeout (a paused node never answers).
struct RedisCLI: Sendable {
    /// The redis-cli executable.
    let executable: String

    /// What a run printed (stdout and stderr together) and how it exited.
    struct Output: Sendable {
        let status: Int32
        let text: String
    }

    /// Finds redis-cli.
    /// - Throws: ``RedisServerProcess/LaunchError`` saying how to install it.
    init() throws {
        executable = try RedisServerProcess.executable("redis-cli")
    }

    /// Runs `redis-cli -e -p <port> <arguments>` (one command to one node) and returns its reply,
    /// without the trailing newline. `-e`: an error reply (MOVED, CLUSTERDOWN…) exits 1.
    /// Blocks the calling thread for the round trip (a process start, a few milliseconds).
    /// - Throws: ``LocalRedisClusterError`` (`commandFailed` with the reply, or `timedOut`).
    func command(port: Int, _ arguments: [String], timeout: Duration = .seconds(5)) throws -> String {
        try Self.reply(of: runBlocking(["-e", "-p", String(port)] + arguments, timeout: timeout), port: port, arguments)
    }

    /// ``command(port:_:timeout:)`` on a thread of its own, so that no thread of the concurrency
    /// pool waits for redis-cli.
    func command(port: Int, _ arguments: [String], timeout: Duration = .seconds(5)) async throws -> String {
        try Self.reply(of: await run(["-e", "-p", String(port)] + arguments, timeout: timeout), port: port, arguments)
    }

    private static func reply(of output: Output, port: Int, _ arguments: [String]) throws -> String {
        var text = output.text
        while text.last?.isNewline == true { text.removeLast() }
        guard output.status == 0 else {
            throw LocalRedisClusterError(.commandFailed, "redis-cli -p \(port) \(arguments.joined(separator: " ")) failed (exit \(output.status)): \(text)")
        }
        return text
    }

    /// ``runBlocking(_:timeout:)`` on a thread of its own. Not cancellable: the timeout bounds it.
    func run(_ arguments: [String], timeout: Duration) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try self.runBlocking(arguments, timeout: timeout) }) }
            thread.name = "redis-cli"
            thread.start()
        }
    }

    /// Runs redis-cli with `arguments`, reads all it prints, and waits for its exit.
    /// - Throws: ``LocalRedisClusterError`` `timedOut` (the child is killed) with what it printed
    ///   so far; ``RedisServerProcess/LaunchError`` when it cannot be started.
    func runBlocking(_ arguments: [String], timeout: Duration) throws -> Output {
        let pipe = try Spawn.outputPipe()
        let child: SpawnedProcess
        do {
            child = try Spawn.process([executable] + arguments, output: .pipe(read: pipe.read, write: pipe.write))
        } catch {
            close(pipe.read)
            close(pipe.write)
            throw error
        }
        close(pipe.write)
        defer { close(pipe.read) }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let left = clock.now.duration(to: deadline)
            guard left > .zero else {
                child.signal(SIGKILL)
                child.waitForExit()
                let text = String(decoding: output, as: UTF8.self)
                throw LocalRedisClusterError(.timedOut, "redis-cli \(arguments.joined(separator: " ")) did not finish within \(timeout); it printed: \(text)")
            }
            var descriptor = pollfd(fd: pipe.read, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }  // timed out: the deadline check above ends it
            let count = read(pipe.read, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }  // end of output: redis-cli closed it on exit
            output += buffer[0..<count]
        }
        let status = child.waitForExit()
        return Output(status: status, text: String(decoding: output, as: UTF8.self))
    }
}
