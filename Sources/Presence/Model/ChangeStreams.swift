/// The streams of the change stream (`docs/changes.md`): one on a single server, ``clusterCount``
/// on a Redis Cluster, spread evenly over the slot space so that every primary owning at least
/// 1,024 contiguous slots serves one. A script records into the first stream its primary serves.
public enum ChangeStreams {
    /// Streams on a Redis Cluster (stream 0 shares the slot of `{registry}`).
    public static let clusterCount = 16

    /// The most changes one stream entry holds: a script call records its changes in one entry,
    /// starting another after this many (``PresenceScripts/events``; `docs/changes.md`).
    public static let changesPerEntry = 200

    /// The hash tag of stream `index` (1–15): the first of `0`, `1`, `2`, … whose slot lies in
    /// `[index × 1024, (index + 1) × 1024)`. Stream 0 is tagged `registry`.
    public static func tag(_ index: Int) -> String { tags[index] }

    private static let tags: [String] = {
        var found = [String](repeating: "", count: clusterCount)
        found[0] = "registry"
        var candidate = 0
        var missing = clusterCount - 1
        while missing > 0 {
            let tag = String(candidate)
            let range = RedisKeySlot.slot(tag) / 1024
            if range > 0, range < clusterCount, found[range].isEmpty {
                found[range] = tag
                missing -= 1
            }
            candidate += 1
        }
        return found
    }()

    /// Every stream key of a layout: 1 on one server, ``clusterCount`` on a cluster.
    public static func keys(_ keys: PresenceKeys, cluster: Bool) -> [String] {
        (0..<(cluster ? clusterCount : 1)).map(keys.changeStream)
    }
}
