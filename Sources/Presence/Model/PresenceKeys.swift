/// Key names of the layout in `docs/data-model.md`. Keys touched together by one script share a
/// hash tag, so every multi-key operation stays in one Redis Cluster slot.
public struct PresenceKeys: Sendable, Hashable {
    /// The prefix, `presence` by default.
    public let prefix: String

    /// Creates the names for a prefix.
    public init(prefix: String) { self.prefix = prefix }

    /// Hash `node id → "expiresAtMs␟incarnation␟address"`: the liveness table every read consults.
    public var nodeTable: String { "\(prefix):{registry}:nodes" }

    /// Hash with one node's record (address, incarnation, times, counts, meta); same slot as the table.
    public func node(_ nodeID: String) -> String { "\(prefix):{registry}:node:\(nodeID)" }

    /// Set of the socket ids a node reported; hash-tagged by node.
    public func nodeSockets(_ nodeID: String) -> String { "\(prefix):{\(nodeID)}:sockets" }

    /// String with one socket's record (``SocketRecord``): `node␟incarnation␟connectedAtµs␟user␟meta`.
    public func socket(_ socketID: String) -> String { "\(prefix):r:{\(socketID)}" }

    /// Hash `"socket id␟incarnation" → "expiresAtMs␟node"`: one user's sockets.
    public func user(_ userID: String) -> String { "\(prefix):u:{\(userID)}" }

    /// Stream `i` of the change stream: 0 is `P:{registry}:changes` (node changes; every change on
    /// one server), 1–15 `P:changes:{tag}` (Redis Cluster), tags from ``ChangeStreams/tag(_:)``.
    public func changeStream(_ index: Int) -> String {
        index == 0 ? "\(prefix):{registry}:changes" : "\(prefix):changes:{\(ChangeStreams.tag(index))}"
    }

    /// Hash `node → "p|d␟incarnation␟reason"`: nodes announced down or left whose sockets the
    /// watcher is (`p`) or was (`d`) disconnecting; same slot as the table.
    public var goneNodes: String { "\(prefix):{registry}:gone" }

    /// String holding the id of the `presence serve` instance that watches for dead nodes.
    public var watcherLease: String { "\(prefix):{registry}:watcher" }

    /// String `atMs` (Redis clock): when the user's last socket went; same slot as ``user(_:)``.
    public func lastSeen(_ userID: String) -> String { "\(prefix):ls:{\(userID)}" }

    /// Integer `atMs × 10 + reason code` (``SocketDeparture``): when and why the socket's record
    /// last went; same slot as ``socket(_:)``.
    public func socketGone(_ socketID: String) -> String { "\(prefix):g:{\(socketID)}" }

    /// Counter of the users online whose changes go to stream `index` (same hash tag): their sum
    /// is the number of users online.
    public func onlineUsers(_ index: Int) -> String {
        index == 0 ? "\(prefix):{registry}:online" : "\(prefix):online:{\(ChangeStreams.tag(index))}"
    }

    /// String with the position up to which webhook `id` has delivered (`presence serve --webhook`;
    /// `id` is a digest of its URL); same slot as its lease, for their compare-and-set script.
    public func webhookCursor(_ id: String) -> String { "\(prefix):{registry}:webhook:\(id)" }

    /// String holding the id of the `presence serve` instance that delivers to webhook `id`.
    public func webhookLease(_ id: String) -> String { "\(prefix):{registry}:webhook:\(id):lease" }
}
