import Logging

/// Logging for the whole test process: warnings and worse, so that a failing test's output shows
/// what went wrong (Redis unreachable, a node that could not write) without every node's info lines.
enum TestLogging {
    /// Bootstraps `LoggingSystem` once per process (a second bootstrap would trap).
    static let bootstrapped: Void = LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
}
