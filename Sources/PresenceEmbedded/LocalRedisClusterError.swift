/// An error of ``LocalRedisCluster``: what went wrong, in words that say what was waited for or
/// what a command printed. Match on ``code`` (`error.code == .timedOut`); new codes may be added.
public struct LocalRedisClusterError: Error, CustomStringConvertible, Sendable {
    /// The kind of error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidArgument, unknownPort, notFound, noRunningNode, commandFailed, timedOut, stopped, startFailed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// An argument out of range (fewer than 3 primaries, a slot outside 0…16383).
        public static var invalidArgument: Code { Code(.invalidArgument) }
        /// The port is not one of the cluster's nodes, or no node knows it.
        public static var unknownPort: Code { Code(.unknownPort) }
        /// What was asked for does not exist now (no primary owns the slot).
        public static var notFound: Code { Code(.notFound) }
        /// Every node is killed or paused: there is nobody to ask.
        public static var noRunningNode: Code { Code(.noRunningNode) }
        /// redis-cli failed or answered with an error; the message holds its output.
        public static var commandFailed: Code { Code(.commandFailed) }
        /// A wait did not end in time; the message names what it waited for and what was last seen.
        public static var timedOut: Code { Code(.timedOut) }
        /// The cluster was stopped.
        public static var stopped: Code { Code(.stopped) }
        /// A node could not be started (its port taken, redis-server failing).
        public static var startFailed: Code { Code(.startFailed) }

        /// The code's name (`timedOut`).
        public var description: String { base.rawValue }
    }

    /// The kind of error.
    public let code: Code
    /// What happened.
    public let message: String
    /// The file it was thrown from (`#fileID`).
    public let file: String
    /// The line it was thrown from.
    public let line: Int

    init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    /// The message.
    public var description: String { message }
}
