/// An error from the presence layer: bad input refused before Redis is touched, or data in Redis
/// that does not have the documented shape. Redis failures are thrown as ``RedisError``.
public struct PresenceError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case invalidID
            case invalidMeta
            case invalidConfiguration
            case corruptData
            case notRunning
            case changesTrimmed
            case nodeLeaving
        }

        let base: Base

        /// An id (node, socket, user, incarnation) or address breaks the id rules.
        public static let invalidID = Code(base: .invalidID)
        /// A meta map is too large or holds a bad key or value.
        public static let invalidMeta = Code(base: .invalidMeta)
        /// A configuration value is out of range.
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        /// Redis holds data that does not follow the documented layout.
        public static let corruptData = Code(base: .corruptData)
        /// The node is not running or could not reach Redis.
        public static let notRunning = Code(base: .notRunning)
        /// Changes after the position asked for were trimmed (older than the retention): reading
        /// from it would skip them. ``PresenceRegistry/oldestChangePosition()`` says where to resume.
        public static let changesTrimmed = Code(base: .changesTrimmed)
        /// The node registers again with an incarnation whose sockets a watcher is still
        /// disconnecting (it left, or was announced down): the same heartbeat soon succeeds.
        public static let nodeLeaving = Code(base: .nodeLeaving)

        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// A message for people, naming the offending field.
    public let message: String
    /// Where the error was raised.
    public let file: String
    /// Where the error was raised.
    public let line: Int

    /// Creates an error.
    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(message)" }
}
