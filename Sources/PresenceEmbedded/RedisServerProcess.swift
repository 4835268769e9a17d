import Foundation
import Glibc

/// A `redis-server` child process: started with the given arguments, ready once it says so, and
/// stopped (SIGTERM, then reaped) by ``stop()``. Used for the embedded default of `presence serve`
/// and by the tests, which start their own servers. Signals go through ``SpawnedProcess``, so none
/// reaches the pid once the server was reaped (a second `stop()`, a `deinit` after `stop()`).
public final class RedisServerProcess: Sendable {
    /// The child's process id (for logs; signal it with ``signal(_:)``).
    public var pid: pid_t { process.pid }
    /// Whether the server has not been reaped yet.
    public var isRunning: Bool { process.isRunning }
    private let process: SpawnedProcess
    /// What redis-server printed until it was ready.
    public let startupLog: String

    /// An error starting redis-server, with what to do about it.
    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Finds `redis-server` on PATH (or /usr/bin, /usr/sbin).
    /// - Throws: ``LaunchError`` saying how to install it.
    public static func executable(_ name: String = "redis-server") throws -> String {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin"]
        for directory in paths where FileManager.default.isExecutableFile(atPath: directory + "/" + name) {
            return directory + "/" + name
        }
        throw LaunchError(description: "\(name) is not installed. Install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu), or pass --redis URL to use an existing Redis.")
    }

    /// Starts redis-server with `arguments` (logging to stdout) and waits until its output shows
    /// `readyMarker` (by default, that it accepts connections), reading it rather than polling.
    /// - Throws: ``LaunchError`` with its output when it exits before being ready.
    /// - Parameter server: the server binary (`redis-server` on PATH by default; a `valkey-server`
    ///   path works too).
    public static func launch(_ arguments: [String], readyMarker: String = "eady to accept connections", server: String? = nil) async throws -> RedisServerProcess {
        let argv = [try server ?? executable()] + arguments + ["--daemonize", "no", "--logfile", ""]
        let output = try Spawn.outputPipe()
        let child: SpawnedProcess
        do {
            child = try Spawn.process(argv, output: .pipe(read: output.read, write: output.write))
        } catch {
            close(output.read)
            close(output.write)
            throw error
        }
        close(output.write)
        let (ready, log) = await waitForReady(output.read, marker: readyMarker)
        let process = RedisServerProcess(process: child, startupLog: log)
        guard ready else {
            process.stop()
            throw LaunchError(description: "redis-server exited before it was ready:\n\(log)")
        }
        return process
    }

    private init(process: SpawnedProcess, startupLog: String) {
        self.process = process
        self.startupLog = startupLog
    }

    /// Reads the output until it says it accepts connections (or ends), then keeps draining it
    /// on the same thread until the server exits, so that it never blocks on a full pipe.
    private static func waitForReady(_ fd: Int32, marker: String) async -> (Bool, String) {
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
                        // "Ready to accept…" (TCP) or "…now ready to accept…" (unix socket only).
                        if log.contains(marker) {
                            resumed = true
                            continuation.resume(returning: (true, log))
                        }
                    }
                }
                close(fd)
                if !resumed { continuation.resume(returning: (false, log)) }
            }
            thread.name = "redis-server-output"
            thread.start()
        }
    }

    /// Sends SIGTERM (and SIGCONT, in case it was stopped) and waits for the exit (SIGKILL after
    /// 10 s). Idempotent: once the server was reaped, nothing is signalled.
    /// - Returns: whether this call found the server unreaped.
    @discardableResult
    public func stop() -> Bool {
        process.stop()
    }

    /// Sends a signal unless the server was reaped; after SIGKILL, waits for the exit.
    /// - Returns: whether the signal was sent.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        let sent = process.signal(signal)
        if signal == SIGKILL { process.waitForExit() }
        return sent
    }
}
