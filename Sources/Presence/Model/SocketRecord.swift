import Foundation

/// A socket's record as stored at `P:r:{socket}`: one string, `node␟incarnation␟connectedAtµs␟user␟meta`
/// (U+001F between the parts; user and meta empty when absent). One string rather than a hash is
/// fewer bytes and fewer commands, and lets a server compare it whole: a node deletes its record
/// with a compare-and-delete of the exact value it wrote (`DELIFEQ` on Valkey 9), or by script.
public struct SocketRecord: Sendable, Hashable {
    /// The node holding the socket.
    public var nodeID: String
    /// The node incarnation that wrote the record.
    public var incarnation: String
    /// When the node accepted the socket, in microseconds since the epoch (the node's clock).
    public var connectedAtMicroseconds: Int
    /// The user, if the node said.
    public var userID: String?
    /// The meta map, as ``PresenceMeta/encode(_:)`` writes it (`""` when empty).
    public var meta: String

    /// Creates a record.
    public init(nodeID: String, incarnation: String, connectedAtMicroseconds: Int, userID: String?, meta: String) {
        self.nodeID = nodeID
        self.incarnation = incarnation
        self.connectedAtMicroseconds = connectedAtMicroseconds
        self.userID = userID
        self.meta = meta
    }

    /// The record a connect event writes.
    public init(nodeID: String, incarnation: String, userID: String?, meta: [String: String], connectedAt: Date) {
        self.init(
            nodeID: nodeID, incarnation: incarnation, connectedAtMicroseconds: Int(connectedAt.timeIntervalSince1970 * 1_000_000),
            userID: userID, meta: PresenceMeta.encode(meta))
    }

    /// Whether `value` is a record written by this node incarnation (cheaper than decoding it).
    static func isHeld(_ value: String, nodeID: String, incarnation: String) -> Bool {
        value.hasPrefix("\(nodeID)\u{1F}\(incarnation)\u{1F}")
    }

    static let separator: Character = "\u{1F}"

    /// The stored value. Ids hold no U+001F and JSON escapes control characters, so it reads back one way.
    public var encoded: String {
        "\(nodeID)\u{1F}\(incarnation)\u{1F}\(connectedAtMicroseconds)\u{1F}\(userID ?? "")\u{1F}\(meta)"
    }

    /// Reads a stored value; `nil` when it is not one.
    public init?(decoding value: String) {
        let parts = value.split(separator: Self.separator, maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, !parts[0].isEmpty, let connectedAt = Int(parts[2]) else { return nil }
        self.init(
            nodeID: String(parts[0]), incarnation: String(parts[1]), connectedAtMicroseconds: connectedAt,
            userID: parts[3].isEmpty ? nil : String(parts[3]), meta: String(parts[4]))
    }

    /// The field of the socket in its user's hash (`P:u:{user}`): `socket␟incarnation`. The
    /// incarnation in the name makes a plain `HDEL` safe: it removes this incarnation's entry only,
    /// never the entry of a node the socket reconnected to.
    public static func userField(socketID: String, incarnation: String) -> String {
        "\(socketID)\u{1F}\(incarnation)"
    }

    /// The socket id and incarnation of a user-hash field; `nil` for other fields (the pruning
    /// cursor, or an entry of the earlier layout, keyed by the socket id alone).
    public static func parseUserField(_ field: String) -> (socketID: String, incarnation: String)? {
        guard let split = field.firstIndex(of: separator) else { return nil }
        return (String(field[..<split]), String(field[field.index(after: split)...]))
    }
}
