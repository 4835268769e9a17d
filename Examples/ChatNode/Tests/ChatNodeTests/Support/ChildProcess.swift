import Foundation
import Glibc
import Synchronization

/// A process the tests start (redis-server, chat-node) and must stop whatever happens.
///
/// Only this class reaps its child (`waitpid` on its pid, under a lock), so a pid it signals is
/// never one the kernel has handed to another process: until it is reaped here, the child, even
/// exited, still holds its pid. ``signal(_:)`` refuses once the child has been reaped.
final class ChildProcess: Sendable {
    /// Something failed starting or stopping a process; the description says what and why.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let pid: pid_t
    /// What the tests call it in messages.
    let name: String
    /// Where its standard output and error go.
    let logPath: String
    /// The raw `waitpid` status once reaped; `nil` while it may still run.
    private let reapedStatus = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (an absolute path) with its output in `logPath`.
    ///
    /// The child gets an empty signal mask and default handlers: threads of the concurrency pool
    /// block most signals and a child inherits its parent thread's mask, so it would ignore SIGTERM.
    /// - Throws: ``Failure`` when `posix_spawn` fails (a missing program, for instance).
    init(_ arguments: [String], name: String, logPath: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var child: pid_t = 0
        let result = cArguments.withUnsafeBufferPointer { argv in
            posix_spawn(&child, arguments[0], &actions, &attributes, argv.baseAddress!, environ)
        }
        guard result == 0 else {
            throw Failure(description: "cannot start \(name) (\(arguments[0])): \(String(cString: strerror(result)))")
        }
        self.pid = child
        self.name = name
        self.logPath = logPath
    }

    /// Reaps the child if it has exited. Call with the lock held.
    private static func reap(_ pid: pid_t, _ status: inout Int32?) {
        guard status == nil else { return }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
    }

    /// Sends `signal` unless the child has already been reaped; `false` when it was not sent.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        reapedStatus.withLock { status in
            Self.reap(pid, &status)
            guard status == nil else { return false }
            return kill(pid, signal) == 0
        }
    }

    /// Whether the child has exited (and is now reaped).
    var hasExited: Bool {
        reapedStatus.withLock { status in
            Self.reap(pid, &status)
            return status != nil
        }
    }

    /// How it ended, for messages: `exit 0`, `signal 9`, or `running`.
    var outcome: String {
        reapedStatus.withLock { status in
            Self.reap(pid, &status)
            guard let raw = status else { return "running" }
            let signal = raw & 0x7f
            return signal == 0 ? "exit \((raw >> 8) & 0xff)" : "signal \(signal)"
        }
    }

    /// Waits (polling every 10 ms) until the child exits; `false` if it still runs after `limit`.
    func waitForExit(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while !hasExited {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Stops the child: resumed if paused, SIGTERM, then SIGKILL after `grace`; always reaped.
    func stop(grace: Duration = .seconds(5)) async {
        signal(SIGCONT)
        signal(SIGTERM)
        if await waitForExit(within: grace) { return }
        signal(SIGKILL)
        _ = await waitForExit(within: .seconds(30))
    }

    /// The last `lines` lines of its output, for failure messages.
    func logTail(lines: Int = 20) -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "(no output)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
