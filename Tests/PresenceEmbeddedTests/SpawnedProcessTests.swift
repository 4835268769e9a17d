import Foundation
import Glibc
import PresenceEmbedded
import PresenceTestSupport
import Testing

/// A pid belongs to a child only until the child is reaped; after that the kernel may hand the
/// number to any new process. These tests check the state every process helper keeps so that a
/// reaped pid is never signalled: what `stop()` twice, `deinit` after `stop()`, or a kill after a
/// wait used to do.
@Suite("Child processes: signalled only until reaped")
struct SpawnedProcessTests {
    private func sleeper() throws -> SpawnedProcess {
        try Spawn.process(["/bin/sleep", "30"], output: .file("/dev/null"))
    }

    @Test("stop() signals and reaps; a second stop() and any later signal send nothing")
    func stopTwice() throws {
        let child = try sleeper()
        #expect(child.isRunning && child.exitStatus == nil)
        #expect(child.signal(0))  // alive and ours: the null signal is delivered
        #expect(child.stop())
        #expect(!child.isRunning)
        #expect(child.exitStatus == 128 + SIGTERM)
        // Reaped: the pid may be another process's now. Nothing is sent (this is what deinit runs).
        #expect(!child.stop())
        #expect(!child.signal(SIGKILL))
        #expect(!child.signal(0))
        #expect(child.waitForExit() == 128 + SIGTERM)
    }

    @Test("a child that exited by itself and was waited for is never signalled afterwards")
    func exitedThenSignalled() async throws {
        let child = try Spawn.process(["/bin/sh", "-c", "exit 3"], output: .file("/dev/null"))
        #expect(await child.exited() == 3)
        #expect(!child.isRunning)
        #expect(!child.signal(SIGTERM))
        #expect(!child.stop())
        #expect(child.exitStatus == 3)
    }

    @Test("an exited child stays ours until reaped: hasExited() reaps it, then nothing is signalled")
    func zombieThenReaped() async throws {
        let child = try Spawn.process(["/bin/true"], output: .file("/dev/null"))
        // Wait for the exit without reaping: the zombie keeps the pid, so signalling it is still safe.
        var info = siginfo_t()
        #expect(waitid(P_PID, id_t(child.pid), &info, WEXITED | WNOWAIT) == 0)
        #expect(child.isRunning)
        #expect(child.signal(0))
        #expect(child.hasExited())
        #expect(!child.isRunning && child.exitStatus == 0)
        #expect(!child.signal(0))
    }

    @Test("dropping the last reference to a running child stops and reaps it")
    func deinitStops() throws {
        var child: SpawnedProcess? = try sleeper()
        let pid = child!.pid
        child = nil
        // deinit reaped it: this process has no such child any more. (A check, not a reap: WNOWAIT.)
        var info = siginfo_t()
        #expect(waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD)
    }

    @Test("concurrent waits and a stop agree on one status, and the child is reaped once")
    func concurrentWaits() async throws {
        let child = try sleeper()
        async let first = child.exited()
        async let second = child.exited()
        try await Task.sleep(for: .milliseconds(50))
        #expect(child.stop())
        #expect(await [first, second] == [128 + SIGTERM, 128 + SIGTERM])
        #expect(!child.stop())
    }

    @Test("a child that ignores SIGTERM is killed after the grace period")
    func stubbornChild() async throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("stubborn-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try Spawn.process(["/bin/sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done"], output: .file(output))
        try await eventually("the shell to ignore SIGTERM") { (try? String(contentsOfFile: output, encoding: .utf8))?.contains("trapped") == true }
        #expect(child.stop(gracePeriod: .milliseconds(300)))
        #expect(child.exitStatus == 128 + SIGKILL)
    }

    @Test("a redis-server stopped twice, then sent SIGKILL, is signalled only by the first stop")
    func redisServerProcess() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("presence-spawn-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await RedisServerProcess.launch([
            "--port", "0", "--unixsocket", directory.appendingPathComponent("redis.sock").path,
            "--save", "", "--appendonly", "no", "--dir", directory.path,
        ])
        #expect(server.isRunning)
        #expect(server.stop())
        #expect(!server.isRunning)
        #expect(!server.stop())
        #expect(!server.signal(SIGKILL))
    }

    @Test("the test servers: stop(), then deinit, then SIGKILL on a stopped one send nothing")
    func testServer() async throws {
        var server: RedisServer? = try await RedisServer.start()
        server!.stop()
        #expect(server!.isRunning == false)
        server!.signal(SIGKILL)  // a no-op now; it used to kill(2) the old pid and waitpid it again
        #expect(server!.isRunning == false)
        server = nil  // deinit runs stop() again: nothing is signalled
    }

    @Test("the embedded server stops and removes its directory; a second stop() does nothing")
    func embeddedRedisStopsOnce() async throws {
        let embedded = try await EmbeddedRedis.start(logger: quietLogger())
        #expect(FileManager.default.fileExists(atPath: embedded.socketPath))
        embedded.stop()
        #expect(!FileManager.default.fileExists(atPath: embedded.socketPath))
        embedded.stop()
    }
}
