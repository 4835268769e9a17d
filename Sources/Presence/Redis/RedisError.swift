/// An error from the Redis client: a stable ``code`` to switch on and a message for people.
public struct RedisError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is. Extensible: new codes do not break existing `switch`es on `==`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case invalidConfiguration
            case connectionFailed
            case connectionLost
            case unavailable
            case timeout
            case replica
            case authenticationFailed
            case server
            case noScript
            case transactionAborted
            case protocolError
            case shutdown
            case noSentinel
            case unknownMaster
            case cancelled
            case notRunning
        }

        let base: Base

        /// The URL or options cannot be used.
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        /// Connecting (TCP, unix socket, AUTH, SELECT or ROLE) failed.
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection broke after the command was written: it may or may not have run.
        public static let connectionLost = Code(base: .connectionLost)
        /// The client is waiting before its next reconnect attempt; the command was not sent.
        public static let unavailable = Code(base: .unavailable)
        /// Redis did not answer within the command timeout; the connection was dropped.
        public static let timeout = Code(base: .timeout)
        /// The server is a replica (or became one): writes there would be refused or lost.
        public static let replica = Code(base: .replica)
        /// AUTH was refused.
        public static let authenticationFailed = Code(base: .authenticationFailed)
        /// Redis answered with an error reply (the message holds it).
        public static let server = Code(base: .server)
        /// A script was not in the server's cache and could not be reloaded.
        public static let noScript = Code(base: .noScript)
        /// `EXEC` returned null: a watched key changed.
        public static let transactionAborted = Code(base: .transactionAborted)
        /// The reply could not be understood.
        public static let protocolError = Code(base: .protocolError)
        /// The client is shutting down.
        public static let shutdown = Code(base: .shutdown)
        /// No sentinel answered.
        public static let noSentinel = Code(base: .noSentinel)
        /// The sentinels that answered know no primary by that name.
        public static let unknownMaster = Code(base: .unknownMaster)

        /// The calling task was cancelled before Redis answered.
        public static let cancelled = Code(base: .cancelled)
        /// The client's `run()` has not started (a call made before it fails rather than waits forever).
        public static let notRunning = Code(base: .notRunning)

        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// A message for people; for ``Code/server`` the error reply Redis sent.
    public let message: String
    /// For ``Code/replica``: the primary the replica follows, as `host:port`, when known.
    public let primary: String?
    /// Where the error was raised.
    public let file: String
    /// Where the error was raised.
    public let line: Int

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, primary: String? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.primary = primary
        self.file = file
        self.line = line
    }

    public var description: String { "Redis \(code): \(message)" }

    /// Whether the failure says nothing about the command itself, only about reaching Redis.
    public var isConnectivity: Bool {
        switch code.base {
        case .connectionFailed, .connectionLost, .unavailable, .timeout, .replica, .shutdown, .noSentinel, .unknownMaster, .notRunning: return true
        default: return false
        }
    }
}
