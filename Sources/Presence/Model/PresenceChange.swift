import Foundation

/// One recorded change of the registry (`docs/changes.md`), as read from the change stream.
public struct PresenceChange: Sendable, Hashable {
    /// What changed.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A socket connected (first written by its node incarnation).
        case socketConnected = "socket.connected"
        /// A socket is gone; ``PresenceChange/reason`` says why.
        case socketDisconnected = "socket.disconnected"
        /// A user's first live socket anywhere in the cluster.
        case userOnline = "user.online"
        /// A user's last socket is gone (including with a crashed node).
        case userOffline = "user.offline"
        /// A node (incarnation) registered, or came back after it was announced down.
        case nodeUp = "node.up"
        /// A node's heartbeat expired (or a restart replaced the incarnation).
        case nodeDown = "node.down"
        /// A node left gracefully.
        case nodeLeft = "node.left"

        /// The code of the change in a stream entry.
        var code: String {
            switch self {
            case .socketConnected: return "sc"
            case .socketDisconnected: return "sd"
            case .userOnline: return "uon"
            case .userOffline: return "uoff"
            case .nodeUp: return "nup"
            case .nodeDown: return "ndown"
            case .nodeLeft: return "nleft"
            }
        }

        init?(code: String) {
            guard let kind = Self.allCases.first(where: { $0.code == code }) else { return nil }
            self = kind
        }
    }

    /// What changed.
    public var kind: Kind
    /// Where it is in the change stream: its stream and entry id.
    public var id: ChangePosition.Entry
    /// When it was recorded (the Redis server clock, from the entry id).
    public var at: Date
    /// The socket (socket changes).
    public var socketID: String?
    /// The node (socket and node changes).
    public var nodeID: String?
    /// The node incarnation (node changes).
    public var incarnation: String?
    /// The user (user changes, and socket changes of a socket with a user).
    public var userID: String?
    /// When the node accepted the socket (`socket.connected`).
    public var connectedAt: Date?
    /// Why the socket went (`socket.disconnected`).
    public var reason: DisconnectReason?

    /// Creates a change.
    public init(
        kind: Kind, id: ChangePosition.Entry, at: Date, socketID: String? = nil, nodeID: String? = nil, incarnation: String? = nil,
        userID: String? = nil, connectedAt: Date? = nil, reason: DisconnectReason? = nil
    ) {
        self.kind = kind
        self.id = id
        self.at = at
        self.socketID = socketID
        self.nodeID = nodeID
        self.incarnation = incarnation
        self.userID = userID
        self.connectedAt = connectedAt
        self.reason = reason
    }

    /// Decodes an entry of the earlier layout, one change in fields `t`, `s`, `n`, `i`, `u`, `c`, `r`.
    init?(legacy entry: ChangePosition.Entry, fields: [String: String]) {
        guard let code = fields["t"], let kind = Kind(code: code) else { return nil }
        self.init(
            kind: kind, id: entry, at: Date(milliseconds: entry.milliseconds), socketID: fields["s"], nodeID: fields["n"],
            incarnation: fields["i"], userID: fields["u"],
            connectedAt: fields["c"].flatMap(Int.init).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) },
            reason: fields["r"].flatMap(DisconnectReason.init(rawValue:)))
    }
}
