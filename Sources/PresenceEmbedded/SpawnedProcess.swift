import Foundation
import Glibc
import Synchronization

/// A child process this process started (``Spawn/process(_:environment:output:)``), and what is
/// known of it: running, or reaped.
///
/// A pid names a process only until its parent reaps it (`waitpid`): after that the kernel may give
/// the number to any new process, and `kill(pid, …)` would signal a stranger. So this type signals
/// only while the child is known not to have been reaped, and reaps it under the same lock. It waits
/// for the exit without reaping (`waitid(…, WNOWAIT)`), then reaps under the lock: an exited child
/// stays a zombie until then, and a zombie's pid cannot be reused, so a signal sent while the state
/// says "running" always reaches this child (or its zombie, which ignores it).
///
/// Nothing else in the process may reap the child (no `waitpid(-1, …)`, no reaping SIGCHLD handler);
/// if something does, the state turns to reaped with an unknown status (`-1`) on the next wait.
///
/// A child still running when the last reference goes is stopped (see ``stop(gracePeriod:)``), so
/// that no child outlives its owner unnoticed and none is left a zombie; that blocks the thread
/// that drops the reference until the child exits.
public final class SpawnedProcess: Sendable {
    /// The child's process id. Use ``signal(_:)`` rather than `kill(pid, …)`: the pid may belong to
    /// another process once the child was reaped.
    public let pid: pid_t
    private let state = Mutex(State.running)

    private enum State {
        case running
        /// Waited for: the pid is no longer ours. The status is shell-style (see ``waitForExit()``).
        case reaped(status: Int32)
    }

    init(pid: pid_t) {
        self.pid = pid
    }

    /// Whether the child has not been reaped yet. It may have exited already (a zombie until a wait
    /// or ``hasExited()`` reaps it).
    public var isRunning: Bool {
        state.withLock { if case .running = $0 { true } else { false } }
    }

    /// The shell-style exit status once reaped (see ``waitForExit()``), else `nil`.
    public var exitStatus: Int32? {
        state.withLock { if case .reaped(let status) = $0 { status } else { nil } }
    }

    /// Sends `signal` if the child has not been reaped; a reaped child's pid is never signalled.
    /// - Returns: whether the signal was sent.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        state.withLock { state in
            guard case .running = state else { return false }
            return kill(pid, signal) == 0
        }
    }

    /// Blocks until the child exits and reaps it; at once when it was reaped already. Safe to call
    /// from several threads at once: each gets the same status.
    /// - Returns: the exit code, `128 + n` when signal `n` ended it (as a shell reports it), or
    ///   `-1` when something else in this process reaped it.
    @discardableResult
    public func waitForExit() -> Int32 {
        if let status = exitStatus { return status }
        var info = siginfo_t()
        // WNOWAIT: the child stays waitable (a zombie), so its pid stays ours until reap() holds the lock.
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        return reap()
    }

    /// ``waitForExit()`` on a thread of its own, so that no thread of the concurrency pool blocks.
    public func exited() async -> Int32 {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: self.waitForExit()) }
            thread.name = "wait-\(pid)"
            thread.start()
        }
    }

    /// Whether the child has exited, without blocking; reaps it if so.
    public func hasExited() -> Bool {
        if exitStatus != nil { return true }
        var info = siginfo_t()
        var result: Int32
        repeat { result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) } while result == -1 && errno == EINTR
        if result == 0 && info.si_signo == 0 { return false }  // not exited yet
        reap()  // exited (a zombie now), or reaped by something else (ECHILD): waitpid returns at once
        return true
    }

    /// Sends SIGTERM (and SIGCONT, in case it was stopped), waits up to `gracePeriod` for the exit,
    /// then sends SIGKILL, and reaps the child. Idempotent: once reaped, it does nothing.
    /// - Returns: whether the child was still unreaped when called.
    @discardableResult
    public func stop(gracePeriod: Duration = .seconds(10)) -> Bool {
        let unreaped = state.withLock { state -> Bool in
            guard case .running = state else { return false }
            if kill(pid, SIGTERM) == 0 { kill(pid, SIGCONT) }
            return true
        }
        guard unreaped else { return false }
        let clock = ContinuousClock()
        let deadline = clock.now + gracePeriod
        while !hasExited() {
            if clock.now >= deadline {
                signal(SIGKILL)
                waitForExit()
                break
            }
            usleep(5_000)
        }
        return true
    }

    /// Reaps the child, which has exited (or was reaped elsewhere), under the lock that signals take.
    @discardableResult
    private func reap() -> Int32 {
        state.withLock { state in
            if case .reaped(let status) = state { return status }
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result == -1 && errno == EINTR
            let code = result == pid ? Self.shellStatus(status) : -1
            state = .reaped(status: code)
            return code
        }
    }

    /// A `waitpid` status as a shell reports it: the exit code, or 128 + the signal that ended it.
    static func shellStatus(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit {
        stop()
    }
}
