/// Which changes a reader wants: every field left `nil` matches everything.
public struct ChangeFilter: Sendable, Hashable {
    /// Only these kinds.
    public var kinds: Set<PresenceChange.Kind>?
    /// Only changes about these users (user changes and their sockets' changes).
    public var userIDs: Set<String>?
    /// Only changes about this node (node changes and its sockets' changes).
    public var nodeID: String?

    /// Creates a filter.
    public init(kinds: Set<PresenceChange.Kind>? = nil, userIDs: Set<String>? = nil, nodeID: String? = nil) {
        self.kinds = kinds
        self.userIDs = userIDs
        self.nodeID = nodeID
    }

    /// Whether `change` passes.
    public func matches(_ change: PresenceChange) -> Bool {
        if let kinds, !kinds.contains(change.kind) { return false }
        if let userIDs, !(change.userID.map(userIDs.contains) ?? false) { return false }
        if let nodeID, change.nodeID != nodeID { return false }
        return true
    }
}
