import Glibc
import Synchronization

/// Starts child processes the way presence needs: with a clean signal mask (threads of the
/// concurrency pool block most signals and a child inherits that mask, so it would ignore
/// SIGTERM), default signal handlers, and its output sent to a descriptor or a file.
public enum Spawn {
    /// Where the child's standard output and error go.
    public enum Output: Sendable {
        /// A pipe: `write` becomes the child's stdout and stderr, `read` is closed in the child.
        case pipe(read: Int32, write: Int32)
        /// A file, created or truncated.
        case file(String)
    }

    /// Held while a child is spawned and while a new pipe is made close-on-exec, so that no child
    /// started by another thread inherits a pipe in between (Glibc's overlay has no `pipe2`). A
    /// child holding another child's write end would keep that pipe open: its reader would never
    /// see the end of the output (a redis-server exiting before ready, a finished redis-cli).
    private static let lock = Mutex(())

    /// A pipe for ``Output/pipe(read:write:)``, both ends close-on-exec: only the child it is given
    /// to gets the write end (as its stdout and stderr), no other child started meanwhile.
    /// - Throws: ``RedisServerProcess/LaunchError`` when `pipe()` fails.
    public static func outputPipe() throws -> (read: Int32, write: Int32) {
        try lock.withLock { _ in
            var fds: [Int32] = [0, 0]
            guard Glibc.pipe(&fds) == 0 else {
                throw RedisServerProcess.LaunchError(description: "pipe() failed: \(String(cString: strerror(errno)))")
            }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            return (fds[0], fds[1])
        }
    }

    /// Starts `arguments[0]` (an absolute path) with `arguments`.
    /// - Parameter environment: `nil` inherits this process's environment.
    /// - Returns: the child, to signal and wait for through its state (never by its bare pid).
    /// - Throws: ``RedisServerProcess/LaunchError`` naming the program and the reason.
    public static func process(_ arguments: [String], environment: [String: String]? = nil, output: Output) throws -> SpawnedProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch output {
        case .pipe(let read, let write):
            posix_spawn_file_actions_adddup2(&actions, write, 1)
            posix_spawn_file_actions_adddup2(&actions, write, 2)
            posix_spawn_file_actions_addclose(&actions, read)
        case .file(let path):
            posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
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
        let cEnvironment = environment.map { $0.map { strdup("\($0)=\($1)") } + [nil] }
        defer { for entry in cEnvironment ?? [] { free(entry) } }
        var child: pid_t = 0
        let result = lock.withLock { _ in cArguments.withUnsafeBufferPointer { argv in
            if let cEnvironment {
                return cEnvironment.withUnsafeBufferPointer { envp in
                    posix_spawn(&child, arguments[0], &actions, &attributes, argv.baseAddress!, envp.baseAddress!)
                }
            }
            return posix_spawn(&child, arguments[0], &actions, &attributes, argv.baseAddress!, environ)
        } }
        guard result == 0 else {
            throw RedisServerProcess.LaunchError(description: "cannot start \(arguments[0]): \(String(cString: strerror(result)))")
        }
        return SpawnedProcess(pid: child)
    }
}
