import Foundation
import Glibc
import PresenceEmbedded

/// A process the tests start (redis-server, chat-node) and must stop whatever happens, over
/// `PresenceEmbedded`'s `SpawnedProcess`: a pid is signalled only while its child has not been
/// reaped, so a signal never reaches a process the kernel gave that pid to afterwards.
final class ChildProcess: Sendable {
    /// Something failed starting or stopping a process; the description says what and why.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let process: SpawnedProcess
    /// What the tests call it in messages.
    let name: String
    /// Where its standard output and error go.
    let logPath: String

    /// Starts `arguments[0]` (an absolute path) with its output in `logPath`, with a clean signal
    /// mask and default handlers.
    /// - Throws: ``Failure`` when the program cannot be started (a missing program, for instance).
    init(_ arguments: [String], name: String, logPath: String) throws {
        do {
            process = try Spawn.process(arguments, output: .file(logPath))
        } catch {
            throw Failure(description: "cannot start \(name) (\(arguments[0])): \(error)")
        }
        self.name = name
        self.logPath = logPath
    }

    /// Sends `signal` unless the child has already been reaped; `false` when it was not sent.
    @discardableResult
    func signal(_ signal: Int32) -> Bool { process.signal(signal) }

    /// Whether the child has exited (and is now reaped).
    var hasExited: Bool { process.hasExited() }

    /// How it ended, for messages: `exit 0`, `signal 9`, or `running`.
    var outcome: String {
        guard process.hasExited(), let status = process.exitStatus else { return "running" }
        return status >= 128 ? "signal \(status - 128)" : "exit \(status)"
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
